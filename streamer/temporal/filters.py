"""The image operations the smoother is made of, each as a numpy/OpenCV twin (the CPU path) and a torch
twin (the device path) that give the same result: warping by a flow, Gaussian blur, local mean; and
the thumbnail that cut detection and flow share.

Flow convention (OpenCV's): flow[y, x] = (dx, dy) and warp(img, flow)[y, x] = img[y + dy, x + dx],
bilinear, borders replicated. DIS calc(a, b) gives the flow with a(x) ~ b(x + flow(x)), so
warp(b, calc(a, b)) ~ a.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CONTRAST_DOWN = 4  # the local contrast is measured at this fraction of the resolution: smooth at that scale

_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_GRIDS_XY: dict[tuple[int, int], np.ndarray] = {}


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    if (h, w) not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        _GRIDS[(h, w)] = (np.tile(np.arange(w, dtype=np.float32), (h, 1)),
                          np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w)))
    return _GRIDS[(h, w)]


def pixel_grid_xy(h: int, w: int) -> np.ndarray:
    """`pixel_grid` as one H x W x 2 map (x, y), the form cv2.remap takes in a single array."""
    if (h, w) not in _GRIDS_XY:
        if len(_GRIDS_XY) > 8:
            _GRIDS_XY.clear()
        _GRIDS_XY[(h, w)] = cv2.merge(pixel_grid(h, w))
    return _GRIDS_XY[(h, w)]


def warp_numpy(img: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Warp an H x W (x C) image by an H x W x 2 flow with cv2.remap (CPU)."""
    gx, gy = pixel_grid(*flow.shape[:2])
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], interpolation,
                     borderMode=cv2.BORDER_REPLICATE)


def warp_torch(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp (N x) C x H x W by a (N x) 2 x H x W flow with grid_sample; same result as `warp_numpy`."""
    squeeze = img.ndim == 3
    if squeeze:
        img, flow = img.unsqueeze(0), flow.unsqueeze(0)
    n, _, h, w = img.shape
    flow = flow.to(img.device, torch.float32)
    xs = torch.arange(w, device=img.device, dtype=torch.float32).view(1, 1, w)
    ys = torch.arange(h, device=img.device, dtype=torch.float32).view(1, h, 1)
    # align_corners=True: -1 and 1 are the centres of the first and last pixels, as in remap
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1).expand(n, h, w, 2)
    out = F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    out = out.to(img.dtype)
    return out[0] if squeeze else out


def _gauss_ksize(sigma: float) -> int:
    return int(round(sigma * 8 + 1)) | 1  # what cv2.GaussianBlur picks for float images


def blur_numpy(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma)


def blur_to_float(img: np.ndarray, sigma: float) -> np.ndarray:
    """`blur_numpy` of a uint8 image, in float32 (the same kernel as for a float image; no converted copy)."""
    k = cv2.getGaussianKernel(_gauss_ksize(sigma), sigma)
    return cv2.sepFilter2D(img, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT_101)


_KERNELS: dict[tuple[float, str], torch.Tensor] = {}


def blur_torch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of N x C x H x W (float), separable, depthwise; borders as cv2 (reflect-101),
    so it matches `blur_numpy`."""
    ksize = _gauss_ksize(sigma)
    key = (sigma, str(x.device))
    if key not in _KERNELS:
        _KERNELS[key] = torch.from_numpy(cv2.getGaussianKernel(ksize, sigma).astype(np.float32).ravel()).to(x.device)
    k = _KERNELS[key]
    c, (h, w) = x.shape[1], x.shape[-2:]
    r = ksize // 2
    mode = "reflect" if r < min(h, w) else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1).expand(c, 1, 1, ksize), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1).expand(c, 1, ksize, 1), groups=c)


def padding(h: int, w: int) -> tuple[int, int]:
    return -h % CONTRAST_DOWN, -w % CONTRAST_DOWN


def local_mean_numpy(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local mean over `sigma` px, computed at 1 / CONTRAST_DOWN resolution
    (borders replicated up to a multiple of it, so the reduction is an exact block mean, as on the device)."""
    return upsample_numpy(local_mean_small_numpy(img, sigma), img.shape[0], img.shape[1])


def local_mean_small_numpy(img: np.ndarray, sigma: float) -> np.ndarray:
    """`local_mean_numpy` before its upsampling: at 1 / CONTRAST_DOWN of the (padded) size."""
    h, w = img.shape[:2]
    ph, pw = padding(h, w)
    padded = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    small = cv2.resize(padded, None, fx=1 / CONTRAST_DOWN, fy=1 / CONTRAST_DOWN, interpolation=cv2.INTER_AREA)
    return blur_numpy(small, sigma / CONTRAST_DOWN)


def upsample_numpy(small: np.ndarray, h: int, w: int) -> np.ndarray:
    """A local_mean_small_numpy result (or a function of it) back to h x w, C-contiguous (the fused
    kernels' loops need it; where the frame was padded the resize is cropped)."""
    ph, pw = padding(h, w)
    return np.ascontiguousarray(cv2.resize(small, (w + pw, h + ph), interpolation=cv2.INTER_LINEAR)[:h, :w])


def local_mean_torch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """`local_mean_numpy` for N x C x H x W on the device."""
    return upsample_torch(local_mean_small_torch(x, sigma), *x.shape[-2:])


def local_mean_small_torch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = padding(h, w)
    return blur_torch(F.avg_pool2d(F.pad(x, (0, pw, 0, ph), mode="replicate"), CONTRAST_DOWN), sigma / CONTRAST_DOWN)


def upsample_torch(small: torch.Tensor, h: int, w: int) -> torch.Tensor:
    ph, pw = padding(h, w)
    return F.interpolate(small, size=(h + ph, w + pw), mode="bilinear", align_corners=False)[..., :h, :w]


def thumbnail(frame_bgr: np.ndarray, longer: int) -> np.ndarray:
    """Colour thumbnail with the longer side `longer` (never upscaled): the one resize of the full
    frame that cut detection and flow share.

    OpenCV's area resize is several times faster for an integer factor, so the frame is first
    averaged over the largest integer factor that divides it and stays above the size (1280x720 to
    400x225: by 2, then area again from 640x360)."""
    h, w = frame_bgr.shape[:2]
    k = min(1.0, longer / max(h, w))
    size = (max(8, round(w * k)), max(8, round(h * k)))
    if size == (w, h):
        return frame_bgr
    f = next((f for f in range(int(min(w / size[0], h / size[1])), 1, -1) if w % f == 0 and h % f == 0), 1)
    if f > 1:
        frame_bgr = cv2.resize(frame_bgr, (w // f, h // f), interpolation=cv2.INTER_AREA)
        if frame_bgr.shape[1::-1] == size:
            return frame_bgr
    return cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA)


def gray(img_bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img_bgr, cv2.COLOR_BGR2GRAY) if img_bgr.ndim == 3 else img_bgr
