"""The AdaIN training loss (Huang & Belongie 2017, section 6).

t = AdaIN(f(c), f(s)) on relu4_1; g = decoder(t).
Content loss: MSE(f(g), t) at relu4_1. Style loss: sum over relu1_1..relu4_1 of the MSE between the
per-channel means and between the per-channel stds of phi(g) and phi(s). Statistics in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.adain import adain, mean_std
from engines.vgg import VGGEncoder


@dataclass
class Losses:
    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    distill: torch.Tensor | None = None  # the lite network's distillation term (engines.lite.loss)
    temporal: torch.Tensor | None = None  # the compound regulariser's term (engines.train.regularise)
    output: torch.Tensor | None = None    # the network's output (what the regulariser moves)
    style_stats: list | None = None       # the style's per-layer (mean, std), for stylize()


class AdaINLoss(nn.Module):
    """Loss of a decoder under a frozen encoder. `forward(decoder, content, style) -> Losses`."""

    def __init__(self, encoder: VGGEncoder, content_weight: float = 1.0, style_weight: float = 10.0,
                 channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.encoder = encoder.eval()
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.content_weight = content_weight
        self.style_weight = style_weight

    @torch.no_grad()
    def targets(self, content: torch.Tensor, style: torch.Tensor
                ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """AdaIN target t (fp32) and the style's per-layer (mean, std) (fp32)."""
        n = content.shape[0]
        both = torch.cat([content, style])  # one encoder pass for both halves
        if self.channels_last:
            both = both.contiguous(memory_format=torch.channels_last)
        feats = self.encoder.features(both)
        style_stats = [mean_std(f[n:]) for f in feats]
        t = adain(feats[-1][:n], *style_stats[-1])
        return t, style_stats

    def forward(self, decoder: nn.Module, content: torch.Tensor, style: torch.Tensor) -> Losses:
        t, style_stats = self.targets(content, style)
        return self.from_targets(decoder, t, style_stats)

    def from_targets(self, decoder: nn.Module, t: torch.Tensor,
                     style_stats: list[tuple[torch.Tensor, torch.Tensor]]) -> Losses:
        # The decoder sees t in the autocast dtype; the target stays fp32.
        out = decoder(t.to(memory_format=torch.channels_last) if self.channels_last else t)
        total, content_loss, style_loss = self.output_losses(out, t, style_stats)
        return Losses(total, content_loss.detach(), style_loss.detach(), output=out, style_stats=style_stats)

    def output_losses(self, out: torch.Tensor, t: torch.Tensor, style_stats: list[tuple[torch.Tensor, torch.Tensor]]
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(weighted total, content loss, style loss) of a network's output against the AdaIN target and the
        style's statistics; any network that makes images (the decoder, the lite network) is judged by it."""
        feats = self.encoder.features(out)
        content_loss = F.mse_loss(feats[-1].float(), t)
        style_loss = out.new_zeros((), dtype=torch.float32)
        for f, (s_mean, s_std) in zip(feats, style_stats, strict=True):
            g_mean, g_std = mean_std(f)
            style_loss = style_loss + F.mse_loss(g_mean, s_mean) + F.mse_loss(g_std, s_std)
        return self.content_weight * content_loss + self.style_weight * style_loss, content_loss, style_loss

    def stylize(self, decoder: nn.Module, content: torch.Tensor, style_stats: list) -> torch.Tensor:
        """The decoder's output for `content` in a known style (differentiable in the decoder)."""
        with torch.no_grad():
            x = content.contiguous(memory_format=torch.channels_last) if self.channels_last else content
            t = adain(self.encoder(x), *style_stats[-1])
        return decoder(t.to(memory_format=torch.channels_last) if self.channels_last else t)

    @torch.no_grad()
    def render(self, decoder: nn.Module, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The decoder's output for each (content, style) pair (for sample grids)."""
        t, _ = self.targets(content, style)
        return decoder(t.to(next(decoder.parameters()).dtype))


def with_temporal(loss_fn: nn.Module, net: nn.Module, content: torch.Tensor, style: torch.Tensor,
                  motion, weight: float) -> Losses:
    """loss_fn's losses plus `weight` x the compound temporal regulariser under `motion` (None: off)."""
    from engines.train.regularise import compound_loss

    losses = loss_fn(net, content, style)
    if motion is not None and weight > 0:
        reg = compound_loss(lambda x: loss_fn.stylize(net, x, losses.style_stats), content, losses.output, motion)
        losses.total = losses.total + weight * reg
        losses.temporal = reg.detach()
    return losses
