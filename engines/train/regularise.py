"""Compound temporal regularisation (Wang et al. 2020, "Consistent Video Style Transfer via Compound
Regularization"): the output for a slightly moved, scaled or rotated input, with a little noise, should
be the same motion applied to the output of the original input.

    R = mean over valid pixels of | G(W(x) + noise) - W(G(x)) |^2

W is a random small affine motion (shift, scale, rotation) drawn per image from the training data's
CPU generator, so a resumed run draws the same motions. Pixels that W moves in from outside the
image are left out (a warped mask of ones). A network trained with R flickers less from frame to frame
without seeing any video, so the flow blending in streamer/temporal needs to correct less.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MotionRange:
    """How far the random motion goes. The defaults are small frame-to-frame motions at a 256 px crop."""

    shift: float = 0.02          # fraction of the size (about 5 px at 256)
    scale: float = 0.03          # zoom in [1 - scale, 1 + scale]
    rotate_deg: float = 1.0
    noise_std: float = 0.01      # Gaussian noise added to the moved input (images in [0, 1])


@dataclass
class Motion:
    """One affine motion per image (N x 2 x 3, in affine_grid's normalised coordinates) and its noise."""

    theta: torch.Tensor
    noise: torch.Tensor

    @staticmethod
    def sample(content: torch.Tensor, gen: torch.Generator, rng: MotionRange = MotionRange()) -> Motion:
        """A motion for each image of `content`. Drawn from the CPU generator `gen` (exact resume); the
        noise from a device generator seeded from it, so no image-sized tensor crosses to the device."""
        n = content.shape[0]
        u = torch.rand(n, 4, generator=gen) * 2 - 1
        angle = u[:, 0] * math.radians(rng.rotate_deg)
        zoom = 1 + u[:, 1] * rng.scale
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, u[:, 2] * 2 * rng.shift], 1),
                             torch.stack([sin, cos, u[:, 3] * 2 * rng.shift], 1)], 1)
        noise_gen = torch.Generator(device=content.device)
        noise_gen.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        noise = torch.randn(content.shape, generator=noise_gen, device=content.device) * rng.noise_std
        return Motion(theta.to(content.device), noise)

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """x moved by the motion (bilinear, fp32); pixels from outside the image are 0."""
        grid = F.affine_grid(self.theta, list(x.shape), align_corners=False)
        return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def moved_input(self, x: torch.Tensor) -> torch.Tensor:
        """W(x) + noise, clamped to [0, 1]."""
        return (self.warp(x) + self.noise).clamp(0, 1).to(x.dtype)

    def valid(self, like: torch.Tensor) -> torch.Tensor:
        """N x 1 x H x W: 1 where the moved image has only pixels from inside the original."""
        ones = like.new_ones((like.shape[0], 1, *like.shape[-2:]), dtype=torch.float32)
        return (self.warp(ones) > 0.999).float()


def compound_loss(render: Callable[[torch.Tensor], torch.Tensor], content: torch.Tensor,
                  output: torch.Tensor, motion: Motion) -> torch.Tensor:
    """R for `render` (input -> output, differentiable), given its `output` for `content`."""
    moved_out = render(motion.moved_input(content)).float()
    target = motion.warp(output)
    hw = min(moved_out.shape[-2], target.shape[-2]), min(moved_out.shape[-1], target.shape[-1])
    mask = motion.valid(target)[..., : hw[0], : hw[1]]
    diff = (moved_out[..., : hw[0], : hw[1]] - target[..., : hw[0], : hw[1]]) ** 2 * mask
    return diff.sum() / (mask.sum() * moved_out.shape[1]).clamp_min(1)
