"""Heads-up display for live previews: a text box and rolling fps/latency."""

from __future__ import annotations

import time
from collections import deque

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BOX_OPACITY = 0.6          # how dark the box under the text is: readable on white and on black
_TEXT = (255, 255, 255)     # BGR
_SHADOW = (0, 0, 0)


def draw_hud(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """A copy of `image` (H x W x 3 uint8 BGR) with `lines` in a semi-transparent box at the top left.

    The text scales with the image (OpenCV font scale 0.55 at 480 px on the shorter side, never below 0.3),
    so it reads the same at 480p and at 4K. The input is never changed: other sinks may show the same frame.
    """
    out = np.ascontiguousarray(image).copy()
    lines = [s for s in lines if s]
    if not lines:
        return out
    h, w = out.shape[:2]
    scale = min(3.0, max(0.3, 0.55 * min(h, w) / 480))  # OpenCV font scale; 0.3 is the smallest legible
    thick = max(1, round(scale * 1.5))
    pad = max(3, round(10 * scale))
    sizes = [cv2.getTextSize(s, _FONT, scale, thick) for s in lines]
    line_h = max(th + base for (_, th), base in sizes) + max(2, round(6 * scale))
    box_w = min(w, max(tw for (tw, _), _ in sizes) + 2 * pad)
    box_h = min(h, line_h * len(lines) + 2 * pad)
    x0, y0 = min(pad, w - box_w), min(pad, h - box_h)  # a margin when the box fits with room to spare
    roi = out[y0:y0 + box_h, x0:x0 + box_w]
    # darken only the box region: cheaper than blending the whole frame
    roi[:] = (roi.astype(np.float32) * (1 - _BOX_OPACITY)).astype(np.uint8)
    for i, s in enumerate(lines):
        org = (x0 + pad, y0 + pad + line_h * i + sizes[i][0][1])
        if thick > 1:
            cv2.putText(out, s, org, _FONT, scale, _SHADOW, thick + 1, cv2.LINE_AA)
        cv2.putText(out, s, org, _FONT, scale, _TEXT, thick, cv2.LINE_AA)
    return out


class HudStats:
    """Rolling output fps and capture-to-output latency over the last `window` seconds."""

    def __init__(self, window: float = 1.0):
        self.window = window
        self._ticks: deque[tuple[float, float]] = deque()  # (output time, latency ms)

    def tick(self, captured: float, now: float | None = None) -> None:
        """One frame shown; `captured` is its Frame.captured (time.monotonic() at capture)."""
        now = time.monotonic() if now is None else now
        self._ticks.append((now, (now - captured) * 1000.0))
        while self._ticks and now - self._ticks[0][0] > self.window:
            self._ticks.popleft()

    @property
    def fps(self) -> float:
        if len(self._ticks) < 2:
            return 0.0
        span = self._ticks[-1][0] - self._ticks[0][0]
        return (len(self._ticks) - 1) / span if span > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        """Mean latency of the frames in the window (0 before the first frame)."""
        if not self._ticks:
            return 0.0
        return sum(lat for _, lat in self._ticks) / len(self._ticks)

    def line(self) -> str:
        return f"{self.fps:.1f} fps  latency {self.latency_ms:.0f} ms"
