"""The side-by-side view, the original left of the stylized frame: the live window's `s` key and the studio's
"side by side" switch."""

from __future__ import annotations

import cv2
import numpy as np

_SAME_PICTURE_PX = 2  # output_size rounds sides to even numbers: an original this close in width is the same shape


def side_by_side(original: np.ndarray | None, stylized: np.ndarray) -> np.ndarray:
    """The original (resized to the stylized height, aspect kept) left of the stylized image.

    An original of the stylized image's own shape takes its exact size, so the view is twice as wide.
    """
    if original is None:
        return stylized
    h, sw = stylized.shape[:2]
    oh, ow = original.shape[:2]
    if original.ndim == 2:
        original = cv2.cvtColor(original, cv2.COLOR_GRAY2BGR)
    w = max(1, round(ow * h / oh))
    if abs(w - sw) <= _SAME_PICTURE_PX:
        w = sw
    if (oh, ow) != (h, w):
        original = cv2.resize(original, (w, h), interpolation=cv2.INTER_AREA if oh > h else cv2.INTER_LINEAR)
    return np.concatenate([original[..., :3], stylized], axis=1)
