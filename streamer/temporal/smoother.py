"""The smoother: cut detection, the statistics EMA and flow blending, in the order the stylize step
(streamer.stylize) calls them. It never calls the engine: the stylize step runs the network and hands
the smoother what it needs between the network's halves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from streamer.temporal.cuts import SceneCutDetector
from streamer.temporal.filters import thumbnail
from streamer.temporal.flow import FlowBlender, FlowEstimate
from streamer.temporal.settings import TemporalSettings
from streamer.temporal.stats import StatSmoother

log = logging.getLogger(__name__)

RESET_KEYS = ("seek", "loop", "scene_cut")  # Frame.meta flags after which the past is not this frame's past


def needs_reset(meta: Mapping | None) -> bool:
    """True for a frame after which the past does not continue (Frame.meta seek/loop/scene_cut)."""
    return bool(meta) and any(meta.get(k) for k in RESET_KEYS)


@dataclass
class Seen:
    """What see() learned about a frame, handed on to smooth() for the same frame."""

    frame: np.ndarray
    small: np.ndarray                 # colour thumbnail, flow_size on the longer side
    cut: bool
    prev_small: np.ndarray | None     # the previous frame's thumbnail (None after a cut)
    est: FlowEstimate | None = None   # flow prev_small -> small, computed in estimate_flow()
    ms: float = 0.0                   # the smoother's work on this frame before smooth()


class TemporalSmoother:
    """Statistics EMA + flow blending + cut detection. For each batch of consecutive frames:

        seen = smoother.see(frames, resets)                  # thumbnails, cuts (while the encoder runs)
        mean, std = smoother.smooth_stats(mean, std, seen)   # between engine.encode and engine.decode
        smoother.estimate_flow(seen, device)                 # the batch's flow (CPU)
        out_i = smoother.smooth(frames[i], y_i, seen[i])     # each frame, in order

    The caller holds each batch's `seen` records, so the first two calls (on the stylizing thread) may
    run ahead of the last two (on a smoothing thread) by a batch or more: see() and smooth_stats() own
    the cut detector and the EMA, estimate_flow() and smooth() the flow blender. `smooth_stats` only
    where `uses_stats`. `smooth` without `seen` also works (flow blending alone: it then looks at the
    frame itself). Setting `enabled` to False and back resets the state, since the frames in between
    were not seen.
    """

    def __init__(self, settings: TemporalSettings | None = None, profile: bool = False):
        self.settings = settings or TemporalSettings()
        s = self.settings
        self.detector = SceneCutDetector(s.cut_threshold)
        self.stats = StatSmoother(s.stat_momentum, s.stat_noise)
        self.flow = FlowBlender(s)
        self._flow_lock = threading.Lock()  # the blender, between a smoothing thread and reset()
        self._enabled = s.active
        self._last_small: np.ndarray | None = None
        self.profile = profile  # synchronise the device around timed work (benchmarks)
        # its own work per frame: see() + smooth_stats() + estimate_flow(), the flow's part of that, smooth()
        self.prepare_ms: deque[float] = deque(maxlen=1000)
        self.prepare_flow_ms: deque[float] = deque(maxlen=1000)
        self.smooth_ms: deque[float] = deque(maxlen=1000)
        self.blended: deque[float] = deque(maxlen=10000)  # share of each smoothed frame the flow blended
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

    def settle(self, device_type: str) -> None:
        """Resolve the `auto` mechanism for the device the network runs on (the stylize step calls it)."""
        self.settings = self.settings.on_device(device_type)

    @property
    def uses_stats(self) -> bool:
        """Whether the network must run in two halves with smooth_stats() between them."""
        return self._enabled and self.settings.use_stats

    def reset(self) -> None:
        self.detector.reset()
        self.stats.reset()
        with self._flow_lock:
            self.flow.reset()
        self._last_small = None

    # -- the phases ---------------------------------------------------------------------------------

    def see(self, frames_bgr: Sequence[np.ndarray], resets: Sequence[bool] | None = None,
            device: torch.device | None = None) -> list[Seen]:
        """Thumbnails and cut detection for a batch of consecutive input frames (any size). `resets[i]`
        (e.g. needs_reset(frame.meta)) restarts the smoothing at frame i."""
        t0 = self._clock(device)
        seen = [self._see(f, bool(resets and resets[i])) for i, f in enumerate(frames_bgr)]
        self._spread(seen, (self._clock(device) - t0) * 1000)
        return seen

    def smooth_stats(self, mean: torch.Tensor, std: torch.Tensor, seen: Sequence[Seen]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's N x C content statistics (from engine.encode) -> smoothed, for engine.decode."""
        t0 = self._clock(mean.device)
        out = self.stats.update(mean, std, [s.cut for s in seen])
        self._spread(seen, (self._clock(mean.device) - t0) * 1000)
        return out

    def estimate_flow(self, seen: Sequence[Seen], device: torch.device | None = None) -> None:
        """The flow of each frame of the batch (CPU); on a GPU all of them go up in one copy."""
        n = max(len(seen), 1)
        flow = 0.0
        if self._enabled and self.settings.use_flow:
            t0 = self._clock(device)
            with self._flow_lock:
                self._estimate(seen, device)
            flow = (self._clock(device) - t0) * 1000
        self._spread(seen, flow)
        self.prepare_ms.extend(s.ms for s in seen)
        self.prepare_flow_ms.extend([flow / n] * len(seen))

    def smooth(self, frame_in_bgr: np.ndarray, stylized: np.ndarray | torch.Tensor, seen: Seen | None = None,
               reset: bool = False) -> np.ndarray | torch.Tensor:
        """Flow blending for one frame, called in order. `stylized` is a uint8 BGR image (CPU) or a
        3 x H x W RGB tensor (on the device); the result has the same type, size and layout.
        """
        if not self._enabled:
            return stylized
        device = stylized.device if isinstance(stylized, torch.Tensor) else None
        t0 = self._clock(device)
        if seen is not None and seen.frame is frame_in_bgr:
            if reset:
                seen.cut, seen.est = True, None
        else:  # see() was not called for this frame: look at it here
            seen = self._see(frame_in_bgr, reset)
        out = stylized
        with self._flow_lock:
            if self.settings.use_flow:
                # the estimate is only good if its previous frame is the one the blender holds
                valid = seen.prev_small is not None and seen.prev_small is self.flow.previous_thumbnail
                out = self.flow(seen.small, stylized, cut=seen.cut, est=seen.est if valid else None)
            self.blended.append(self.flow.last_mask_mean)
        self.smooth_ms.append((self._clock(device) - t0) * 1000)
        return out

    def added_ms(self) -> float:
        """Median milliseconds per frame the smoother adds (its own work, not the network's)."""
        return sum(float(np.median(d)) if d else 0.0 for d in (self.prepare_ms, self.smooth_ms))

    # -- helpers --------------------------------------------------------------------------------------

    @staticmethod
    def _spread(seen: Sequence[Seen], ms: float) -> None:
        """A batch's work, shared out over its frames."""
        for s in seen:
            s.ms += ms / max(len(seen), 1)

    def _see(self, frame_bgr: np.ndarray, reset: bool) -> Seen:
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
        return Seen(frame_bgr, small, cut, None if cut else prev)

    def _estimate(self, seen: Sequence[Seen], device: torch.device | None) -> None:
        todo = [s for s in seen if s.prev_small is not None and s.prev_small.shape == s.small.shape]
        for s in todo:
            s.est = self.flow.estimate(s.prev_small, s.small)
        if todo and device is not None and device.type == "cuda":
            host = torch.from_numpy(np.stack([np.dstack([s.est.flow, s.est.mask]) for s in todo]))
            up = host.pin_memory().to(device, non_blocking=True).permute(0, 3, 1, 2)
            for s, t in zip(todo, up, strict=True):
                s.est.device = t

    def _clock(self, device: torch.device | None) -> float:
        if self.profile and device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()
