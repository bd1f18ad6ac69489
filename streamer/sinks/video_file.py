"""A video file sink (PyAV): H.264 in MP4 by default, timestamps from the source, the source's audio copied.

- Timestamps: Frame.pts in StreamInfo.time_base when the source has them (variable frame rate and duration
  survive), else Frame.time; live streams start at 0.
- Audio (from StreamInfo.path): packets are remuxed without re-encoding, interleaved with the video as
  frames arrive (never more than the video written so far), and cut where the video ends. A codec the
  container cannot hold (or that players will not play there) is transcoded: AAC, or Opus for WebM.
- Safety: frames go to ".NAME.partial.EXT" beside the output, renamed into place by `close()` (also on
  Ctrl-C/SIGTERM: the file then holds every frame written so far). `abort()` and any write error remove it.
"""

from __future__ import annotations

import errno
import logging
import math
import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.sinks import Sink

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
DEFAULT_CODEC = "libx264"
CONTAINER_CODEC = {"webm": "libvpx-vp9"}  # where H.264 cannot go
# Encoders worth suggesting, by preference; only those present and fitting the container are listed.
KNOWN_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "h264_nvenc", "hevc_nvenc", "av1_nvenc",
                  "h264_qsv", "h264_videotoolbox", "mpeg4")
# Audio codecs that common players handle in MP4; anything else there is transcoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
TIME_BASE_FALLBACK = Fraction(1, 90000)  # for sources without pts (cameras, URLs): Frame.time in this unit
VPX_SPEED = {"ultrafast": 8, "superfast": 7, "veryfast": 6, "faster": 5, "fast": 4, "medium": 2, "slow": 1,
             "slower": 0, "veryslow": 0}
SVT_PRESET = {"ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8, "medium": 6,
              "slow": 4, "slower": 3, "veryslow": 2}
NVENC_PRESET = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4",
                "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7"}
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def partial_path(path: Path) -> Path:
    """Where a file is written before it is complete: hidden, beside the output, same extension."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def describe_os_error(e: OSError, path: Path) -> str:
    """One line for a failed write, saying what to do."""
    code = e.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"Disk full while writing {path}: free some space or write to another disk"
    if code == errno.EFBIG:
        return f"{path} grew larger than this file system (or a file size limit) allows; write elsewhere"
    if code in (errno.EACCES, errno.EPERM):
        return f"Cannot write {path}: permission denied; choose a folder you can write to"
    if code == errno.EROFS:
        return f"Cannot write {path}: the file system is read-only; choose another folder"
    if code in (errno.ENOTDIR, errno.ENOENT):
        return f"Cannot write {path}: {path.parent} is not a folder that can be created"
    reason = (getattr(e, "strerror", None) or str(e)).splitlines()[0]
    return f"Cannot write {path}: {reason}"


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Quality/speed options in each encoder's own terms (crf 18 / preset medium = x264's meaning)."""
    if codec in ("libx264", "libx265"):
        if crf > 51:
            log.warning("%s: crf %d is above the maximum 51; using 51", codec, crf)
        opts = {"crf": str(min(crf, 51)), "preset": preset}
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        return opts
    if codec in ("libvpx-vp9", "libvpx"):
        return {"crf": str(crf), "b": "0", "row-mt": "1", "deadline": "good",
                "cpu-used": str(VPX_SPEED.get(preset, 2))}
    if codec.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(min(crf, 51)), "preset": NVENC_PRESET.get(preset, preset)}
    if codec == "libsvtav1":
        return {"crf": str(crf), "preset": str(SVT_PRESET.get(preset, 6))}
    return {}


def _available_encoder(name: str) -> av.codec.Codec | None:
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return None
    return codec if codec.type == "video" else None


def _needs_even(pix_fmt: str) -> bool:
    return any(tag in pix_fmt for tag in ("420", "422", "411", "nv12", "nv21", "p010"))


class VideoFileSink(Sink):
    """Writes the stylized frames to `path` (.mp4, .m4v, .mov, .mkv, .webm).

    `codec` None picks the container's default (libx264; libvpx-vp9 for .webm). `audio` copies the
    source's audio (StreamInfo.path). `overwrite` allows replacing an existing file.
    """

    def __init__(self, path: str | Path, codec: str | None = None, crf: int = 18, preset: str = "medium",
                 pix_fmt: str = "yuv420p", audio: bool = True, overwrite: bool = False):
        self.path = Path(path)
        self.partial = partial_path(self.path)
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
        self._audio: _AudioTrack | None = None
        self._created_dirs: list[Path] = []
        self._audio_packets = 0
        self._done = False

    # -- Sink -----------------------------------------------------------------------------------------

    def check(self) -> None:
        """OutputError if the file cannot be written as asked (a folder there, or a file without overwrite)."""
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder; give a file name like {self.path / 'out.mp4'}")
        if self.path.exists() and not self.overwrite:
            raise OutputError(f"{self.path} already exists; pass --overwrite to replace it or choose another "
                              f"name")

    def open(self, info: StreamInfo) -> None:
        self.check()
        self.info = info
        self._prepare_folder()
        try:
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
            with open(self.partial, "wb"):  # fail now, with a clear reason, rather than at the first frame
                pass
        except OSError as e:
            raise OutputError(describe_os_error(e, self.path)) from None
        finally:
            self._created_dirs = [p for p in missing if p.exists()]

    def _open_container(self, info: StreamInfo) -> None:
        try:
            out = av.open(str(self.partial), "w", format=self.format)
        except OSError as e:
            raise OutputError(describe_os_error(e, self.path)) from None
        self._out = out
        codec = self._choose_codec(out)
        width, height = info.width, info.height
        if _needs_even(self.pix_fmt) and (width % 2 or height % 2):
            log.info("%s: %s needs even sizes; padding %dx%d to %dx%d", self.path.name, self.pix_fmt, width,
                     height, width + width % 2, height + height % 2)
        self.size = (width, height)
        self.enc_size = (width + width % 2, height + height % 2) if _needs_even(self.pix_fmt) else self.size
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
            self._audio = _AudioTrack.open(Path(info.path), out, self.format)
        try:
            out.start_encoding()  # opens the encoders and writes the header: errors show up here
        except OSError as e:
            if "avcodec_open2" in str(e):
                raise OutputError(f"The {codec} encoder could not start ({e.strerror}); "
                                  f"{self._alternatives(out, exclude=codec)}") from None
            raise OutputError(describe_os_error(e, self.path)) from None
        except av.FFmpegError as e:
            raise OutputError(f"The {codec} encoder could not start ({e}); "
                              f"{self._alternatives(out, exclude=codec)}") from None
        log.info("writing %s: %s %dx%d @ %.3g fps%s", self.path, codec, *self.enc_size, float(self.rate),
                 f", audio {self._audio.describe()}" if self._audio else "")

    def _choose_codec(self, out: av.container.OutputContainer) -> str:
        wanted = self.codec or CONTAINER_CODEC.get(self.format, DEFAULT_CODEC)
        enc = _available_encoder(wanted)
        if enc is None:
            raise OutputError(f"The video encoder '{wanted}' is not available in this PyAV build; "
                              f"{self._alternatives(out, exclude=wanted)}")
        if enc.name not in out.supported_codecs and enc.canonical_name not in out.supported_codecs:
            fallback = CONTAINER_CODEC.get(self.format)
            if wanted == DEFAULT_CODEC and fallback:  # the project-wide default, with a .webm name
                log.info("%s cannot hold H.264; encoding %s", self.path.suffix, fallback)
                return fallback
            raise OutputError(f"A {self.path.suffix} file cannot hold {wanted} video; "
                              f"{self._alternatives(out, exclude=wanted)}")
        return enc.name

    def _alternatives(self, out: av.container.OutputContainer, exclude: str) -> str:
        fits = []
        for name in KNOWN_ENCODERS:
            enc = _available_encoder(name)
            if name != exclude and enc is not None and (enc.canonical_name in out.supported_codecs):
                fits.append(name)
        if not fits:
            return "no other known encoder fits this container here"
        return f"use one of: {', '.join(fits)} (--codec, or video.codec in the config)"

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
        self.partial.unlink(missing_ok=True)
        for folder in self._created_dirs:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        self._created_dirs = []
        self._done = True


class _AudioTrack:
    """The source's first audio stream, fed into the output up to the video's time."""

    def __init__(self, source: av.container.InputContainer, stream: av.AudioStream,
                 out_stream: av.AudioStream, transcode: bool):
        self.source = source
        self.stream = stream
        self.out_stream = out_stream
        self.transcode = transcode
        self.out: av.container.OutputContainer | None = None
        self._packets = source.demux(stream)
        self._next: av.Packet | None = None
        self.packets_written = 0

    @classmethod
    def open(cls, path: Path, out: av.container.OutputContainer, fmt: str) -> _AudioTrack | None:
        try:
            source = av.open(str(path), "r")
        except (av.FFmpegError, OSError) as e:
            log.warning("cannot read audio from %s (%s); writing video only", path.name, e)
            return None
        if not source.streams.audio:
            log.info("%s has no audio; writing video only", path.name)
            source.close()
            return None
        stream = source.streams.audio[0]
        name = stream.codec_context.name
        fits = name in out.supported_codecs and (fmt != "mp4" or name in MP4_AUDIO)
        if fits:
            track = cls(source, stream, out.add_stream_from_template(stream), transcode=False)
        else:
            target = "aac" if "aac" in out.supported_codecs and fmt != "webm" else out.default_audio_codec
            rate = 48000 if target in ("opus", "libopus") else stream.rate
            out_stream = out.add_stream(target, rate=rate)
            out_stream.layout = LAYOUTS.get(stream.layout.nb_channels, "stereo")
            log.info("%s audio cannot go into %s as it is; transcoding it to %s", name, fmt, target)
            track = cls(source, stream, out_stream, transcode=True)
        track.out = out
        return track

    def describe(self) -> str:
        src = self.stream.codec_context.name
        return f"{src} -> {self.out_stream.codec_context.name}" if self.transcode else f"{src} (copied)"

    def _peek(self) -> av.Packet | None:
        while self._next is None and self._packets is not None:
            try:
                packet = next(self._packets)
            except StopIteration:
                self._packets = None
                return None
            except (av.FFmpegError, OSError) as e:
                log.warning("audio: reading the source stopped (%s); the rest of the audio is missing", e)
                self._packets = None
                return None
            if packet.size and (packet.pts is not None or packet.dts is not None):
                self._next = packet
        return self._next

    def write_until(self, seconds: float) -> None:
        """Mux every source packet that starts before `seconds`."""
        while (packet := self._peek()) is not None:
            ts = packet.pts if packet.pts is not None else packet.dts
            if float(ts * packet.time_base) >= seconds:
                return
            self._next = None
            self._mux(packet)

    def _mux(self, packet: av.Packet) -> None:
        if self.transcode:
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                log.debug("audio: skipping an undecodable packet: %s", e)
                return
            for frame in frames:
                self.out.mux(self.out_stream.encode(frame))
        else:
            packet.stream = self.out_stream
            self.out.mux(packet)
        self.packets_written += 1

    def finish(self, end_seconds: float) -> None:
        """Audio up to where the video ends (an interrupted conversion cuts it there), then flush."""
        self.write_until(end_seconds)
        if self.transcode:
            self.out.mux(self.out_stream.encode(None))
        self.close()

    def close(self) -> None:
        self._packets = None
        self.source.close()
