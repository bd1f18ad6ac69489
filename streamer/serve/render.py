"""One frame through the shared engine with one tab's settings. Runs on the studio's engine thread only.

The stream loop's own stylize step (streamer.stylize.StylizeStep: upload, resize on the device, the network,
colour preservation, the tab's temporal smoother), then the original beside it (streamer.side_by_side) if the
tab asks for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.adain import StyleCode
from streamer.side_by_side import side_by_side
from streamer.stylize import StylizeStep


@dataclass(frozen=True)
class StyleState:
    """What a tab has chosen. Frozen: a change is a new object, picked up whole by the next frame."""

    style: str                 # a preset name or "upload:<name>"
    code: StyleCode
    alpha: float = 1.0
    preserve_color: bool = False
    smooth: bool = True
    side_by_side: bool = False


def render(step: StylizeStep, image: np.ndarray, state: StyleState, out_size: tuple[int, int],
           work_size: tuple[int, int] | None = None) -> np.ndarray:
    """BGR uint8 in -> the stylized BGR uint8 frame at `out_size` (w, h; twice as wide side by side).

    `step` is the tab's own (its smoother, if any, has seen this tab's frames only); `work_size`, if
    smaller, is what the network runs at (the tab's governor, streamer.working_size).
    """
    step.out_size, step.preserve_color = out_size, state.preserve_color
    step.work_size = work_size
    out = np.ascontiguousarray(step([image], state.code, state.alpha)[0])
    return side_by_side(image, out) if state.side_by_side else out
