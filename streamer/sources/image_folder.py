"""A folder of images played as frames."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from engines.errors import InputError
from engines.files import IMAGE_SUFFIXES, image_files
from streamer.frame import Frame, StreamInfo
from streamer.sources import DEFAULT_FPS, Source

log = logging.getLogger(__name__)


def _natural_key(p: Path) -> list:
    """frame2 before frame10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _read_image(path: Path) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)  # imread cannot open non-ASCII paths on Windows
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


class ImageFolderSource(Source):
    """The images of a folder, in natural sort order, as frames at `fps`; all resized to the first one's size.

    Unreadable images are skipped with a warning.
    """

    def __init__(self, folder: str | Path, fps: float = DEFAULT_FPS):
        super().__init__()
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"Not a folder: {self.folder}")
        self.files = sorted(image_files(self.folder), key=_natural_key)
        if not self.files:
            raise InputError(f"No images in {self.folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        first = _read_image(self.files[0])
        if first is None:
            raise InputError(f"Cannot read image {self.files[0]}; is it a valid image file?")
        if not fps or fps <= 0:
            raise InputError(f"Image folder frame rate must be positive, got {fps}")
        self.rate = Fraction(fps).limit_denominator(1001)
        h, w = first.shape[:2]
        self.info = StreamInfo(width=w, height=h, fps=float(self.rate), time_base=1 / self.rate,
                               frame_count=len(self.files), duration=len(self.files) / float(self.rate),
                               path=None, live=False, name=self.folder.name)

    def __iter__(self) -> Iterator[Frame]:
        size = (self.info.width, self.info.height)
        index = 0
        for path in self.files:
            if self.stopped:
                return
            img = _read_image(path)
            if img is None:
                log.warning("skipping %s: not a readable image", path.name)
                continue
            if (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            yield Frame(index=index, pts=index, time=index / float(self.rate), captured=time.monotonic(),
                        image=img, meta={"file": path.name})
            index += 1
