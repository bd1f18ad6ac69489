"""Edge-aware upscaling of a stylized frame to the output size, guided by the full-size input frame.

When the network runs below the output size (streamer.working_size), the stylized frame is upscaled
bilinearly, and the detail that the low resolution lost (the full-size input's luminance minus its
upscaled low-resolution version) is added back with the gain of a guided filter (He et al. 2010): in each
small window the stylized luminance is fitted as a linear function of the input's, and the slope `a`
says how strongly this part of the painting follows the photo's edges (one slope for the three colours:
the detail added is luminance). Where it does, the edges come back sharp; where the painting ignores
the photo (flat strokes), nothing is added.

The classic guided upsampling (q = A * I + B, He & Sun 2015) was measured beside it and not chosen: on
the dev photos it is about 1 dB closer to the network run at full size, but it replaces the strokes with
smooth colour (half the Laplacian energy of bilinear): docs/temporal.md, "Holding the frame rate".
"""

from __future__ import annotations

import cv2
import numpy as np

RADIUS = 2      # of the box window at the low resolution (5 x 5)
EPS = 1e-3      # regularisation on [0, 1] luminance: larger gives a smaller gain on faint edges


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """The mean over a (2 radius + 1) square window at each pixel, edges reflected."""
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_upscale(stylized: np.ndarray, frame: np.ndarray, size: tuple[int, int] | None = None,
                   radius: int = RADIUS, eps: float = EPS) -> np.ndarray:
    """`stylized` (h x w x 3 uint8) at `size` (W, H; default the frame's), with the edges of `frame` (the
    input, BGR uint8, any size) where the stylized luminance follows them."""
    big_w, big_h = size or frame.shape[1::-1]
    h, w = stylized.shape[:2]
    if (h, w) == (big_h, big_w):
        return stylized

    def up(x: np.ndarray) -> np.ndarray:
        return cv2.resize(x, (big_w, big_h), interpolation=cv2.INTER_LINEAR)

    grey_big = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)  # one channel before any resize: cheaper
    if grey_big.shape != (big_h, big_w):
        grey_big = cv2.resize(grey_big, (big_w, big_h), interpolation=cv2.INTER_AREA)
    grey = cv2.resize(grey_big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * (1 / 255)
    luma = cv2.cvtColor(stylized, cv2.COLOR_BGR2GRAY).astype(np.float32) * (1 / 255)
    mean_i, mean_p = box_mean(grey, radius), box_mean(luma, radius)
    cov = box_mean(grey * luma, radius) - mean_i * mean_p
    var = box_mean(grey * grey, radius) - mean_i * mean_i
    gain = box_mean(cov / (var + eps), radius)  # the guided filter's slope a, averaged over its windows
    lost = grey_big.astype(np.float32) - up(grey * 255)  # the input's detail that the low resolution lost
    detail = cv2.multiply(up(gain), lost)
    return cv2.add(up(stylized), cv2.merge([detail] * 3), dtype=cv2.CV_8U)  # saturating, one pass
