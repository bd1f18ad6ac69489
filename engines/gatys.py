"""The optimisation method of Gatys et al. (2015): the quality reference for still images.

The image itself is optimised so its relu4_1 features match the content's and its Gram matrices
at relu1_1..relu4_1 match the style's, on the same normalised VGG the AdaIN network uses.
Slow (hundreds of VGG forward/backward passes) but needs no decoder.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engines.vgg import VGGEncoder


def gram(feat: torch.Tensor) -> torch.Tensor:
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def gatys_transfer(encoder: VGGEncoder, content: torch.Tensor, style: torch.Tensor, steps: int = 300,
                   optimizer: str = "lbfgs", content_weight: float = 1.0, style_weight: float = 10.0,
                   tv_weight: float = 1e-3, init: str = "content",
                   progress: Callable[[int, float], None] | None = None) -> torch.Tensor:
    """content, style: 1 x 3 x H x W RGB [0, 1] on the encoder's device -> the optimised image.

    `steps` counts function evaluations (VGG forward + backward), the real cost, for both
    optimisers. `progress(step, loss)` is called after each.
    """
    encoder = encoder.eval()
    with torch.no_grad():
        content_target = encoder.features(content)[-1]
        style_grams = [gram(f) for f in encoder.features(style)]
    start = content.clone() if init == "content" else torch.rand_like(content)
    image = start.requires_grad_(True)
    step = 0

    def loss_fn() -> torch.Tensor:
        feats = encoder.features(image.clamp(0, 1))
        lc = torch.mean((feats[-1] - content_target) ** 2)
        ls = sum(torch.sum((gram(f) - g) ** 2) for f, g in zip(feats, style_grams, strict=True))
        tv = (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., 1:] - image[..., :-1]).abs().mean()
        return content_weight * lc + style_weight * ls + tv_weight * tv

    def closure() -> torch.Tensor:
        nonlocal step
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        step += 1
        if progress:
            progress(step, loss.item())
        return loss

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=1.0, max_iter=steps, history_size=50,
                                tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")
        while step < steps:
            before = step
            opt.step(closure)
            if step == before:  # converged
                break
    elif optimizer == "adam":
        opt = torch.optim.Adam([image], lr=0.02)
        while step < steps:
            opt.step(closure)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    return image.detach().clamp(0, 1)
