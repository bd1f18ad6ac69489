"""Adaptive instance normalisation and the style code it needs.

AdaIN(x, y) = std(y) * (x - mean(x)) / std(x) + mean(y), per channel, on relu4_1 features
(Huang & Belongie, 2017). Statistics are always computed in fp32, also when the network
runs in fp16: a 512-channel variance over a 90x160 map loses too much in half precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from engines.errors import InputError

EPS = 1e-5
# A style code holds the mean and std of relu1_1, relu2_1, relu3_1 and relu4_1, one after the other. AdaIN
# itself (the full model) reads the relu4_1 part, the tail; the lite network reads all four (colour and fine
# texture live in the shallow layers). Codes saved before the shallow layers were added hold relu4_1 alone.
CODE_LAYERS = (64, 128, 256, 512)
CODE_CHANNELS = sum(CODE_LAYERS)       # 960
STYLE_CHANNELS = CODE_LAYERS[-1]       # relu4_1, what the full model's AdaIN reads


def mean_std(feat: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of N x C x H x W features, in fp32 -> (N x C, N x C).

    With a mask (N x 1 x H x W, values in [0, 1]) the statistics are weighted by it.
    """
    x = feat.float().flatten(2)
    if mask is None:
        var, mean = torch.var_mean(x, dim=2, unbiased=False)
    else:
        w = mask.float().flatten(2)
        total = w.sum(dim=2).clamp_min(EPS)
        mean = (x * w).sum(dim=2) / total
        var = ((x - mean.unsqueeze(2)) ** 2 * w).sum(dim=2) / total
    return mean, (var + EPS).sqrt()


def adain(
    content: torch.Tensor,
    style_mean: torch.Tensor,
    style_std: torch.Tensor,
    content_mean: torch.Tensor | None = None,
    content_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Move content features' per-channel mean/std to the style's. Returns fp32.

    `content_mean`/`content_std` may be given (e.g. smoothed over time); else measured.
    """
    if content_mean is None or content_std is None:
        content_mean, content_std = mean_std(content)
    scale = (style_std / content_std).unsqueeze(-1).unsqueeze(-1)
    shift = (style_mean - content_mean * style_std / content_std).unsqueeze(-1).unsqueeze(-1)
    return content.float() * scale + shift


def blend_alpha(content: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """alpha * AdaIN target + (1 - alpha) * content features (style strength)."""
    if isinstance(alpha, torch.Tensor):
        alpha = alpha.reshape(-1, 1, 1, 1)
    return content.float() + alpha * (target - content.float())


@dataclass(frozen=True)
class StyleCode:
    """A style as the networks see it: per-channel mean and std of relu1_1..relu4_1 (960 + 960 fp32; CODE_LAYERS).

    Older saved codes hold relu4_1 alone (512 + 512): enough for the full model, not for the lite network."""

    mean: torch.Tensor
    std: torch.Tensor
    source: str = ""
    meta: dict = field(default_factory=dict, compare=False)
    # fp32 copies per device, made on first use: copying from host memory every frame would make the
    # host wait for the GPU each time (torch synchronises after a copy from pageable memory)
    _on_device: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self):
        for t in (self.mean, self.std):
            if t.ndim != 1 or t.shape != self.mean.shape:
                raise ValueError("StyleCode mean and std must be 1-D tensors of the same length")

    def __add__(self, other: StyleCode) -> StyleCode:
        return StyleCode(self.mean + other.mean, self.std + other.std, f"{self.source} + {other.source}")

    def __mul__(self, k: float) -> StyleCode:
        return StyleCode(self.mean * k, self.std * k, f"{k:g}*{self.source}" if self.source else "")

    __rmul__ = __mul__

    def to(self, device: torch.device | str) -> StyleCode:
        return StyleCode(self.mean.to(device), self.std.to(device), self.source, self.meta)

    def batch(self, n: int, device: torch.device | str,
              channels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n x C, n x C) fp32 on `device`, the per-frame graph's style inputs (views: do not modify).

        `channels`: how many values the graph reads (its `style_channels`): the code's tail, which is
        relu4_1 for 512 and the whole code for CODE_CHANNELS."""
        channels = channels or len(self.mean)
        if channels > len(self.mean):
            raise InputError(f"Style code {self.source or '(unnamed)'} holds relu4_1 alone (saved by an older "
                             "stylestream); the lite network needs all four layers: pass the painting itself as the "
                             "style, or use --model full")
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = (self.mean.to(device, torch.float32), self.std.to(device, torch.float32))
        m, s = self._on_device[key]
        return m[-channels:].unsqueeze(0).expand(n, -1), s[-channels:].unsqueeze(0).expand(n, -1)

    def save(self, path: str | Path, **meta: str) -> None:
        meta = {"source": self.source, **{k: str(v) for k, v in {**self.meta, **meta}.items()}}
        save_file({"mean": self.mean.float().cpu().contiguous(), "std": self.std.float().cpu().contiguous()},
                  str(path), metadata=meta)

    @staticmethod
    def load(path: str | Path) -> StyleCode:
        path = Path(path)
        try:
            t = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = dict(f.metadata() or {})
        except (SafetensorError, OSError) as e:
            raise InputError(f"Cannot read style code {path}: {e}") from None
        if "mean" not in t or "std" not in t:
            raise InputError(f"{path} is not a style code (needs 'mean' and 'std' tensors)")
        for name in ("mean", "std"):
            check_style_tensor(t[name], name, str(path))
        return StyleCode(t["mean"].float(), t["std"].float(), meta.pop("source", path.stem), meta)


def check_style_tensor(t: torch.Tensor, name: str, where: str) -> None:
    """InputError unless `t` is a style code's mean or std: CODE_CHANNELS (or, from older files,
    STYLE_CHANNELS) finite values (std >= 0)."""
    if tuple(t.shape) not in ((CODE_CHANNELS,), (STYLE_CHANNELS,)):
        raise InputError(f"{where}: tensor '{name}' has shape {tuple(t.shape)}, a style code needs "
                         f"({CODE_CHANNELS},); make it again from an image (it is not a VGG style code)")
    if not bool(torch.isfinite(t.float()).all()):
        raise InputError(f"{where}: tensor '{name}' holds NaN or inf; the file is corrupt, make it again")
    if name == "std" and bool((t < 0).any()):
        raise InputError(f"{where}: tensor 'std' has negative values (a standard deviation is >= 0); the file is "
                         f"corrupt, make it again")


def blend_styles(codes: Sequence[StyleCode], weights: Sequence[float] | None = None) -> StyleCode:
    """Weighted mix of style codes. Weights are normalised to sum to 1.

    AdaIN is linear in (mean, std), so mixing the codes equals the paper's interpolation of
    the AdaIN outputs, sum_k w_k AdaIN(c, s_k).
    """
    if not codes:
        raise InputError("No style given")
    if weights is None:
        weights = [1.0] * len(codes)
    if len(weights) != len(codes):
        raise InputError(f"{len(codes)} styles but {len(weights)} style weights")
    if not all(math.isfinite(w) for w in weights):
        raise InputError(f"Style weights must be finite numbers, got {', '.join(f'{w:g}' for w in weights)}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise InputError("Style weights must be non-negative and not all zero")
    total = float(sum(weights))
    n = min(len(c.mean) for c in codes)  # an older relu4_1-only code mixes with the others' relu4_1 tails
    mean = sum(w / total * c.mean[-n:] for w, c in zip(weights, codes, strict=True))
    std = sum(w / total * c.std[-n:] for w, c in zip(weights, codes, strict=True))
    if len(codes) == 1:
        return codes[0]
    source = " + ".join(f"{w / total:.2f}*{c.source}" for w, c in zip(weights, codes, strict=True))
    return StyleCode(mean, std, source)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Keep the content's colours: the stylized luminance with the content's chrominance.

    Luminance-only transfer (Gatys et al. 2016, "Preserving color in neural artistic style
    transfer", method 2), done in YCbCr on RGB in [0, 1]. It works from a StyleCode alone (no
    style image needed), so it also works per video frame and with presets.
    """
    if content.shape[-2:] != stylized.shape[-2:]:
        content = F.interpolate(content, size=stylized.shape[-2:], mode="bilinear", align_corners=False)
    w = torch.tensor([0.299, 0.587, 0.114], device=stylized.device, dtype=stylized.dtype).view(1, 3, 1, 1)
    y_out = (stylized * w).sum(1, keepdim=True)
    y_in = (content.to(stylized.dtype) * w).sum(1, keepdim=True)
    # Adding the luminance difference keeps the content's Cb/Cr exactly (YCbCr is linear).
    return (content.to(stylized.dtype) + (y_out - y_in)).clamp(0, 1)

