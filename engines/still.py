"""Stylizing still images: style blending, strength, colour preservation, spatial control with a mask.

Spatial control follows the paper (Sec. 7.2): AdaIN is done separately in the masked regions of the
content features, each with its own content statistics and its own style, then the decoder runs once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engines.adain import StyleCode, adain, blend_alpha, mean_std, preserve_color
from engines.backends.torch_backend import TorchEngine


@torch.inference_mode()
def stylize_still(engine: TorchEngine, content: torch.Tensor, style: StyleCode, alpha: float = 1.0,
                  keep_color: bool = False, mask: torch.Tensor | None = None,
                  style_outside: StyleCode | None = None) -> torch.Tensor:
    """1 x 3 x H x W RGB [0, 1] -> stylized, same size.

    With `mask` (1 x 1 x H x W in [0, 1]) `style` applies where the mask is white and `style_outside`
    where it is black (without `style_outside` the outside keeps the content's own statistics).
    """
    x = content.to(engine.device)
    hw = tuple(x.shape[-2:])
    if mask is None:
        out = engine.stylize(x, style, alpha)
    else:
        feat, _, _ = engine.encode(x)
        m = F.interpolate(mask.to(engine.device, torch.float32), size=feat.shape[-2:], mode="area")
        graph = engine.graph
        inside = adain(feat, *graph.style_target(*style.batch(1, engine.device)), *mean_std(feat, m))
        if style_outside is None:
            outside = feat.float()
        else:
            outside = adain(feat, *graph.style_target(*style_outside.batch(1, engine.device)), *mean_std(feat, 1 - m))
        target = m * inside + (1 - m) * outside
        out = engine.graph.decode_features(blend_alpha(feat, target, alpha).to(feat.dtype), hw)
    out = out.float()
    if keep_color:
        out = preserve_color(out, x.float())
    return out
