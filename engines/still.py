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
    if mask is None:
        out = engine.stylize(x, style, alpha)
    else:
        out = _stylize_masked(engine, x, mask, style, style_outside, alpha)
    out = out.float()
    if keep_color:
        out = preserve_color(out, x.float())
    return out


def _stylize_masked(engine: TorchEngine, x: torch.Tensor, mask: torch.Tensor, style: StyleCode,
                    style_outside: StyleCode | None, alpha: float) -> torch.Tensor:
    graph = engine.graph
    hw = tuple(x.shape[-2:])
    a = torch.full((1,), float(alpha), device=engine.device)
    feat, _, _ = engine.encode(x)
    m = F.interpolate(mask.to(engine.device, torch.float32), size=feat.shape[-2:], mode="area")
    inside_code = style.batch(1, engine.device, graph.style_channels)
    inside = adain(feat, *graph.style_target(*inside_code), *mean_std(feat, m))
    if style_outside is None:
        outside, outside_code = feat.float(), None
    else:
        outside_code = style_outside.batch(1, engine.device, graph.style_channels)
        outside = adain(feat, *graph.style_target(*outside_code), *mean_std(feat, 1 - m))
    blended = blend_alpha(feat, m * inside + (1 - m) * outside, alpha).to(feat.dtype)
    cond_in = graph.condition(*inside_code, a)
    if cond_in is None:  # a decoder without style (the full model): one pass
        return graph.decode_features(blended, hw)
    # A decoder conditioned on the style paints each region with its own conditioning; the two
    # results are joined by the mask at full size.
    cond_out = graph.condition(*outside_code, a) if outside_code is not None else torch.zeros_like(cond_in)
    full_mask = F.interpolate(mask.to(engine.device, torch.float32), size=hw, mode="bilinear", align_corners=False)
    return (full_mask * graph.decode_features(blended, hw, cond_in).float()
            + (1 - full_mask) * graph.decode_features(blended, hw, cond_out).float())
