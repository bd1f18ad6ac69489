"""The lite network's training loss: the full model's VGG losses, plus distillation from the full model.

Content loss on relu4_1 against the AdaIN target and the mean/std style loss at relu1_1..relu4_1, as the
full decoder is trained (engines.train.losses), on the lite network's output. The style code the lite
network gets is the style crop's relu1_1..relu4_1 means and stds, the layout of a StyleCode. Where a
teacher (the shipped full decoder) is given, an L1 term pulls the output towards the full model's
output for the same pair: a dense, per-pixel signal that a small network learns from much faster than
from the statistics alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.train.losses import AdaINLoss, Losses


class LiteLoss(nn.Module):
    def __init__(self, base: AdaINLoss, teacher: nn.Module | None = None, distill_weight: float = 10.0):
        super().__init__()
        self.base = base
        self.teacher = teacher.eval() if teacher is not None else None
        if self.teacher is not None:
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        self.distill_weight = distill_weight

    def forward(self, net: nn.Module, content: torch.Tensor, style: torch.Tensor) -> Losses:
        t, style_stats = self.base.targets(content, style)
        out = self.stylize(net, content, style_stats)
        total, content_loss, style_loss = self.base.output_losses(out, t, style_stats)
        distill = out.new_zeros((), dtype=torch.float32)
        if self.teacher is not None and self.distill_weight > 0:
            with torch.no_grad():
                target = self.teacher(t.to(out.dtype)).float().clamp(0, 1)[..., : out.shape[-2], : out.shape[-1]]
            distill = F.l1_loss(out.float(), target)
            total = total + self.distill_weight * distill
        return Losses(total, content_loss.detach(), style_loss.detach(), distill.detach(), output=out,
                      style_stats=style_stats)

    def stylize(self, net: nn.Module, content: torch.Tensor, style_stats: list) -> torch.Tensor:
        """The lite output for `content` in a known style (differentiable in the network)."""
        alpha = torch.ones(content.shape[0], device=content.device)
        code = [torch.cat(part, dim=1) for part in zip(*style_stats, strict=True)]  # relu1_1..relu4_1, as a StyleCode
        return net(content, *code, alpha)

    @torch.no_grad()
    def render(self, net: nn.Module, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The lite output for each (content, style) pair (for sample grids)."""
        return self.stylize(net, content, self.base.targets(content, style)[1])
