"""A cv2.VideoCapture read on its own thread (cameras and URLs), reopened when it fails."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Self

import cv2
import numpy as np

from engines.errors import InputError
from streamer.frame import Frame, StreamInfo
from streamer.latest import Closed, Latest
from streamer.sources import Source

log = logging.getLogger(__name__)


class LiveCaptureSource(Source):
    """A cv2.VideoCapture read on its own thread, keeping only the newest frame ("latest wins").

    `open_capture` makes a new capture; it is called again (with exponential backoff between
    `backoff[0]` and `backoff[1]` seconds) when reading fails, so an unplugged camera or a dropped stream
    comes back instead of ending the stream. Frame.index is the capture sequence number (gaps = drops),
    Frame.time seconds since the source started, Frame.pts None.
    """

    def __init__(self, open_capture: Callable[[], cv2.VideoCapture], name: str, missing: str,
                 fps: float | None = None, backoff: tuple[float, float] = (0.5, 5.0)):
        super().__init__()
        self._open_capture = open_capture
        self.backoff = backoff
        self.missing = missing
        self._latest: Latest[Frame] = Latest()
        self._thread: threading.Thread | None = None
        self.frames_read = 0
        self.reconnects = 0
        self.status = "starting"
        self._cap = self._try_open()
        if self._cap is None:
            raise InputError(missing)
        ok, img = self._cap.read()
        if not ok or img is None:
            self._cap.release()
            raise InputError(f"{name} opened but delivered no frame. {missing}")
        reported = self._cap.get(cv2.CAP_PROP_FPS)
        rate = reported if 0 < reported < 1000 else (fps or 30.0)
        self._start = time.monotonic()
        self._publish(img)
        h, w = img.shape[:2]
        self.info = StreamInfo(width=w, height=h, fps=float(rate), live=True, name=name)
        self.status = "live"

    def _try_open(self) -> cv2.VideoCapture | None:
        try:
            cap = self._open_capture()
        except (cv2.error, OSError) as e:
            log.debug("opening %s failed: %s", self.info.name if hasattr(self, "info") else "capture", e)
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        return cap

    @property
    def dropped(self) -> int:
        """Frames a newer one replaced before the consumer took them."""
        return self._latest.dropped

    def _publish(self, img: np.ndarray) -> None:
        now = time.monotonic()
        self._latest.put(Frame(index=self.frames_read, pts=None, time=now - self._start, captured=now, image=img))
        self.frames_read += 1

    def open(self) -> Self:
        if self._thread is None and not self.stopped:
            self._thread = threading.Thread(target=self._reader, name=f"capture:{self.info.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def _reader(self) -> None:
        cap, attempt = self._cap, 0
        try:
            while not self.stopped:
                if cap is not None:
                    try:
                        ok, img = cap.read()
                    except cv2.error as e:
                        log.debug("%s: read failed: %s", self.info.name, e)
                        ok, img = False, None
                    if ok and img is not None:
                        self._publish(img)
                        if attempt:
                            log.info("%s: reconnected", self.info.name)
                            self.status, attempt = "live", 0
                        continue
                    cap.release()
                    cap = None
                attempt += 1
                self.status = f"reconnecting (attempt {attempt})"
                if attempt == 1:
                    log.warning("%s: no frame; reconnecting", self.info.name)
                delay = min(self.backoff[1], self.backoff[0] * 2 ** (attempt - 1))
                if self._stop.wait(delay):
                    break
                cap = self._try_open()
                self.reconnects += 1
        finally:
            if cap is not None:
                cap.release()
            self._cap = None
            self._latest.close()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        while not self.stopped:
            try:
                frame = self._latest.take(timeout=0.1)
            except Closed:
                return
            if frame is not None:
                yield frame

    def close(self) -> None:
        super().close()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2.0)  # a read blocked on the network ends at its own timeout
        elif self._cap is not None:
            self._cap.release()
            self._cap = None
        self.status = "closed"


class QuietOpenCV:
    """OpenCV logs a page of warnings when a device is missing; we say it in one line instead."""

    def __enter__(self):
        self.level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

    def __exit__(self, *exc):
        cv2.utils.logging.setLogLevel(self.level)
