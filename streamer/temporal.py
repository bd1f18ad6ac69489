"""Temporal smoothing: stylized video that does not flicker, without washing out the style.

Two mechanisms, as the issue asked for; measured with benchmarks/flicker.py (trained decoder,
360p dev videos, 2 styles, CPU; benchmarks/results/flicker-cpu-bf16-2026-11-26.json, and the GPU
cost in smoothing-timing-gpu-h200-2026-11-26.json):

1. `StatSmoother`: an EMA of the content's relu4_1 mean/std over time (between `engine.encode`
   and `engine.decode`), reset on cuts. It is *noise-gated*: a change the size of sensor noise is
   averaged, a larger one (motion, zoom, lighting) is followed at once, because statistics that
   lag behind the content give AdaIN the wrong normalisation: a plain EMA (momentum 0.8) cost
   +7 % style loss on the dev videos. Measured honestly, this mechanism removes no flicker with
   the trained decoder (warping error x1.00, also on a static scene with sensor noise): the
   flicker is local texture, not the 512 + 512 global numbers. Gated, it costs nothing
   (style x1.003) and is kept for what it is meant for (global wobble of the statistics).
2. `FlowBlender`, which does the work: the decoder's textures differ locally between frames even
   for nearly equal inputs. The previous *output* is warped onto the current frame along the
   optical flow of the *input* frames (OpenCV DIS at reduced resolution) and blended in where the
   flow is reliable, more strongly for the coarse structure than for the fine texture:

       y = cur + m*b*(warp(prev) - cur) + m*(b_c - b)*lowpass(warp(prev) - cur)

   Averaging two differently placed textures lowers their contrast, which is what washes the
   style out (with the trained decoder a plain blend doubled the style loss). So the fine detail
   of y (below `detail_sigma`) is then scaled back to the local contrast of the current output:

       out = lp(y) + (y - lp(y)) * g,  g = 1 + m*(clip(sqrt(E_cur / E_y), 1, 3) - 1)

   with E the local energy of the detail (its Gaussian mean over contrast_sigma = 12 px: a
   narrower window follows single strokes and left the style loss of one dev pair 1.15x per-frame,
   this one 1.11x, with the 20k-step decoder). m is 1 where the flow passes the forward-backward
   check of Ruder et al. (2016), is not on a motion boundary and actually explains the input (the
   warped previous input matches the current one: this catches things that appear without moving,
   which the flow alone cannot see); it is eroded and blurred so that no seam shows. Where it is 0
   (occlusions, disocclusions, cuts) out is the current output, unchanged, so nothing leaves a
   ghost trail.

`SceneCutDetector` resets both on a cut; `TemporalSmoother` holds the three and is what the
stream loop calls. Defaults: see `TemporalSettings`.

On a GPU the stylized frames stay on the device. `stylize()` queues the network's work first and
does the CPU's part while the GPU computes: thumbnails and cut detection during the encoder, the
flow of the batch (DIS twice + the mask: about 5 ms per frame at flow_size 240 on the H200
machine's CPU, 7-13 ms at 400, which did not always hide behind a 13 ms 720p network) during the
decoder; the flow fields and masks of a batch then go up in one pinned, asynchronous copy.
`smooth()` upsamples, warps, blends and restores the contrast on the device: about 40 small
element-wise / depthwise-conv kernels per frame, no host round trip (the sampling grid and blur
kernels are cached there).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engines.adain import StyleCode
from engines.errors import ConfigError

log = logging.getLogger(__name__)

MECHANISMS = ("both", "stats", "flow", "off")
DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
RESET_KEYS = ("seek", "loop", "scene_cut")  # Frame.meta flags after which the past is not this frame's past
COARSE_SIGMA = 4.0  # px of the output: structure above this scale is blended with flow_blend_coarse
MAX_GAIN = 3.0      # the contrast restoration never amplifies detail more than this
CONTRAST_DOWN = 4  # the local contrast is measured at this fraction of the resolution: smooth at that scale


@dataclass
class TemporalSettings:
    """How the smoother works. Defaults chosen with benchmarks/flicker.py (29k-step decoder, 360p,
    cats + fox, 2 styles; flow mechanism alone, means over the 4 video/style pairs and the worst
    pair): warping error 0.48x per-frame, style loss 1.085x (targets 0.5x, 1.1x; worst pair 0.50x /
    1.10x). flow_blend sets the trade-off (at flow_size 240: b=0.7 gives 0.46x / 1.11x, 0.8 0.46x /
    1.15x); without the contrast restoration b=0.7 gives 0.32x but more than doubles the style loss,
    and restoring a second, coarser band (1.5-4 px) made both worse (0.50x / 1.18x).
    flow_size 240 rather than 400 (0.44x / 1.10x at b=0.7): the flow's CPU work then hides behind
    the network on a GPU (at 720p on an H200 the smoothing added 0.97-1.16 ms per frame, against
    1.3-10.8 ms at 400, where DIS and its checks took 7.2-12.6 ms beside the 13 ms network).
    flow_tolerance 8 over 2 bought about 0.01 of warp ratio at no style cost; cut_threshold 0.35
    stops a false cut in the cats video (a cat jumping at the camera, 0.33).

    stat_momentum: weight of the past in the EMA of the content statistics (0 = off).
    stat_noise:    the EMA's noise gate: a mean relative change of the statistics of this size
                   lowers the momentum to 1/e of it (0 = a plain EMA).
    flow_blend:    weight b of the warped previous output's fine texture where the flow is
                   reliable (0 = flow blending off).
    flow_blend_coarse: the same weight for structure coarser than COARSE_SIGMA (colour, shading).
    detail_sigma:  scale (px of the output) below which the blend's detail is restored to the
                   current output's local contrast (0 = off).
    contrast_sigma: the window (px of the output, Gaussian sigma) that local contrast is measured
                   over for that restoration.
    flow_size:     longer side (px) of the thumbnails the flow is computed on.
    flow_preset:   OpenCV DIS preset.
    flow_tolerance: constant term of the forward-backward check, in squared thumbnail pixels.
    photo_threshold: largest grey-level difference (0..1) between the current input and the
                   warped previous input for the flow to count as explaining the pixel.
    cut_threshold: Bhattacharyya distance of H-S histograms above which a frame starts a new scene.
    """

    enabled: bool = True
    mechanism: str = "both"
    stat_momentum: float = 0.8
    stat_noise: float = 0.02
    flow_blend: float = 0.6
    flow_blend_coarse: float = 0.9
    detail_sigma: float = 1.5
    contrast_sigma: float = 12.0
    flow_size: int = 240
    flow_preset: str = "fast"
    flow_tolerance: float = 8.0
    photo_threshold: float = 0.08
    cut_threshold: float = 0.35

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ConfigError(f"temporal.mechanism is {self.mechanism!r}; use one of {', '.join(MECHANISMS)}")
        if not 0 <= self.stat_momentum < 1:
            raise ConfigError(f"temporal.stat_momentum is {self.stat_momentum}; use a value in [0, 1), "
                              "e.g. 0.8")
        if self.stat_noise < 0:
            raise ConfigError(f"temporal.stat_noise is {self.stat_noise}; use 0 (plain EMA) or a positive "
                              "value, e.g. 0.02")
        for key in ("flow_blend", "flow_blend_coarse"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"temporal.{key} is {getattr(self, key)}; use a value in [0, 1], e.g. 0.6")
        if not 0 <= self.detail_sigma <= 16:
            raise ConfigError(f"temporal.detail_sigma is {self.detail_sigma}; use 0 (off) to 16 pixels, "
                              "e.g. 1.5")
        if not 1 <= self.contrast_sigma <= 64:
            raise ConfigError(f"temporal.contrast_sigma is {self.contrast_sigma}; use 1 to 64 pixels, e.g. 12")
        if not 32 <= self.flow_size <= 4096:
            raise ConfigError(f"temporal.flow_size is {self.flow_size}; use 32..4096 pixels, e.g. 240")
        if self.flow_preset not in DIS_PRESETS:
            raise ConfigError(f"temporal.flow_preset is {self.flow_preset!r}; use one of "
                              f"{', '.join(DIS_PRESETS)}")
        if self.flow_tolerance <= 0:
            raise ConfigError(f"temporal.flow_tolerance is {self.flow_tolerance}; use a positive value, "
                              "e.g. 2.0")
        if not 0 < self.photo_threshold <= 1:
            raise ConfigError(f"temporal.photo_threshold is {self.photo_threshold}; use a value in (0, 1]")
        if self.cut_threshold <= 0:
            raise ConfigError(f"temporal.cut_threshold is {self.cut_threshold}; use a positive value, "
                              "e.g. 0.3")

    @property
    def use_stats(self) -> bool:
        return self.mechanism in ("both", "stats") and self.stat_momentum > 0

    @property
    def use_flow(self) -> bool:
        return self.mechanism in ("both", "flow") and max(self.flow_blend, self.flow_blend_coarse) > 0


# -- warping and filtering --------------------------------------------------------------------------
# Flow convention (OpenCV's): flow[y, x] = (dx, dy) and warp(img, flow)[y, x] = img[y + dy, x + dx],
# bilinear, borders replicated. DIS calc(a, b) gives the flow with a(x) ~ b(x + flow(x)), so
# warp(b, calc(a, b)) ~ a.

_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    if (h, w) not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        _GRIDS[(h, w)] = (np.tile(np.arange(w, dtype=np.float32), (h, 1)),
                          np.tile(np.arange(h, dtype=np.float32)[:, None], (1, w)))
    return _GRIDS[(h, w)]


def warp_numpy(img: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Warp an H x W (x C) image by an H x W x 2 flow with cv2.remap (CPU)."""
    gx, gy = _pixel_grid(*flow.shape[:2])
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


def _padding(h: int, w: int) -> tuple[int, int]:
    return -h % CONTRAST_DOWN, -w % CONTRAST_DOWN


def local_mean_numpy(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted local mean over `sigma` px, computed at 1 / CONTRAST_DOWN resolution
    (borders replicated up to a multiple of it, so the reduction is an exact block mean, as on the device)."""
    h, w = img.shape[:2]
    ph, pw = _padding(h, w)
    padded = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
    small = cv2.resize(padded, None, fx=1 / CONTRAST_DOWN, fy=1 / CONTRAST_DOWN, interpolation=cv2.INTER_AREA)
    big = cv2.resize(blur_numpy(small, sigma / CONTRAST_DOWN), (w + pw, h + ph),
                     interpolation=cv2.INTER_LINEAR)
    return big[:h, :w]


def local_mean_torch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """`local_mean_numpy` for N x C x H x W on the device."""
    h, w = x.shape[-2:]
    ph, pw = _padding(h, w)
    small = F.avg_pool2d(F.pad(x, (0, pw, 0, ph), mode="replicate"), CONTRAST_DOWN)
    big = F.interpolate(blur_torch(small, sigma / CONTRAST_DOWN), size=(h + ph, w + pw), mode="bilinear",
                        align_corners=False)
    return big[..., :h, :w]


# -- scene cuts ----------------------------------------------------------------------------------

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


class SceneCutDetector:
    """Cheap cut detection on the input frames.

    Score: Bhattacharyya distance between hue-saturation histograms of 64 x 36 thumbnails, which
    moves little with motion and lighting (consecutive frames of the dev videos: <= 0.32, during a
    cat jumping at the camera; different photos: 0.37 and up, median 0.75). A grey-level change of
    more than `gray_jump` on average (lights switched, or a cut between two grey scenes the
    histogram cannot tell apart) counts as a cut too. Give it a thumbnail (`thumbnail()`): on a
    320 px one it takes 0.06 ms, on a full 720p frame 0.5 ms.
    """

    def __init__(self, threshold: float = 0.3, gray_jump: float = 0.3):
        self.threshold = threshold
        self.gray_jump = gray_jump
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.last_score = 0.0

    def reset(self) -> None:
        self._prev = None

    @staticmethod
    def _signature(frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        small = cv2.resize(frame_bgr, (64, 36), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256]).ravel()
        return hist / max(float(hist.sum()), 1.0), cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)

    def __call__(self, frame_bgr: np.ndarray) -> bool:
        """True if this frame starts a new scene (not for the very first frame)."""
        sig = self._signature(frame_bgr)
        prev, self._prev = self._prev, sig
        if prev is None:
            self.last_score = 0.0
            return False
        dist = float(cv2.compareHist(prev[0], sig[0], cv2.HISTCMP_BHATTACHARYYA))
        jump = float(np.abs(prev[1].astype(np.float32) - sig[1]).mean()) / 255.0
        self.last_score = dist
        return dist > self.threshold or jump > self.gray_jump


# -- (a) statistics --------------------------------------------------------------------------------

class StatSmoother:
    """Noise-gated EMA over time of the content's relu4_1 per-channel mean and std (fp32, on their
    device; no host synchronisation, so it does not stall a GPU pipeline).

    Per frame, d = mean over channels of (|m - m_avg| + |s - s_avg|) / (2 s_avg), the change
    relative to the running average, and the momentum is k = momentum * exp(-(d / noise)^2):
    sensor noise (d ~ 0.01 on the dev frames) is averaged with k ~ 0.7, motion (median d
    0.015-0.06) is followed within a frame or two. noise = 0 gives a plain EMA.
    """

    def __init__(self, momentum: float = 0.8, noise: float = 0.02):
        self.momentum = momentum
        self.noise = noise
        self.mean: torch.Tensor | None = None  # C (one frame's worth), the running state
        self.std: torch.Tensor | None = None
        self.last_k: torch.Tensor | float = 0.0  # the momentum used for the last frame (a tensor if gated)

    def reset(self) -> None:
        self.mean = self.std = None

    @torch.inference_mode()
    def update(self, mean: torch.Tensor, std: torch.Tensor,
               cuts: Sequence[bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """N x C measured stats of N consecutive frames -> N x C smoothed (sequentially over N).

        A True in `cuts` restarts the average at that frame.
        """
        out_m, out_s = [], []
        for i in range(mean.shape[0]):
            m, s = mean[i].float(), std[i].float()
            if self.mean is None or self.mean.shape != m.shape or self.mean.device != m.device or \
                    (cuts is not None and cuts[i]):
                self.mean, self.std = m, s
            else:
                k: torch.Tensor | float = self.momentum
                if self.noise > 0:
                    d = ((m - self.mean).abs() + (s - self.std).abs()).div_(self.std.clamp_min(1e-6)).mean() * 0.5
                    k = torch.exp(-(d / self.noise) ** 2) * self.momentum
                self.mean = torch.lerp(m, self.mean, k)
                self.std = torch.lerp(s, self.std, k)
                self.last_k = k
            out_m.append(self.mean)
            out_s.append(self.std)
        return torch.stack(out_m), torch.stack(out_s)


# -- (b) flow ----------------------------------------------------------------------------------------

@dataclass
class FlowEstimate:
    """Backward flow (current -> previous) and the reliability mask, at thumbnail resolution."""

    flow: np.ndarray   # h x w x 2, in thumbnail pixels
    mask: np.ndarray   # h x w float32 in [0, 1]: 1 = blend, 0 = keep the current output
    device: torch.Tensor | None = None  # 3 x h x w (flow, mask) already on the device, if uploaded


class FlowBlender:
    """Blends the warped previous output into the current one where the input flow is reliable,
    then restores the fine detail's local contrast (see the module docstring)."""

    def __init__(self, blend: float = 0.7, flow_size: int = 320, preset: str = "fast",
                 photo_threshold: float = 0.08, fb_tolerance: float = 2.0, blend_coarse: float | None = None,
                 detail_sigma: float = 1.5, contrast_sigma: float = 12.0):
        self.blend = blend
        self.blend_coarse = blend if blend_coarse is None else blend_coarse
        self.detail_sigma = detail_sigma
        self.contrast_sigma = contrast_sigma
        self.flow_size = flow_size
        self.photo_threshold = photo_threshold
        self.fb_tolerance = fb_tolerance  # Ruder et al.'s constant term, in squared *thumbnail* pixels
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self._prev_small: np.ndarray | None = None
        self._prev_out: np.ndarray | torch.Tensor | None = None  # float32: 0..255 H x W x 3, or 0..1 3 x H x W
        self.last_mask_mean = 0.0  # share of the frame that was blended (for the HUD / benchmark)
        self._grid_key: tuple | None = None  # the device path's sampling grid, per frame size
        self._grid = self._grid_scale = None

    @property
    def active(self) -> bool:
        return max(self.blend, self.blend_coarse) > 0

    def reset(self) -> None:
        self._prev_small = None
        self._prev_out = None

    def thumbnail(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The (colour) thumbnail the flow is computed on."""
        return thumbnail(frame_bgr, self.flow_size)

    def estimate(self, prev_small: np.ndarray, cur_small: np.ndarray) -> FlowEstimate:
        """Flow from the current to the previous thumbnail, and where it can be trusted."""
        prev_gray, cur_gray = gray(prev_small), gray(cur_small)
        flow_b = self.dis.calc(cur_gray, prev_gray, None)  # cur(x) ~ prev(x + flow_b(x))
        flow_f = self.dis.calc(prev_gray, cur_gray, None)
        h, w = cur_gray.shape
        gx, gy = _pixel_grid(h, w)
        bu, bv = cv2.split(flow_b)
        f_at = warp_numpy(flow_f, flow_b)
        fu, fv = cv2.split(f_at)
        b2 = bu * bu + bv * bv
        # forward-backward consistency (Ruder et al. 2016, eq. 3-4); numpy reduces over a last axis
        # of 2 slowly, so the channels are handled one by one
        ok = (fu + bu) ** 2 + (fv + bv) ** 2 <= 0.01 * (fu * fu + fv * fv + b2) + self.fb_tolerance
        # motion boundaries; Sobel ksize=1 is a central difference without the 1/2, hence the 0.25
        grad2 = sum(cv2.Sobel(c, cv2.CV_32F, dx, 1 - dx, ksize=1) ** 2 for c in (bu, bv) for dx in (0, 1))
        ok &= grad2 * 0.25 <= 0.01 * b2 + 0.002
        # the flow must explain the input: catches what appears without moving (no flow sees it)
        # (in colour, averaged over 5 x 5: a patch of new content rarely matches the old one by chance)
        diff = cv2.absdiff(warp_numpy(prev_small, flow_b), cur_small)
        if diff.ndim == 3:
            diff = cv2.transform(diff, np.full((1, 3), 1 / 3, np.float32))
        ok &= cv2.blur(diff.astype(np.float32), (5, 5)) <= self.photo_threshold * 255.0
        # samples from outside the previous frame are disocclusions at the border
        sx, sy = gx + bu, gy + bv
        ok &= (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
        # soften: shrink the trusted area by a pixel, then feather the edge
        mask = cv2.erode(ok.astype(np.float32), np.ones((3, 3), np.uint8))
        mask = cv2.GaussianBlur(mask, (5, 5), 1.0)
        return FlowEstimate(flow_b, mask)

    def __call__(self, cur_small: np.ndarray, stylized: np.ndarray | torch.Tensor, cut: bool = False,
                 est: FlowEstimate | None = None) -> np.ndarray | torch.Tensor:
        """Blend for the next frame: its input thumbnail (`thumbnail()`) and its stylized output
        (uint8 H x W x 3 BGR, or a 3 x H x W RGB tensor in [0, 1]). `est`: the flow from the
        previous frame's thumbnail to this one, if already computed."""
        prev_small, prev_out = self._prev_small, self._prev_out
        out, state = stylized, None
        same = (prev_out is not None and prev_small is not None and not cut
                and prev_small.shape == cur_small.shape and isinstance(prev_out, torch.Tensor) ==
                isinstance(stylized, torch.Tensor) and tuple(prev_out.shape) == tuple(stylized.shape)
                and (not isinstance(stylized, torch.Tensor) or prev_out.device == stylized.device))
        if same and self.active:
            if est is None:
                est = self.estimate(prev_small, cur_small)
            self.last_mask_mean = float(est.mask.mean())
            if isinstance(stylized, torch.Tensor):
                out, state = self._blend_torch(est, prev_out, stylized)
            else:
                out, state = self._blend_numpy(est, prev_out, stylized)
        else:
            self.last_mask_mean = 0.0
        self._prev_small = cur_small
        # keep the blended output (in float: no rounding builds up): the recursion is what makes the
        # filter strong (an IIR filter)
        if state is None:  # a copy: the caller owns `stylized`
            if isinstance(stylized, torch.Tensor):
                state = stylized.to(torch.float32, copy=True)
            else:
                state = stylized.astype(np.float32)
        self._prev_out = state
        return out

    def _blend_numpy(self, est: FlowEstimate, prev: np.ndarray, cur_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # whole-image OpenCV passes (SIMD, threaded): numpy's temporaries (and its slow reductions
        # over a last axis of 3) would cost more than the flow at 720p
        h, w = cur_u8.shape[:2]
        th, tw = est.flow.shape[:2]
        u, v = (cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in cv2.split(est.flow))
        gx, gy = _pixel_grid(h, w)
        warped = cv2.remap(prev, cv2.scaleAdd(u, w / tw, gx), cv2.scaleAdd(v, h / th, gy), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        mask = cv2.resize(est.mask, (w, h), interpolation=cv2.INTER_LINEAR)

        def per_channel(m: np.ndarray) -> np.ndarray:
            return cv2.merge((m, m, m))

        cur = cur_u8.astype(np.float32)
        d = cv2.subtract(warped, cur)
        y = cv2.add(cur, cv2.multiply(d, per_channel(mask * self.blend)))
        if self.blend_coarse != self.blend:
            coarse = per_channel(mask * (self.blend_coarse - self.blend))
            y = cv2.add(y, cv2.multiply(blur_numpy(d, COARSE_SIGMA), coarse))
        if self.detail_sigma > 0:
            yl, cl = blur_numpy(y, self.detail_sigma), blur_numpy(cur, self.detail_sigma)
            yd, cd = cv2.subtract(y, yl), cv2.subtract(cur, cl)
            ones = np.ones((1, 3), np.float32)
            energy = cv2.merge((cv2.transform(cv2.multiply(yd, yd), ones), cv2.transform(cv2.multiply(cd, cd), ones)))
            e_y, e_c = cv2.split(local_mean_numpy(energy, self.contrast_sigma))
            gain = cv2.sqrt(cv2.divide(e_c + 1.0, e_y + 1.0))
            gain = cv2.min(cv2.max(gain, 1.0), MAX_GAIN)
            gain = cv2.add(cv2.multiply(gain - 1.0, mask), 1.0)
            y = cv2.add(yl, cv2.multiply(yd, per_channel(gain)))
        np.clip(y, 0.0, 255.0, out=y)  # (cv2.min with a number would clip the first channel only)
        return cv2.convertScaleAbs(y), y

    def _blend_torch(self, est: FlowEstimate, prev: torch.Tensor, cur_in: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = cur_in.shape[-2:]
        th, tw = est.flow.shape[:2]
        small = est.device
        if small is None:  # one upload: flow and mask together
            small = torch.from_numpy(np.dstack([est.flow, est.mask])).permute(2, 0, 1)
            small = small.to(cur_in.device, non_blocking=True)
        big = F.interpolate(small.unsqueeze(0), size=(h, w), mode="bilinear", align_corners=False)[0]
        key = (h, w, th, tw, cur_in.device)
        if self._grid_key != key:  # cached on the device: no host round trip per frame
            ys = torch.linspace(-1.0, 1.0, h, device=cur_in.device).view(h, 1).expand(h, w)
            xs = torch.linspace(-1.0, 1.0, w, device=cur_in.device).view(1, w).expand(h, w)
            self._grid = torch.stack((xs, ys), dim=-1)  # align_corners=True coordinates, as warp_torch
            self._grid_scale = torch.tensor([2.0 / max(w - 1, 1) * w / tw, 2.0 / max(h - 1, 1) * h / th],
                                            device=cur_in.device)
            self._grid_key = key
        grid = torch.addcmul(self._grid, big[:2].permute(1, 2, 0), self._grid_scale)  # thumbnail px -> grid units
        cur = cur_in.float()
        warped = F.grid_sample(prev.unsqueeze(0), grid.unsqueeze(0), mode="bilinear", padding_mode="border",
                               align_corners=True)[0]
        mask = big[2:3]
        d = warped - cur
        y = torch.addcmul(cur, d, mask, value=self.blend)
        if self.blend_coarse != self.blend:
            y.addcmul_(blur_torch(d.unsqueeze(0), COARSE_SIGMA)[0], mask, value=self.blend_coarse - self.blend)
        if self.detail_sigma > 0:
            low = blur_torch(torch.stack((y, cur)), self.detail_sigma)  # 2 x 3 x H x W, one pass for both
            detail = torch.stack((y, cur)) - low
            energy = local_mean_torch(detail.square().sum(1).unsqueeze(0), self.contrast_sigma)[0]
            eps = 1.0 / 255 ** 2
            gain = ((energy[1] + eps) / (energy[0] + eps)).sqrt_().clamp_(1.0, MAX_GAIN)
            y = torch.addcmul(low[0], detail[0], gain.sub_(1.0).mul_(mask[0]).add_(1.0))
        y.clamp_(0, 1)
        return y.to(cur_in.dtype, copy=True), y  # the output is the caller's, the float state ours


# -- the smoother the stream loop uses -----------------------------------------------------------

@dataclass
class _Seen:
    """What stylize() learned about a frame, handed on to smooth() for the same frame."""

    frame: np.ndarray
    small: np.ndarray                 # colour thumbnail, flow_size on the longer side
    cut: bool
    prev_small: np.ndarray | None     # the previous frame's thumbnail (None after a cut)
    est: FlowEstimate | None = None   # flow prev_small -> small, computed in stylize()


class TemporalSmoother:
    """Statistics EMA + flow blending + cut detection, in the order the stream loop calls them:

        y = smoother.stylize(engine, frames, batch, style, alpha)   # a batch of consecutive frames
        out_i = smoother.smooth(frames[i], y_i)                     # each frame, in order

    `smooth` alone also works (flow blending without the statistics EMA). Setting `enabled` to
    False and back resets the state, since the frames in between were not seen.
    """

    def __init__(self, settings: TemporalSettings | None = None, profile: bool = False):
        self.settings = settings or TemporalSettings()
        s = self.settings
        self.detector = SceneCutDetector(s.cut_threshold)
        self.stats = StatSmoother(s.stat_momentum, s.stat_noise)
        self.flow = FlowBlender(s.flow_blend, s.flow_size, s.flow_preset, s.photo_threshold, s.flow_tolerance,
                                s.flow_blend_coarse, s.detail_sigma, s.contrast_sigma)
        self._enabled = s.enabled and s.mechanism != "off"
        self._pending: deque[_Seen] = deque()
        self._last_small: np.ndarray | None = None
        self.profile = profile  # synchronise the device around timed work (benchmarks)
        self.stylize_ms: deque[float] = deque(maxlen=1000)  # smoother's own work per frame, in stylize
        self.stylize_flow_ms: deque[float] = deque(maxlen=1000)  # the part of it that is the flow
        self.smooth_ms: deque[float] = deque(maxlen=1000)
        self.cuts = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        on = bool(on) and self.settings.mechanism != "off"
        if on != self._enabled:
            self.reset()
            log.info("temporal smoothing %s", "on" if on else "off")
        self._enabled = on

    def reset(self) -> None:
        self.detector.reset()
        self.stats.reset()
        self.flow.reset()
        self._pending.clear()
        self._last_small = None

    @staticmethod
    def needs_reset(meta: Mapping | None) -> bool:
        """True for a frame after which the past does not continue (Frame.meta seek/loop/scene_cut)."""
        return bool(meta) and any(meta.get(k) for k in RESET_KEYS)

    def _see(self, frame_bgr: np.ndarray, reset: bool) -> _Seen:
        """Cut detection and the flow thumbnail, once per frame. A reset marks the frame as a cut,
        which restarts both mechanisms at it (also in the middle of a batch)."""
        if reset:
            self.detector.reset()
        small = thumbnail(frame_bgr, self.settings.flow_size)
        cut = self.detector(small) or reset
        if cut:
            self.cuts += 1
            log.debug("scene cut (score %.2f)", self.detector.last_score)
        prev, self._last_small = self._last_small, small
        return _Seen(frame_bgr, small, cut, None if cut else prev)

    def _estimate(self, seen: Sequence[_Seen], device: torch.device | None) -> None:
        """The flow of each frame of a batch (CPU); on a GPU all of them go up in one copy."""
        todo = [s for s in seen if s.prev_small is not None and s.prev_small.shape == s.small.shape]
        for s in todo:
            s.est = self.flow.estimate(s.prev_small, s.small)
        if todo and device is not None and device.type == "cuda":
            host = torch.from_numpy(np.stack([np.dstack([s.est.flow, s.est.mask]) for s in todo]))
            up = host.pin_memory().to(device, non_blocking=True).permute(0, 3, 1, 2)
            for s, t in zip(todo, up, strict=True):
                s.est.device = t

    def stylize(self, engine, frames_bgr: Sequence[np.ndarray], batch: torch.Tensor, style: StyleCode,
                alpha: float, resets: Sequence[bool] | None = None) -> torch.Tensor:
        """encode -> EMA of the content statistics -> decode, for consecutive frames; then the flow
        of each frame (on the CPU, while a GPU runs the network).

        `frames_bgr` are the input frames of `batch` (any size: only thumbnails are used);
        `resets[i]` (e.g. from `needs_reset(frame.meta)`) restarts the smoothing at frame i.
        """
        if not self._enabled:
            return engine.stylize(batch, style, alpha)
        device = batch.device
        # Work is queued on the device first and the CPU's part done while it runs (on a GPU): the
        # thumbnails and cut detection during the encoder (or the whole network), the flow during
        # the decoder.
        if self.settings.use_stats:
            encoded, y = engine.encode(batch), None
        else:
            encoded, y = None, engine.stylize(batch, style, alpha)
        t0 = self._clock(device)
        self._pending.clear()  # anything not smoothed by now was dropped by the caller
        seen = [self._see(f, bool(resets and resets[i])) for i, f in enumerate(frames_bgr)]
        self._pending.extend(seen)
        if encoded is None:
            spent = self._clock(device) - t0
        else:
            feat, mean, std = encoded
            mean, std = self.stats.update(mean, std, [s.cut for s in seen])
            spent = self._clock(device) - t0
            y = engine.decode(feat, mean, std, style, alpha, tuple(batch.shape[-2:]))
        flow = 0.0
        if self.settings.use_flow:
            t1 = self._clock(device)
            self._estimate(seen, device)
            flow = self._clock(device) - t1
        n = max(len(frames_bgr), 1)
        self.stylize_ms.extend([(spent + flow) * 1000 / n] * len(frames_bgr))
        self.stylize_flow_ms.extend([flow * 1000 / n] * len(frames_bgr))
        return y

    def smooth(self, frame_in_bgr: np.ndarray, stylized: np.ndarray | torch.Tensor,
               reset: bool = False) -> np.ndarray | torch.Tensor:
        """Flow blending for one frame, called in order. `stylized` is a uint8 BGR image (CPU) or a
        3 x H x W RGB tensor (on the device); the result has the same type, size and layout.
        """
        if not self._enabled:
            return stylized
        device = stylized.device if isinstance(stylized, torch.Tensor) else None
        t0 = self._clock(device)
        if self._pending and self._pending[0].frame is frame_in_bgr:
            seen = self._pending.popleft()
            if reset:
                seen.cut, seen.est = True, None
        else:  # stylize() was not called for this frame (or out of order): look at it here
            self._pending.clear()
            seen = self._see(frame_in_bgr, reset)
        out = stylized
        if self.settings.use_flow:
            # the estimate is only good if its previous frame is the one the blender holds
            est = seen.est if seen.prev_small is not None and seen.prev_small is self.flow._prev_small else None
            out = self.flow(seen.small, stylized, cut=seen.cut, est=est)
        self.smooth_ms.append((self._clock(device) - t0) * 1000)
        return out

    def added_ms(self) -> float:
        """Median milliseconds per frame the smoother adds (its own work, not the network's)."""
        a = float(np.median(self.stylize_ms)) if self.stylize_ms else 0.0
        b = float(np.median(self.smooth_ms)) if self.smooth_ms else 0.0
        return a + b

    def _clock(self, device: torch.device | None) -> float:
        if self.profile and device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()
