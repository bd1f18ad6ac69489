"""What every backend provides (the `Engine` of docs/design.md), and the frame <-> tensor boundary.

Frames come from OpenCV as H x W x 3 uint8 BGR; the network wants N x 3 x H x W RGB in
[0, 1]. The conversion happens once, here, after the upload (on the GPU where there is one),
so a frame crosses the bus once as bytes each way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from engines.adain import StyleCode
from engines.images import MIN_SIDE, resize_shorter

STYLE_SIZE = 512  # shorter side a style image is encoded at (the paper's setting)


class Engine(ABC):
    """Runs the per-frame graph. Batches are N x 3 x H x W float RGB [0, 1] on `self.device`."""

    name: str = "?"
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32

    @abstractmethod
    def encode(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The graph's features (relu4_1 for the full model), and their fp32 per-channel mean and std (N x C)."""

    @abstractmethod
    def decode(self, feat: torch.Tensor, content_mean: torch.Tensor, content_std: torch.Tensor,
               style: StyleCode, alpha: float, out_hw: tuple[int, int]) -> torch.Tensor:
        """AdaIN with the given content statistics, then the decoder -> N x 3 x H x W."""

    def stylize(self, batch: torch.Tensor, style: StyleCode, alpha: float) -> torch.Tensor:
        feat, mean, std = self.encode(batch)
        return self.decode(feat, mean, std, style, alpha, tuple(batch.shape[-2:]))

    @property
    def model(self) -> str:
        """Which network runs: "full" (VGG-19 + AdaIN decoder) or "lite" (engines.lite)."""
        return getattr(getattr(self, "graph", None), "kind", "full")

    def encode_style(self, image: torch.Tensor, size: int | None = STYLE_SIZE, source: str = "") -> StyleCode:
        """1 x 3 x H x W RGB [0, 1] (any device) -> the style's code (relu1_1..relu4_1 means and stds)."""
        image = resize_shorter(image.to(self.device, torch.float32), size)
        if min(image.shape[-2:]) < MIN_SIDE:  # a tiny style image: the network needs MIN_SIDE
            image = resize_shorter(image, MIN_SIDE)
        # Every network reads the same VGG code (engines.adain.CODE_LAYERS), computed once per style in fp32
        # off the per-frame path; the full model reads its relu4_1 tail.
        from engines.machine import cpu_cores, torch_threads
        from engines.vgg import style_statistics

        with torch_threads(max(torch.get_num_threads(), cpu_cores())):  # once per style: all cores
            mean, std = style_statistics(image)
        return StyleCode(mean[0].float().cpu(), std[0].float().cpu(), source)

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({str(self.dtype).removeprefix('torch.')})"

    def describe_model(self) -> str:
        """The network and how it runs, e.g. "lite model, torch on cpu (bfloat16)" (HUD, logs, stats)."""
        return f"{self.model} model, {self.describe()}"

    # -- the frame boundary -------------------------------------------------------------------

    def upload(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """BGR uint8 frames (same size) -> N x 3 x H x W RGB float on the device.

        On CUDA the frames are stacked straight into a reused pinned buffer and copied
        asynchronously; colour order, layout and scaling are done on the GPU.
        """
        if self.device.type == "cuda":
            host = self._pinned((len(frames), *frames[0].shape), "up")
            np.stack(frames, out=host.numpy())
            x = host.to(self.device, non_blocking=True)
        else:
            x = torch.from_numpy(np.stack(frames))
        return x.flip(-1).permute(0, 3, 1, 2).to(self.dtype).div_(255)

    def download(self, batch: torch.Tensor) -> list[np.ndarray]:
        """N x 3 x H x W RGB [0, 1] -> BGR uint8 frames (one transfer)."""
        if batch.dtype == torch.bfloat16:  # scaled in bf16, 255 * x would be rounded twice
            batch = batch.float()
        if batch.device.type == "cpu":
            return [chw_to_bgr_uint8(img) for img in batch.detach().contiguous().numpy()]
        x = batch.clamp(0, 1).mul(255).round_().to(torch.uint8).flip(1).permute(0, 2, 3, 1).contiguous()
        if x.device.type == "cuda":
            host = self._pinned(tuple(x.shape), "down")
            host.copy_(x, non_blocking=True)
            torch.cuda.current_stream(x.device).synchronize()
            return [f.copy() for f in host.numpy()]  # the pinned buffer is reused by the next call
        return list(x.numpy())

    def _pinned(self, shape: tuple, role: str) -> torch.Tensor:
        """A page-locked uint8 host buffer per (shape, direction), allocated once.

        Safe to reuse: the loop is sequential, so a batch's upload has finished before the
        next batch is stacked into the same buffer (its result was downloaded in between).
        """
        pool = self.__dict__.setdefault("_pinned_pool", {})
        key = (shape, role)
        if key not in pool:
            # A normal tensor even when first asked for under inference_mode: an inference tensor
            # could not be copied into later, outside that mode.
            with torch.inference_mode(False):
                pool[key] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        return pool[key]


def chw_to_bgr_uint8(img: np.ndarray) -> np.ndarray:
    """3 x H x W RGB float32 in [0, 1] -> H x W x 3 BGR uint8, rounded and clipped as the device path does.

    Per plane in OpenCV (scale, round and saturate in one SIMD pass), then interleaved in BGR order: on a
    CPU this is 0.3 ms per 640x360 frame against 2.3 ms for the same steps as torch ops."""
    return cv2.merge([cv2.convertScaleAbs(cv2.max(img[c], 0.0), alpha=255.0) for c in (2, 1, 0)])
