"""Reflection padding folded into the convolution that follows it: one engine option (`fold_padding`).

The full graph pads every 3x3 conv with its own `nn.ReflectionPad2d(1)` (the AdaIN port's layout, so its
weights load as they are). Eagerly that is one extra kernel and one full read and write of the activation
per conv; as `Conv2d(padding=1, padding_mode="reflect")` the padding belongs to the conv, which is what
torch.compile can fuse into its prologue. The arithmetic is the same, so outputs stay within float
rounding; the stored weights keep their layout (only the engine's copy is folded).
"""

from __future__ import annotations

import copy

from torch import nn


def fold_sequential(seq: nn.Sequential) -> nn.Sequential:
    """A copy of `seq` with each (ReflectionPad2d(p), Conv2d(padding=0)) pair as one reflect-padded conv."""
    layers, mods, i = [], list(seq), 0
    while i < len(mods):
        pad, conv = mods[i], mods[i + 1] if i + 1 < len(mods) else None
        p = pad.padding if isinstance(pad, nn.ReflectionPad2d) else None
        if (p is not None and isinstance(conv, nn.Conv2d) and len(set(p)) == 1 and conv.padding == (0, 0)
                and conv.padding_mode == "zeros"):
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, p[0],
                               conv.dilation, conv.groups, conv.bias is not None, padding_mode="reflect")
            folded.load_state_dict(conv.state_dict())
            layers.append(folded)
            i += 2
        else:
            layers.append(copy.deepcopy(pad))
            i += 1
    return nn.Sequential(*layers)


def fold_padding(graph: nn.Module) -> nn.Module:
    """A copy of a full-model StyleGraph with its encoder's and decoder's padding folded (forward,
    encode and decode only: the encoder's per-layer `features` are a training tool). Other graphs
    (the lite one pads inside its convs already) come back as they are."""
    if not (hasattr(graph, "encoder") and hasattr(graph, "decoder") and isinstance(graph.decoder, nn.Sequential)):
        return graph
    folded = copy.deepcopy(graph)
    folded.encoder.layers = fold_sequential(graph.encoder.layers)
    folded.encoder._slices = None  # the slice views index the unfolded layout
    folded.decoder = fold_sequential(graph.decoder)
    return folded
