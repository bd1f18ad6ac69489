"""The per-frame graph: content, style mean, style std, alpha -> stylized.

    content (N,3,H,W) RGB [0,1] --VGG--> relu4_1 --AdaIN(style mean/std, alpha)--> decoder --> (N,3,H,W)

Style and strength are *inputs*, so changing them never rebuilds a compiled engine. The graph
is split in `encode` and `decode` so temporal smoothing can replace the content statistics
between the two (streamer.temporal); `forward` is the two fused. This module is what the
torch backend runs, what ONNX export traces and what training optimises.
"""

from __future__ import annotations

import torch
from torch import nn

from engines.adain import adain, blend_alpha, mean_std
from engines.vgg import VGGEncoder


class StyleGraph(nn.Module):
    kind = "full"
    feat_channels = 512  # relu4_1
    halvings = 3         # relu4_1 is at H/8

    def __init__(self, encoder: VGGEncoder, decoder: nn.Sequential):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """relu4_1 features and their fp32 per-channel mean and std."""
        feat = self.encoder(content)
        mean, std = mean_std(feat)
        return feat, mean, std

    def decode(
        self,
        feat: torch.Tensor,
        content_mean: torch.Tensor,
        content_std: torch.Tensor,
        style_mean: torch.Tensor,
        style_std: torch.Tensor,
        alpha: torch.Tensor,
        out_hw: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        target = adain(feat, style_mean, style_std, content_mean, content_std)
        return self.decode_features(blend_alpha(feat, target, alpha).to(feat.dtype), out_hw)

    def style_target(self, style_mean: torch.Tensor, style_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The statistics AdaIN moves the features to: the style code itself (the lite graph maps it)."""
        return style_mean, style_std

    def decode_features(self, feat: torch.Tensor, out_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """Decoder alone, from (already stylized) relu4_1 features to RGB in [0, 1]."""
        out = self.decoder(feat)
        if out_hw is not None:  # ceil-mode pooling rounds odd sizes up; crop back
            out = out[..., : out_hw[0], : out_hw[1]]
        return out.clamp(0, 1)

    def forward(self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
        feat, mean, std = self.encode(content)
        return self.decode(feat, mean, std, style_mean, style_std, alpha, out_hw=content.shape[-2:])


MODELS = ("full", "lite")


def load_graph(decoder: str | None = None, encoder: str | None = None, model: str = "full") -> nn.Module:
    """The per-frame graph of `model` with the shipped (or given) weights, on the CPU, in eval mode.

    "full": VGG-19 + the AdaIN decoder (`decoder` a decoder file); "lite": engines.lite (`decoder` a lite
    weights file). Both have the same methods and inputs (encode, style_target, decode, forward).
    """
    if model == "lite":
        from engines.lite.weights import load_lite

        return load_lite(decoder)
    if model != "full":
        from engines.errors import ConfigError

        raise ConfigError(f"Unknown model {model!r}: use full, lite or auto")
    from engines.decoder import load_decoder
    from engines.vgg import load_encoder

    return StyleGraph(load_encoder(encoder), load_decoder(decoder)).eval()
