"""A video file sink (PyAV): H.264 in MP4 by default, timestamps from the source, the source's audio copied.

One job, a little over 300 lines: opening (own partial file, output lock), writing and the all-or-nothing
close are one transaction and read best together; codec choice and audio live beside it (encoder.py, audio.py).

- Timestamps: Frame.pts in StreamInfo.time_base when the source has them (variable frame rate and duration
  survive), else Frame.time; live streams start at 0.
- Audio and subtitles (from StreamInfo.path): every audio track, and the subtitles the container can hold, copied
  by streamer.sinks.audio, interleaved with the video as frames arrive; what cannot be kept is named once.
- Codec and its options (quality/speed in each encoder's own terms): streamer.sinks.encoder.
- Safety: frames go to a hidden ".NAME.partial-PID-XXXX.EXT" of this run's own beside the output, renamed
  into place by `close()` (also on Ctrl-C/SIGTERM: the file then holds every frame written so far). `abort()`
  and any write error remove it. While a run writes an output it holds its lock (engines.files.OutputLock):
  a second run for the same output is refused, naming it; partial files of runs that died (SIGKILL) are
  removed by the next run that takes the lock.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from engines.errors import OutputError
from engines.files import OutputLock, busy_error, temp_beside
from streamer.frame import Frame, StreamInfo
from streamer.partial_files import describe_os_error, partial_tag, stale_partials
from streamer.sinks import Sink
from streamer.sinks.audio import CopiedStreams
from streamer.sinks.encoder import CONTAINERS, alternatives, choose_codec, encoder_options, needs_even

log = logging.getLogger(__name__)

TIME_BASE_FALLBACK = Fraction(1, 90000)  # for sources without pts (cameras, URLs): Frame.time in this unit

class VideoFileSink(Sink):
    """Writes the stylized frames to `path` (.mp4, .m4v, .mov, .mkv, .webm).

    `codec` None picks the container's default (libx264; libvpx-vp9 for .webm). `audio` copies the
    source's audio (StreamInfo.path). `overwrite` allows replacing an existing file.
    """

    def __init__(self, path: str | Path, codec: str | None = None, crf: int = 17, preset: str = "veryfast",
                 pix_fmt: str = "yuv420p", audio: bool = True, overwrite: bool = False):
        self.path = Path(path)
        self.partial: Path | None = None  # this run's own temporary file, made by open()
        self._lock = OutputLock(self.path)
        self.codec = codec
        self.crf = crf
        self.preset = preset
        self.pix_fmt = pix_fmt
        self.audio = audio
        self.overwrite = overwrite
        self.name = f"file {self.path.name}"
        self.format = CONTAINERS.get(self.path.suffix.lower())
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder; give a file name like {self.path / 'out.mp4'}")
        if self.format is None:
            raise OutputError(f"Cannot write a video named {self.path.name}: use the extension .mp4, .mkv, "
                              f".mov or .webm")
        self.frames_written = 0
        self._out: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._audio: CopiedStreams | None = None
        self._created_dirs: list[Path] = []
        self._audio_packets = 0
        self._done = False

    # -- Sink -----------------------------------------------------------------------------------------

    def check(self) -> None:
        """OutputError if the file cannot be written as asked (a folder there, or a file without overwrite)."""
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder; give a file name like {self.path / 'out.mp4'}")
        if (pid := self._lock.holder()) is not None:
            raise busy_error(self.path, pid)
        self._refuse_existing()

    def _refuse_existing(self) -> None:
        if self.path.exists() and not self.overwrite:
            raise OutputError(f"{self.path} already exists; pass --overwrite to replace it or choose another "
                              f"name")

    def open(self, info: StreamInfo) -> None:
        self.check()
        self.info = info
        self._prepare_folder()
        try:
            self._claim()
            self._open_container(info)
        except BaseException:
            self._discard()
            raise

    def write(self, frame: Frame) -> None:
        if self._done or self._out is None:
            raise RuntimeError("VideoFileSink.write() before open() or after close()")
        image = self._fit(frame.image)
        vf = av.VideoFrame.from_ndarray(image, format="bgr24")
        vf.pts = self._pts(frame)
        vf.time_base = self.time_base
        try:
            self._out.mux(self._stream.encode(vf))
            self.frames_written += 1
            self._last_pts = vf.pts
            if self._audio is not None:
                self._audio.write_until(float(vf.pts * self.time_base))
        except OSError as e:  # av.error.OSError subclasses the builtin one: ENOSPC, EFBIG, EIO..
            self._discard()
            raise OutputError(describe_os_error(e, self.path)) from None

    def close(self) -> None:
        """Finish the file (also on Ctrl-C: every frame written so far) and rename it into place."""
        if self._done or self._out is None:
            return
        if self.frames_written == 0:
            log.warning("%s: no frame was written; nothing saved", self.path)
            self._discard()
            return
        try:
            self._out.mux(self._stream.encode(None))  # flush the encoder's delayed frames
            if self._audio is not None:
                self._audio.finish(self.end_time)
                self._audio_packets, self._audio = self._audio.packets_written, None
            self._out.close()
            self._out = None
            os.replace(self.partial, self.path)
            self._lock.release()
        except OSError as e:
            self._discard()
            raise OutputError(describe_os_error(e, self.path)) from None
        except av.FFmpegError as e:
            self._discard()
            raise OutputError(f"Cannot finish {self.path}: {e}") from None
        self._done = True
        log.info("wrote %s (%d frames, %.2f s)", self.path, self.frames_written, self.end_time)

    def abort(self) -> None:
        """After an error: remove the partial file (and folders this sink created), leave nothing behind."""
        if not self._done:
            self._discard()

    # -- opening --------------------------------------------------------------------------------------

    def _prepare_folder(self) -> None:
        missing = [p for p in [self.path.parent, *self.path.parent.parents] if not p.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(describe_os_error(e, self.path)) from None
        finally:
            self._created_dirs = [p for p in missing if p.exists()]

    def _claim(self) -> None:
        """Take the output's lock, clear partial files of dead runs, and make this run's own partial file
        (now, to fail with a clear reason rather than at the first frame)."""
        try:
            self._lock.claim()
            self._refuse_existing()  # again, held: a run that finished since check() may have written it
            for stale in stale_partials(self.path):
                log.info("removing %s, left by a run that did not finish", stale.name)
                stale.unlink(missing_ok=True)
            self.partial = temp_beside(self.path, partial_tag())
        except OSError as e:
            raise OutputError(describe_os_error(e, self.path)) from None

    def _open_container(self, info: StreamInfo) -> None:
        try:
            out = av.open(str(self.partial), "w", format=self.format)
        except OSError as e:
            raise OutputError(describe_os_error(e, self.path)) from None
        self._out = out
        codec = choose_codec(self.codec, self.format, self.path.suffix, out)
        width, height = info.width, info.height
        if needs_even(self.pix_fmt) and (width % 2 or height % 2):
            log.info("%s: %s needs even sizes; padding %dx%d to %dx%d", self.path.name, self.pix_fmt, width,
                     height, width + width % 2, height + height % 2)
        self.size = (width, height)
        self.enc_size = (width + width % 2, height + height % 2) if needs_even(self.pix_fmt) else self.size
        fps = info.fps if info.fps and 0 < info.fps < 1000 else 25.0
        self.rate = Fraction(fps).limit_denominator(1001)
        self.time_base = info.time_base or TIME_BASE_FALLBACK
        self._start_pts: int | None = None
        self._last_pts = -1
        stream = out.add_stream(codec, rate=self.rate)
        stream.width, stream.height = self.enc_size
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        stream.codec_context.time_base = self.time_base
        stream.options = encoder_options(codec, self.crf, self.preset)
        self._stream = stream
        if self.audio and info.path is not None:
            self._audio = CopiedStreams.open(Path(info.path), out, self.format)
        try:
            out.start_encoding()  # opens the encoders and writes the header: errors show up here
        except OSError as e:
            if "avcodec_open2" in str(e):
                raise OutputError(f"The {codec} encoder could not start ({e.strerror}); "
                                  f"{alternatives(out, exclude=codec)}") from None
            raise OutputError(describe_os_error(e, self.path)) from None
        except av.FFmpegError as e:
            raise OutputError(f"The {codec} encoder could not start ({e}); "
                              f"{alternatives(out, exclude=codec)}") from None
        log.info("writing %s: %s %dx%d @ %.3g fps%s", self.path, codec, *self.enc_size, float(self.rate),
                 f", audio {self._audio.describe()}" if self._audio else "")

    # -- frames ---------------------------------------------------------------------------------------

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """The frame at the encoder's size: resized if the stream changed size, padded to even sizes."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"VideoFileSink expects H x W x 3 uint8 BGR images, got {image.shape} "
                             f"{image.dtype}")
        h, w = image.shape[:2]
        if (w, h) != self.size:
            if not getattr(self, "_warned_size", False):
                log.warning("%s: frames are %dx%d, the stream %dx%d; resizing", self.path.name, w, h,
                            *self.size)
                self._warned_size = True
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        pad_w, pad_h = self.enc_size[0] - self.size[0], self.enc_size[1] - self.size[1]
        if pad_w or pad_h:
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(image)

    def _pts(self, frame: Frame) -> int:
        """The source's pts when it has them; else Frame.time; else index / fps. Strictly increasing."""
        if frame.pts is not None and self.info.time_base is not None:
            pts = int(frame.pts)
        elif frame.time is not None and math.isfinite(frame.time):
            pts = round(frame.time / self.time_base)
        else:
            pts = round(frame.index / self.rate / self.time_base)
        if self.info.live:  # a live recording starts at 0 whenever it started
            if self._start_pts is None:
                self._start_pts = pts
            pts -= self._start_pts
        if pts <= self._last_pts:
            log.debug("%s: pts %d not after %d; nudged", self.path.name, pts, self._last_pts)
            pts = self._last_pts + 1
        return pts

    @property
    def audio_packets_written(self) -> int:
        """Source audio packets muxed so far (0 without audio)."""
        return self._audio_packets + (self._audio.packets_written if self._audio is not None else 0)

    @property
    def end_time(self) -> float:
        """Seconds where the written video ends: the last frame's time plus one frame."""
        if self._last_pts < 0:
            return 0.0
        return float(self._last_pts * self.time_base) + 1 / float(self.rate)

    # -- cleanup --------------------------------------------------------------------------------------

    def _discard(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._out is not None:
            try:
                self._out.close()
            except (OSError, av.FFmpegError) as e:  # the file goes anyway
                log.debug("closing %s after a failure: %s", self.partial, e)
            self._out = None
        if self.partial is not None:
            self.partial.unlink(missing_ok=True)
        self._lock.release()
        for folder in self._created_dirs:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        self._created_dirs = []
        self._done = True
