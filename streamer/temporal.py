"""Temporal smoothing: stylized video that does not flicker, without washing out the style.

Frame-by-frame AdaIN flickers for two reasons, and each gets its own mechanism:

1. `StatSmoother`: sensor noise, lighting and motion move the content's relu4_1 mean/std from
   frame to frame, and AdaIN turns every wobble of those 512 + 512 numbers into a global change
   of the decoded texture. An exponential moving average of the statistics (between
   `engine.encode` and `engine.decode`) removes that part at almost no cost (N x 512 numbers).
2. `FlowBlender`: the decoder's textures still differ locally between frames. The previous
   *output* is warped onto the current frame along the optical flow of the *input* frames
   (OpenCV DIS at reduced resolution) and blended in where the flow is reliable:

       out = m * (b * warp(prev_out) + (1 - b) * cur) + (1 - m) * cur

   m is 1 where the flow passes the forward-backward check of Ruder et al. (2016), is not on a
   motion boundary and actually explains the input (the warped previous input matches the
   current one: this catches things that appear without moving, which the flow alone cannot
   see); it is eroded and blurred so that no seam is visible. Where it is 0 (occlusions,
   disocclusions, cuts) the current output is kept as it is, so nothing leaves a ghost trail.

`SceneCutDetector` resets both on a cut; `TemporalSmoother` holds the three and is what the
stream loop calls. Defaults were chosen with benchmarks/flicker.py (see the docstring of
`TemporalSettings`).

On a GPU the stylized frames stay on the device: the flow is computed on the CPU from small
thumbnails of the input (2-3 ms at 320 px), the flow field and mask (a few hundred KB)
go up, and the upsampling, warp (grid_sample) and blend run on the device.
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


@dataclass
class TemporalSettings:
    """How the smoother works. Defaults measured with benchmarks/flicker.py (random decoder, 360p,
    cats + fox, see its JSON): momentum 0.8 and blend 0.7 bring the warping error far below half
    of per-frame stylization while the style loss stays within a few percent of it.

    stat_momentum: weight of the past in the EMA of the content statistics (0 = off).
    flow_blend:    weight b of the warped previous output where the flow is reliable (0 = off).
    flow_size:     longer side (px) of the thumbnails the flow is computed on.
    cut_threshold: Bhattacharyya distance of H-S histograms above which a frame starts a new scene.
    photo_threshold: largest grey-level difference (0..1) between the current input and the
                   warped previous input for the flow to count as explaining the pixel.
    """

    enabled: bool = True
    mechanism: str = "both"
    stat_momentum: float = 0.8
    flow_blend: float = 0.7
    flow_size: int = 320
    cut_threshold: float = 0.3
    flow_preset: str = "fast"
    photo_threshold: float = 0.08

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ConfigError(f"temporal.mechanism is {self.mechanism!r}; use one of {', '.join(MECHANISMS)}")
        if not 0 <= self.stat_momentum < 1:
            raise ConfigError(f"temporal.stat_momentum is {self.stat_momentum}; use a value in [0, 1), "
                              "e.g. 0.8")
        if not 0 <= self.flow_blend <= 1:
            raise ConfigError(f"temporal.flow_blend is {self.flow_blend}; use a value in [0, 1], e.g. 0.7")
        if not 32 <= self.flow_size <= 4096:
            raise ConfigError(f"temporal.flow_size is {self.flow_size}; use 32..4096 pixels, e.g. 320")
        if self.cut_threshold <= 0:
            raise ConfigError(f"temporal.cut_threshold is {self.cut_threshold}; use a positive value, "
                              "e.g. 0.3")
        if self.flow_preset not in DIS_PRESETS:
            raise ConfigError(f"temporal.flow_preset is {self.flow_preset!r}; use one of "
                              f"{', '.join(DIS_PRESETS)}")
        if not 0 < self.photo_threshold <= 1:
            raise ConfigError(f"temporal.photo_threshold is {self.photo_threshold}; use a value in (0, 1]")

    @property
    def use_stats(self) -> bool:
        return self.mechanism in ("both", "stats") and self.stat_momentum > 0

    @property
    def use_flow(self) -> bool:
        return self.mechanism in ("both", "flow") and self.flow_blend > 0


# -- warping -----------------------------------------------------------------------------------
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


# -- scene cuts ----------------------------------------------------------------------------------

def thumbnail(frame_bgr: np.ndarray, longer: int) -> np.ndarray:
    """Colour thumbnail with the longer side `longer` (never upscaled): the one resize of the full
    frame that cut detection and flow share (0.7 ms for 720p)."""
    h, w = frame_bgr.shape[:2]
    k = min(1.0, longer / max(h, w))
    size = (max(8, round(w * k)), max(8, round(h * k)))
    return cv2.resize(frame_bgr, size, interpolation=cv2.INTER_AREA) if size != (w, h) else frame_bgr


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
    """EMA over time of the content's relu4_1 per-channel mean and std (fp32, on their device)."""

    def __init__(self, momentum: float = 0.8):
        self.momentum = momentum
        self.mean: torch.Tensor | None = None  # 512 (one frame's worth), the running state
        self.std: torch.Tensor | None = None

    def reset(self) -> None:
        self.mean = self.std = None

    @torch.inference_mode()
    def update(self, mean: torch.Tensor, std: torch.Tensor,
               cuts: Sequence[bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """N x C measured stats of N consecutive frames -> N x C smoothed (sequentially over N).

        A True in `cuts` restarts the average at that frame.
        """
        k = self.momentum
        out_m, out_s = [], []
        for i in range(mean.shape[0]):
            m, s = mean[i].float(), std[i].float()
            if self.mean is None or self.mean.shape != m.shape or self.mean.device != m.device or \
                    (cuts is not None and cuts[i]):
                self.mean, self.std = m, s
            else:
                self.mean = k * self.mean + (1 - k) * m
                self.std = k * self.std + (1 - k) * s
            out_m.append(self.mean)
            out_s.append(self.std)
        return torch.stack(out_m), torch.stack(out_s)


# -- (b) flow ----------------------------------------------------------------------------------------

@dataclass
class FlowEstimate:
    """Backward flow (current -> previous) and the reliability mask, at thumbnail resolution."""

    flow: np.ndarray   # h x w x 2, in thumbnail pixels
    mask: np.ndarray   # h x w float32 in [0, 1]: 1 = blend, 0 = keep the current output


class FlowBlender:
    """Blends the warped previous output into the current one where the input flow is reliable."""

    def __init__(self, blend: float = 0.7, flow_size: int = 320, preset: str = "fast",
                 photo_threshold: float = 0.08, fb_tolerance: float = 0.5):
        self.blend = blend
        self.flow_size = flow_size
        self.photo_threshold = photo_threshold
        self.fb_tolerance = fb_tolerance  # Ruder et al.'s constant term, in squared *thumbnail* pixels
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self._prev_small: np.ndarray | None = None
        self._prev_out: np.ndarray | torch.Tensor | None = None
        self.last_mask_mean = 0.0  # share of the frame that was blended (for the HUD / benchmark)

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

    def __call__(self, cur_small: np.ndarray, stylized: np.ndarray | torch.Tensor,
                 cut: bool = False) -> np.ndarray | torch.Tensor:
        """Blend for the next frame: its input thumbnail (`thumbnail()`) and its stylized output."""
        prev_small, prev_out = self._prev_small, self._prev_out
        out = stylized
        same = (prev_out is not None and prev_small is not None and not cut
                and prev_small.shape == cur_small.shape and type(prev_out) is type(stylized)
                and prev_out.shape == stylized.shape
                and (not isinstance(stylized, torch.Tensor) or prev_out.device == stylized.device))
        if same and self.blend > 0:
            est = self.estimate(prev_small, cur_small)
            self.last_mask_mean = float(est.mask.mean())
            if isinstance(stylized, torch.Tensor):
                out = self._blend_torch(est, prev_out, stylized)
            else:
                out = self._blend_numpy(est, prev_out, stylized)
        else:
            self.last_mask_mean = 0.0
        self._prev_small = cur_small
        # keep the blended output: the recursion is what makes the filter strong (an IIR filter)
        self._prev_out = out
        return out

    def _blend_numpy(self, est: FlowEstimate, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        # everything in single OpenCV passes: at 720p numpy's temporaries would cost more than the flow
        h, w = cur.shape[:2]
        th, tw = est.flow.shape[:2]
        u, v = (cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in cv2.split(est.flow))
        gx, gy = _pixel_grid(h, w)
        map_x = cv2.scaleAdd(u, w / tw, gx)
        map_y = cv2.scaleAdd(v, h / th, gy)
        warped = cv2.remap(prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.resize(est.mask, (w, h), interpolation=cv2.INTER_LINEAR)
        weight *= self.blend
        # b*m*warped + (1 - b*m)*cur, per pixel, rounded once
        return cv2.blendLinear(warped, cur, weight, 1.0 - weight)

    def _blend_torch(self, est: FlowEstimate, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        h, w = cur.shape[-2:]
        th, tw = est.flow.shape[:2]
        small = np.concatenate([est.flow, est.mask[..., None]], axis=-1)  # th x tw x 3, one upload
        small = torch.from_numpy(small).to(cur.device, non_blocking=True).permute(2, 0, 1).unsqueeze(0)
        big = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]
        scale = torch.tensor([w / tw, h / th], device=cur.device).view(2, 1, 1)
        warped = warp_torch(prev, big[:2] * scale)
        weight = big[2:3] * self.blend
        return torch.lerp(cur.float(), warped.float(), weight).to(cur.dtype)


# -- the smoother the stream loop uses -----------------------------------------------------------

@dataclass
class _Seen:
    """What stylize() learned about a frame, handed on to smooth() for the same frame."""

    frame: np.ndarray
    small: np.ndarray  # colour thumbnail, flow_size on the longer side
    cut: bool


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
        self.stats = StatSmoother(s.stat_momentum)
        self.flow = FlowBlender(s.flow_blend, s.flow_size, s.flow_preset, s.photo_threshold)
        self._enabled = s.enabled and s.mechanism != "off"
        self._pending: deque[_Seen] = deque()
        self.profile = profile  # synchronise the device around timed work (benchmarks)
        self.stylize_ms: deque[float] = deque(maxlen=1000)  # smoother's own work per frame, in stylize
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
        return _Seen(frame_bgr, small, cut)

    def stylize(self, engine, frames_bgr: Sequence[np.ndarray], batch: torch.Tensor, style: StyleCode,
                alpha: float, resets: Sequence[bool] | None = None) -> torch.Tensor:
        """encode -> EMA of the content statistics -> decode, for consecutive frames.

        `frames_bgr` are the input frames of `batch` (any size: only thumbnails are used);
        `resets[i]` (e.g. from `needs_reset(frame.meta)`) restarts the smoothing at frame i.
        """
        if not self._enabled:
            return engine.stylize(batch, style, alpha)
        t0 = self._clock(batch.device)
        self._pending.clear()  # anything not smoothed by now was dropped by the caller
        cuts = []
        for i, f in enumerate(frames_bgr):
            seen = self._see(f, bool(resets and resets[i]))
            cuts.append(seen.cut)
            self._pending.append(seen)
        spent = self._clock(batch.device) - t0
        if not self.settings.use_stats:
            y = engine.stylize(batch, style, alpha)
        else:
            feat, mean, std = engine.encode(batch)
            t1 = self._clock(batch.device)
            mean, std = self.stats.update(mean, std, cuts)
            spent += self._clock(batch.device) - t1
            y = engine.decode(feat, mean, std, style, alpha, tuple(batch.shape[-2:]))
        self.stylize_ms.extend([spent * 1000 / max(len(frames_bgr), 1)] * len(frames_bgr))
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
            seen.cut |= reset
        else:  # stylize() was not called for this frame (or out of order): look at it here
            self._pending.clear()
            seen = self._see(frame_in_bgr, reset)
        out = stylized
        if self.settings.use_flow:
            out = self.flow(seen.small, stylized, cut=seen.cut)
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
