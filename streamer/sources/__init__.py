"""Sources: camera index, URL, video file, image folder -> Frames (the input side, mirroring sinks/).

Every source exposes `info: StreamInfo`, is iterable (yields `Frame`s with BGR uint8 images), is a context
manager (`open()` / `close()`), and has a thread-safe `stop()` that makes iteration end soon. The loop's
reader thread iterates it; `stop()` may come from any thread.

- File sources (video_file.VideoFileSource, image_folder.ImageFolderSource) drop nothing and keep order and
  timestamps; iterating again starts again from the beginning.
- Live sources (camera.CameraSource, url.UrlSource: one capture.LiveCaptureSource) read on their own thread
  and keep only the newest frame ("latest wins"), counting what they drop; a device that disappears is
  reopened with exponential backoff while `status` says "reconnecting (attempt N)".
- paced.PacedSource plays a file source "as a camera": in real time, looping, marked live.

No resizing happens here: the stylize step resizes once, on its device. `open_source` picks one for a spec.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Self

from engines.errors import InputError
from streamer.frame import Frame, StreamInfo

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
DEFAULT_FPS = 25.0


class Source(ABC):
    """Frames from somewhere. Subclasses set `info` in their constructor (so errors come early)."""

    info: StreamInfo
    dropped: int = 0   # frames read but never delivered (live sources)
    status: str = ""   # one short line for the HUD, e.g. "reconnecting (attempt 3)"

    def __init__(self) -> None:
        self._stop = threading.Event()

    def open(self) -> Self:
        return self

    def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Make iteration end soon; safe from any thread."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.name}>"


def open_source(spec: str, *, live: bool, loop: bool | None = None, width: int | None = None,
                height: int | None = None, fps: float | None = None, timeout: float = 10.0) -> Source:
    """A source for `spec`: "0", "1".. a camera; rtsp://, http(s)://.. a stream; a folder of images; a video.

    With `live`, files and folders play in real time, looping unless `loop` is False. `width`/`height`/`fps`
    are asked of a camera; `fps` is also an image folder's rate.
    """
    from streamer.sources.camera import CameraSource
    from streamer.sources.image_folder import ImageFolderSource
    from streamer.sources.paced import PacedSource
    from streamer.sources.url import UrlSource
    from streamer.sources.video_file import VideoFileSource

    spec = str(spec).strip()
    if spec.isdigit():
        return CameraSource(int(spec), width=width, height=height, fps=fps)
    if spec.lower().startswith(URL_SCHEMES):
        return UrlSource(spec, timeout=timeout)
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(f"Input not found: {spec} (give a camera index like 0, a URL, a video file or an "
                         f"image folder)")
    source: Source
    source = ImageFolderSource(path, fps=fps or DEFAULT_FPS) if path.is_dir() else VideoFileSource(path)
    if live:
        return PacedSource(source, loop=True if loop is None else loop)
    if loop:
        log.warning("loop applies to live playback only; converting %s once", path.name)
    return source
