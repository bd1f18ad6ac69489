"""The unit that travels the stream, and what a source tells the sinks about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StreamInfo:
    """What sinks need to know before the first frame arrives."""

    width: int
    height: int
    fps: float                       # nominal frame rate (live sources: the rate we deliver at)
    time_base: Fraction | None = None  # of `Frame.pts`, for file sources
    frame_count: int | None = None   # None when unknown (live)
    duration: float | None = None    # seconds, None when unknown
    path: Path | None = None         # the source file, so a file sink can copy its audio
    live: bool = False
    name: str = ""                   # human-readable source description


@dataclass
class Frame:
    """One video frame. `image` is H x W x 3 uint8 BGR, as OpenCV gives it."""

    index: int
    pts: int | None                  # presentation time in `StreamInfo.time_base` units (files)
    time: float                      # presentation time in seconds
    captured: float                  # time.monotonic() when it was read, for latency
    image: np.ndarray
    original: np.ndarray | None = None  # the input, kept beside the stylized image for side-by-side
    meta: dict = field(default_factory=dict)  # e.g. "scene_cut": True, "style": name
