"""Sources: camera index, URL, video file, image folder -> Frames.

Every source exposes `info: StreamInfo`, is iterable (yields `Frame`s with BGR uint8 images), is a context
manager (`open()` / `close()`), and has a thread-safe `stop()` that makes iteration end soon.

- File sources (VideoFileSource, ImageFolderSource) drop nothing and keep order and timestamps; iterating
  again starts again from the beginning.
- Live sources (CameraSource, UrlSource: one LiveCaptureSource) read on their own thread and keep only the
  newest frame ("latest wins"), counting what they drop; a device that disappears is reopened with
  exponential backoff while `status` says "reconnecting (attempt N)".
- PacedSource plays a file source "as a camera": in real time, looping, marked live.

No resizing happens here: the engine side resizes once, on its device.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

import av
import cv2
import numpy as np

from engines.errors import InputError
from engines.files import IMAGE_SUFFIXES, image_files
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


# -- video files -------------------------------------------------------------------------------------


def _av_reason(e: BaseException) -> str:
    """FFmpeg's one-line reason, without the errno and path PyAV adds."""
    return (getattr(e, "strerror", None) or str(e)).strip().splitlines()[0]


def _stream_duration(stream: av.VideoStream) -> float | None:
    """The video stream's own duration: from the stream, or Matroska's per-track DURATION tag."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


class VideoFileSource(Source):
    """A video file decoded with PyAV (threaded): every frame, in order, with the decoder's timestamps.

    Frame.pts is in `info.time_base` (the stream's), Frame.time in seconds. Iterating again starts from
    the beginning. `seek(seconds)` jumps (from any thread); the next frame has meta["seek"] = True so
    temporal smoothing resets.

    A file that stops decoding early (truncated, corrupt) plays what it has, with a warning; with `strict`
    (conversions) that is an InputError instead, raised from the iteration.
    """

    def __init__(self, path: str | Path, strict: bool = False):
        super().__init__()
        self.path = Path(path)
        self.strict = strict
        if not self.path.exists():
            raise InputError(f"Video not found: {self.path}")
        if not self.path.is_file():
            raise InputError(f"Not a video file: {self.path} (for a folder of images, use a folder source)")
        self._seek_to: float | None = None
        self._lock = threading.Lock()
        self._active: Iterator[Frame] | None = None
        self.info = self._probe()

    def _open_container(self) -> tuple[av.container.InputContainer, av.VideoStream]:
        try:
            container = av.open(str(self.path), "r")
        except (av.FFmpegError, OSError) as e:
            raise InputError(f"Cannot read {self.path}: {_av_reason(e)}; the file is corrupt, truncated or "
                             f"not a video (check that it plays in a media player)") from None
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            container.close()
            raise InputError(f"{self.path} has no video stream (it holds: {', '.join(kinds)}); "
                             f"give a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads
        return container, stream

    def _probe(self) -> StreamInfo:
        container, stream = self._open_container()
        try:
            try:
                first = next(self._decoded(container, stream), None)
            except (av.FFmpegError, OSError):
                first = None
            if first is None:
                raise InputError(f"{self.path}: no video frame could be decoded (empty, truncated or corrupt "
                                 f"file); check that it plays in a media player")
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else DEFAULT_FPS
            if not 0 < fps < 1000:
                fps = DEFAULT_FPS
            duration = self._video_duration = _stream_duration(stream)
            if duration is None and container.duration is not None:
                duration = container.duration / av.time_base  # all streams: audio may run longer
            frame_count = stream.frames or (round(duration * fps) if duration else None)
            return StreamInfo(width=first.width, height=first.height, fps=fps, time_base=stream.time_base,
                              frame_count=frame_count, duration=duration, path=self.path, live=False,
                              name=self.path.name)
        finally:
            container.close()

    @staticmethod
    def _decoded(container, stream) -> Iterator[av.VideoFrame]:
        for packet in container.demux(stream):
            yield from packet.decode()

    def seek(self, seconds: float) -> None:
        """Jump to `seconds` (the first frame at or after it) in the running iteration."""
        with self._lock:
            self._seek_to = max(0.0, float(seconds))

    def _take_seek(self) -> float | None:
        with self._lock:
            target, self._seek_to = self._seek_to, None
            return target

    def __iter__(self) -> Iterator[Frame]:
        gen = self._frames()
        self._active = gen
        return gen

    def _frames(self) -> Iterator[Frame]:
        container, stream = self._open_container()
        tb = stream.time_base
        fps = self.info.fps
        index = 0
        skip_before: float | None = None  # after a seek: frames before the target are decoded, not shown
        seeked = any_seek = False
        last_t: float | None = None
        decoded = self._decoded(container, stream)
        try:
            while not self.stopped:
                target = self._take_seek()
                if target is not None:
                    container.seek(int(target / tb), stream=stream, backward=True, any_frame=False)
                    decoded = self._decoded(container, stream)
                    skip_before, seeked, any_seek = target - 0.5 / fps, True, True
                try:
                    f = next(decoded, None)
                except (av.FFmpegError, OSError) as e:
                    self._ended_early(f"decoding stopped after {index} frames ({_av_reason(e)})")
                    return
                if f is None:
                    if not any_seek:
                        self._check_complete(index, stream.frames, last_t)
                    return
                t = float(f.time) if f.time is not None else index / fps
                if skip_before is not None:
                    if t < skip_before:
                        continue
                    skip_before = None
                meta = {"seek": True} if seeked else {}
                seeked, last_t = False, t
                yield Frame(index=index, pts=f.pts, time=t, captured=time.monotonic(),
                            image=f.to_ndarray(format="bgr24"), meta=meta)
                index += 1
        finally:
            container.close()

    def _check_complete(self, count: int, expected: int, last_t: float | None) -> None:
        """A file that ends early (truncated, cut download) plays what it has; say so.

        Strict mode fails only when the time says so too (where the stream has a duration): frame counts
        in headers can include frames an edit list hides, the stream's duration does not.
        """
        length = self._video_duration
        short_in_time = bool(length) and (last_t or 0) + 2.5 / self.info.fps < length
        if expected and count < expected:
            self._ended_early(f"ended after {count} of {expected} frames", fatal=short_in_time or not length)
        elif short_in_time:
            self._ended_early(f"ended at {last_t or 0:.2f} s of {length:.2f} s")

    def _ended_early(self, what: str, fatal: bool = True) -> None:
        if self.strict and fatal:
            raise InputError(f"{self.path.name} {what}: the file is truncated or corrupt; check that it plays "
                             f"in a media player")
        log.warning("%s %s (the file looks truncated or corrupt)", self.path.name, what)

    def close(self) -> None:
        super().close()
        gen, self._active = self._active, None
        if gen is not None:
            try:
                gen.close()  # closes its container now (not at garbage collection)
            except ValueError:
                pass  # running on another thread: it sees the stop and closes itself


# -- image folders -----------------------------------------------------------------------------------


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


# -- live captures (camera, URL) -----------------------------------------------------------------------


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
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._thread: threading.Thread | None = None
        self.frames_read = 0
        self.dropped = 0
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

    def _publish(self, img: np.ndarray) -> None:
        now = time.monotonic()
        with self._cond:
            if self._latest is not None:
                self.dropped += 1  # the consumer never took it: a newer one replaces it
            self._latest = Frame(index=self.frames_read, pts=None, time=now - self._start, captured=now,
                                 image=img)
            self.frames_read += 1
            self._cond.notify_all()

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
            with self._cond:
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        while not self.stopped:
            with self._cond:
                if self._latest is None:
                    self._cond.wait(timeout=0.1)
                frame, self._latest = self._latest, None
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


def _camera_hint() -> str:
    if sys.platform.startswith("linux"):
        return "list cameras with `v4l2-ctl --list-devices` (or `ls /dev/video*`)"
    if sys.platform == "darwin":
        return "list cameras with `system_profiler SPCameraDataType` and allow camera access for the terminal"
    return "see the cameras in the Device Manager (Windows) and close other programs using them"


class _QuietOpenCV:
    """OpenCV logs a page of warnings when a device is missing; we say it in one line instead."""

    def __enter__(self):
        self.level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

    def __exit__(self, *exc):
        cv2.utils.logging.setLogLevel(self.level)


class CameraSource(LiveCaptureSource):
    """A camera by index (0 = the default camera), optionally asking for a size and frame rate."""

    def __init__(self, index: int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, backoff: tuple[float, float] = (0.5, 5.0)):
        self.index = index
        self.requested = (width, height, fps)
        missing = (f"No camera at index {index}: check it is connected and not used by another program; "
                   f"{_camera_hint()}")
        super().__init__(self._make, name=f"camera {index}", missing=missing, fps=fps, backoff=backoff)

    def _make(self) -> cv2.VideoCapture:
        with _QuietOpenCV():
            cap = cv2.VideoCapture(self.index)
        width, height, fps = self.requested
        if cap.isOpened():
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: fewer stale frames queued in the driver
        return cap


def redact_url(url: str) -> str:
    """The URL without a password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class UrlSource(LiveCaptureSource):
    """An RTSP / HTTP(S) / ... stream through OpenCV's FFmpeg backend; `timeout` for opening and reading."""

    def __init__(self, url: str, timeout: float = 10.0, backoff: tuple[float, float] = (0.5, 5.0)):
        self.url = url
        self.timeout = timeout
        shown = redact_url(url)
        missing = (f"Cannot open stream {shown}: check the address, the credentials and that the server "
                   f"is up (waited up to {timeout:g} s)")
        super().__init__(self._make, name=shown, missing=missing, backoff=backoff)

    def _make(self) -> cv2.VideoCapture:
        ms = int(self.timeout * 1000)
        with _QuietOpenCV():
            return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                    [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])


# -- files played as a camera ---------------------------------------------------------------------------


class PacedSource(Source):
    """Plays a file source in real time (sleeping to its clock) and, with `loop`, forever: a camera stand-in.

    Frame.index keeps increasing across loops, pts/time too; meta["loop"] = True marks the first frame of
    each new loop. If the consumer or the decoder falls behind by more than `max_lag` seconds, the clock
    jumps forward instead of delivering a burst of late frames.
    """

    def __init__(self, source: Source, loop: bool = True, max_lag: float = 0.5):
        super().__init__()
        self.source = source
        self.loop = loop
        self.max_lag = max_lag
        self.loops = 0
        inner = source.info
        self.info = replace(inner, live=True, name=f"{inner.name} (as a camera{', looping' if loop else ''})",
                            frame_count=None if loop else inner.frame_count,
                            duration=None if loop else inner.duration)
        self.status = "playing"

    def open(self) -> Self:
        self.source.open()
        return self

    def close(self) -> None:
        super().close()
        self.source.close()

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        period = 1.0 / self.info.fps
        index, offset = 0, 0.0
        clock: float | None = None  # monotonic time of presentation time 0
        while not self.stopped:
            first_time = last_time = None
            for f in self.source:
                if self.stopped:
                    return
                if first_time is None:
                    first_time = f.time
                last_time = f.time
                t = offset + (f.time - first_time)
                now = time.monotonic()
                if clock is None:
                    clock = now - t
                wait = clock + t - now
                if wait < -self.max_lag:
                    clock -= wait  # fell behind: resynchronise rather than burst
                elif wait > 0 and self._stop.wait(wait):
                    return
                meta = dict(f.meta)
                if self.loops and f.time == first_time:
                    meta["loop"] = True
                yield Frame(index=index, pts=round(t / tb) if tb else None, time=t, captured=time.monotonic(),
                            image=f.image, meta=meta)
                index += 1
            if first_time is None or not self.loop:
                return  # nothing to loop over, or a single play
            offset += (last_time - first_time) + period
            self.loops += 1
            self.status = f"loop {self.loops + 1}"


# -- choosing a source ----------------------------------------------------------------------------------


def open_source(spec: str, *, live: bool, loop: bool | None = None, width: int | None = None,
                height: int | None = None, fps: float | None = None, timeout: float = 10.0) -> Source:
    """A source for `spec`: "0", "1".. a camera; rtsp://, http(s)://.. a stream; a folder of images; a video.

    With `live`, files and folders play in real time, looping unless `loop` is False. `width`/`height`/`fps`
    are asked of a camera; `fps` is also an image folder's rate.
    """
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
