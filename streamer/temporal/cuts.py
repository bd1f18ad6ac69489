"""Scene cuts in the input: where the smoother must forget the past."""

from __future__ import annotations

import cv2
import numpy as np

GRAY_JUMP = 0.3  # a mean grey-level change (0..1) this large is a cut whatever the histograms say


class SceneCutDetector:
    """Cheap cut detection on the input frames.

    Score: Bhattacharyya distance between hue-saturation histograms of 64 x 36 thumbnails (how far
    apart consecutive frames and different scenes score: docs/temporal.md). A grey-level change of
    more than `gray_jump` on average (lights switched, or a cut between two grey scenes the
    histogram cannot tell apart) counts as a cut too. Give it a thumbnail (filters.thumbnail).
    """

    def __init__(self, threshold: float, gray_jump: float = GRAY_JUMP):
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
