"""A video file, decoded with PyAV. Phone videos (a display matrix: "rotation -90") come out upright."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from engines.errors import InputError
from streamer.frame import Frame, StreamInfo
from streamer.sources import DEFAULT_FPS, Source

log = logging.getLogger(__name__)


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


def quarter_turns(rotation: float, name: str) -> int:
    """np.rot90's k that shows a frame upright, from its display rotation (degrees counter-clockwise, as
    FFmpeg and VideoFrame.rotation give it: phones write -90, i.e. turn a quarter clockwise to show)."""
    if not rotation:
        return 0
    k = round(rotation / 90)
    if abs(rotation - 90 * k) > 1:
        log.warning("%s asks for a %.0f degree rotation; turning it %d degrees", name, rotation, 90 * k)
    log.info("%s is stored rotated (display rotation %.0f degrees); turning its frames upright", name, rotation)
    return k % 4


class VideoFileSource(Source):
    """A video file decoded with PyAV (threaded): every frame, in order, with the decoder's timestamps.

    Frame.pts is in `info.time_base` (the stream's), Frame.time in seconds. Iterating again starts from
    the beginning. `seek(seconds)` jumps (from any thread); the next frame has meta["seek"] = True so
    temporal smoothing resets.

    A file that stops decoding early (truncated, corrupt) plays what it has, with a warning; with `strict`
    (conversions) that is an InputError instead, raised from the iteration.

    A display matrix (phones store portrait video as landscape pixels plus "rotate by -90 to show") is applied
    to the pixels: frames, `info.width` and `info.height` are as the video is meant to be seen, so every sink
    (a converted file too, which then needs no rotation of its own) shows it upright.
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
            self.quarter_turns = quarter_turns(first.rotation, self.path.name)
            width, height = (first.height, first.width) if self.quarter_turns % 2 else (first.width, first.height)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else DEFAULT_FPS
            if not 0 < fps < 1000:
                fps = DEFAULT_FPS
            duration = self._video_duration = _stream_duration(stream)
            if duration is None and container.duration is not None:
                duration = container.duration / av.time_base  # all streams: audio may run longer
            frame_count = stream.frames or (round(duration * fps) if duration else None)
            return StreamInfo(width=width, height=height, fps=fps, time_base=stream.time_base,
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
                image = f.to_ndarray(format="bgr24")
                if self.quarter_turns:
                    image = np.ascontiguousarray(np.rot90(image, self.quarter_turns))
                yield Frame(index=index, pts=f.pts, time=t, captured=time.monotonic(), image=image, meta=meta)
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
