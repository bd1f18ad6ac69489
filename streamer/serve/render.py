"""One frame through the shared engine with one tab's settings. Runs on the studio's engine thread only.

The same steps as the stream loop's (streamer/loop.py): upload once, resize on the device, the network (through
the temporal smoother when it is on), colour preservation, the smoother's flow blending, one download.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engines.adain import StyleCode, preserve_color
from engines.backends.base import Engine
from streamer.loop import output_size


@dataclass(frozen=True)
class StyleState:
    """What a tab has chosen. Frozen: a change is a new object, picked up whole by the next frame."""

    style: str                 # a preset name or "upload:<name>"
    code: StyleCode
    alpha: float = 1.0
    preserve_color: bool = False
    smooth: bool = True
    side_by_side: bool = False


def render(engine: Engine, image: np.ndarray, state: StyleState, size: int, smoother=None) -> np.ndarray:
    """BGR uint8 in -> the stylized BGR uint8 frame (the network's size; twice as wide side by side).

    `smoother` is the tab's own TemporalSmoother (None when smoothing is off).
    """
    w, h = output_size(image.shape[1], image.shape[0], size)
    x = engine.upload([image])
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0, 1).to(x.dtype)
    if smoother is not None:
        y = smoother.stylize(engine, [image], x, state.code, state.alpha)
    else:
        y = engine.stylize(x, state.code, state.alpha)
    if state.preserve_color:
        y = preserve_color(y.float(), x.float())
    on_device = y.device.type == "cuda"
    if smoother is not None and on_device:  # warp on the device, before the download
        y = torch.stack([smoother.smooth(image, y[0])])
    out = engine.download(y)[0]
    if smoother is not None and not on_device:
        out = smoother.smooth(image, out)
    out = np.ascontiguousarray(out)
    if state.side_by_side:
        original = image if image.shape[:2] == (h, w) else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        out = np.hstack([original, out])
    return out
