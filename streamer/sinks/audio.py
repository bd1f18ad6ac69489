"""The source's audio in the output file: remuxed without re-encoding, interleaved with the video as frames
arrive (never more than the video written so far), and cut where the video ends. A codec the container
cannot hold (or that players will not play there) is transcoded: AAC, or Opus for WebM."""

from __future__ import annotations

import logging
from pathlib import Path

import av

log = logging.getLogger(__name__)

# Audio codecs that common players handle in MP4; anything else there is transcoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


class AudioTrack:
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
    def open(cls, path: Path, out: av.container.OutputContainer, fmt: str) -> AudioTrack | None:
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
