"""The lite network: a small content encoder, AdaIN in its own feature space, and a small decoder.

    content (N,3,H,W) RGB [0,1] --LiteEncoder--> (N,C,H/4,W/4) --AdaIN(head(style code), alpha)--> LiteDecoder

No VGG on the per-frame path. The style input is today's style code (VGG relu4_1 mean and std,
computed once per style): a small learned head (`StyleHead`) maps it to the mean and std that the
lite features should take. So presets, saved codes, weighted blends, strength, colour preservation
and masks work unchanged, and the graph has the same inputs as the full one (engines.graph).
The decoder is style-agnostic, as in AdaIN itself: all style enters through the statistics, which
is what lets the temporal smoother's statistics average and the mask path work on it.

Upsampling is nearest + 3x3 conv (no transposed convs: they leave checkerboards).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from engines.adain import adain, blend_alpha, mean_std

VGG_CHANNELS = 512  # length of the style code's mean and std


@dataclass(frozen=True)
class LiteShape:
    """Widths of the lite network. Stored in the weights' manifest so a file rebuilds its network."""

    widths: tuple[int, ...] = (24, 64)  # one stride-2 3x3 conv each: H/2, H/4 (the AdaIN space is at H/4)
    features: int = 128   # channels of the AdaIN space
    blocks: int = 2       # depthwise-separable residual blocks on each side of AdaIN
    head_hidden: int = 256
    full_res: int = 16    # channels of the last full-resolution conv (0: straight to RGB)

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(self.widths))  # a JSON manifest gives a list

    @property
    def halvings(self) -> int:
        return len(self.widths)

    def as_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, relu: bool = True, groups: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, padding_mode="reflect"
                                         if k > 1 else "zeros")]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """Depthwise 3x3 + pointwise, twice, with a skip: cheap spatial context in the AdaIN space."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, 1, groups=ch, padding_mode="reflect"), nn.Conv2d(ch, ch, 1), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, 1, 1, groups=ch, padding_mode="reflect"), nn.Conv2d(ch, ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class LiteEncoder(nn.Module):
    def __init__(self, s: LiteShape):
        super().__init__()
        chans = (3, *s.widths)
        self.layers = nn.Sequential(
            *[_conv(a, b, stride=2) for a, b in zip(chans[:-1], chans[1:], strict=True)],
            *[ResidualBlock(s.widths[-1]) for _ in range(s.blocks)],
            _conv(s.widths[-1], s.features, k=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LiteDecoder(nn.Module):
    def __init__(self, s: LiteShape):
        super().__init__()
        up = nn.Upsample(scale_factor=2, mode="nearest")
        # back up through the encoder's widths; the last stage ends at full resolution with `full_res` channels
        chans = (*reversed(s.widths), s.full_res or s.widths[0])
        stages = [m for a, b in zip(chans[:-1], chans[1:], strict=True) for m in (up, _conv(a, b))]
        self.layers = nn.Sequential(
            _conv(s.features, s.widths[-1], k=1), *[ResidualBlock(s.widths[-1]) for _ in range(s.blocks)],
            *stages, _conv(chans[-1], 3, relu=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class StyleHead(nn.Module):
    """Style code (VGG relu4_1 mean, std) -> the mean and std the lite features should take."""

    def __init__(self, s: LiteShape):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * VGG_CHANNELS, s.head_hidden), nn.ReLU(inplace=True),
                                 nn.Linear(s.head_hidden, 2 * s.features))

    def forward(self, style_mean: torch.Tensor, style_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # log of the std: stds span two orders of magnitude across styles
        code = torch.cat([style_mean.float(), style_std.float().clamp_min(1e-5).log()], dim=1)
        mean, log_std = self.mlp(code.to(self.mlp[0].weight.dtype)).float().chunk(2, dim=1)
        return mean, log_std.exp()


class LiteGraph(nn.Module):
    """The lite per-frame graph, with the same methods and inputs as engines.graph.StyleGraph."""

    kind = "lite"

    def __init__(self, shape: LiteShape | None = None):
        super().__init__()
        self.shape = shape or LiteShape()
        self.feat_channels = self.shape.features
        self.halvings = self.shape.halvings  # the features are at H / 2**halvings
        self.encoder = LiteEncoder(self.shape)
        self.head = StyleHead(self.shape)
        self.decoder = LiteDecoder(self.shape)

    def encode(self, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lite features and their fp32 per-channel mean and std."""
        feat = self.encoder(content)
        mean, std = mean_std(feat)
        return feat, mean, std

    def style_target(self, style_mean: torch.Tensor, style_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The style code mapped into the lite feature space (fp32)."""
        return self.head(style_mean, style_std)

    def decode(self, feat, content_mean, content_std, style_mean, style_std, alpha, out_hw=None):
        target_mean, target_std = self.style_target(style_mean, style_std)
        target = adain(feat, target_mean, target_std, content_mean, content_std)
        return self.decode_features(blend_alpha(feat, target, alpha).to(feat.dtype), out_hw)

    def decode_features(self, feat: torch.Tensor, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
        out = self.decoder(feat)
        if out_hw is not None:  # strided convs round odd sizes up; crop back
            out = out[..., : out_hw[0], : out_hw[1]]
        # Unclamped while training (as the full decoder is trained): a clamp has no gradient outside [0, 1].
        return out if self.training else out.clamp(0, 1)

    def forward(self, content, style_mean, style_std, alpha):
        feat, mean, std = self.encode(content)
        return self.decode(feat, mean, std, style_mean, style_std, alpha, out_hw=content.shape[-2:])


def count_macs(graph: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of the convolutions and linear layers for one frame (hooks, one CPU pass)."""
    total = 0

    def conv_hook(m, _inp, out):
        nonlocal total
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in graph.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in graph.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            graph(torch.rand(1, 3, height, width), torch.rand(1, VGG_CHANNELS), torch.rand(1, VGG_CHANNELS) + 0.1,
                  torch.ones(1))
    finally:
        for h in hooks:
            h.remove()
    return total
