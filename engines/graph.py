"""The per-frame graph (the `Graph` protocol every network implements) and the full model's.

    content, style mean, style std, alpha -> stylized

    content (N,3,H,W) RGB [0,1] --VGG--> relu4_1 --AdaIN(style mean/std, alpha)--> decoder --> (N,3,H,W)

Style and strength are *inputs*, so changing them never rebuilds a compiled engine. The graph
is split in `encode` and `decode` so temporal smoothing can replace the content statistics
between the two (streamer.temporal); `forward` is the two fused. This module is what the
torch backend runs, what ONNX export traces and what training optimises.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from engines.adain import STYLE_CHANNELS, adain, blend_alpha, mean_std
from engines.vgg import VGGEncoder


@runtime_checkable
class Graph(Protocol):
    """What backends, export, the smoother and still images need from a network (an nn.Module)."""

    kind: str            # its name in engines.models
    feat_channels: int   # channels of the features AdaIN works on
    halvings: int        # the features are at H / 2**halvings
    style_channels: int  # how much of the style code it reads (StyleCode.batch's `channels`)

    def encode(self, content: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features and their fp32 per-channel mean and std."""

    def style_target(self, style_mean: torch.Tensor, style_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The statistics AdaIN moves the features to, for a style code."""

    def condition(self, style_mean: torch.Tensor, style_std: torch.Tensor,
                  alpha: torch.Tensor) -> torch.Tensor | None:
        """What the decoder itself needs of the style (decode_features' `cond`); None where it needs nothing."""

    def decode(self, feat, content_mean, content_std, style_mean, style_std, alpha,
               out_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """AdaIN with the given content statistics, strength alpha, then the decoder."""

    def decode_features(self, feat: torch.Tensor, out_hw: tuple[int, int] | None = None,
                        cond: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder alone, from stylized features."""

    def forward(self, content, style_mean, style_std, alpha) -> torch.Tensor:
        """encode, then decode with the content's own statistics."""


class StyleGraph(nn.Module):
    """The full model: VGG-19 to relu4_1, AdaIN, the AdaIN decoder."""

    kind = "full"
    feat_channels = 512  # relu4_1
    halvings = 3         # relu4_1 is at H/8
    style_channels = STYLE_CHANNELS  # reads the style code's relu4_1 tail

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

    def condition(self, style_mean: torch.Tensor, style_std: torch.Tensor, alpha: torch.Tensor) -> None:
        """The decoder takes no style: all of it enters through AdaIN."""
        return None

    def decode_features(self, feat: torch.Tensor, out_hw: tuple[int, int] | None = None,
                        cond: None = None) -> torch.Tensor:
        """Decoder alone, from (already stylized) relu4_1 features to RGB in [0, 1]."""
        out = self.decoder(feat)
        if out_hw is not None:  # ceil-mode pooling rounds odd sizes up; crop back
            out = out[..., : out_hw[0], : out_hw[1]]
        return out.clamp(0, 1)

    def forward(self, content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                alpha: torch.Tensor) -> torch.Tensor:
        feat, mean, std = self.encode(content)
        return self.decode(feat, mean, std, style_mean, style_std, alpha, out_hw=content.shape[-2:])


def load_graph(weights: str | None = None, model: str = "full") -> Graph:
    """The per-frame graph of network `model` (engines.models) with the shipped (or given) weights, on the
    CPU, in eval mode."""
    from engines.models import network

    return network(model).load(weights)
