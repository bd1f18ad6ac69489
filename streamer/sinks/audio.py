"""The source's other streams in the output file: every audio track, and every subtitle stream the container can
hold, remuxed without re-encoding, interleaved with the video as frames arrive (never more than the video
written so far), and cut where the video ends. An audio codec the container cannot hold (or that players will
not play there) is transcoded: AAC, or Opus for WebM. Text subtitles the container cannot hold as they are go in
its own text format (SRT or ASS into MP4/MOV become mov_text). Language, title and disposition survive. What
cannot be kept (bitmap subtitles in MP4, data and attachment streams) is named in one warning."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av

log = logging.getLogger(__name__)

# Audio codecs that common players handle in MP4; anything else there is transcoded to AAC.
MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
# The text subtitle format each container holds, for text subtitles it cannot hold as they are.
TEXT_SUBTITLES = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip", "webm": "webvtt"}


@dataclass
class Route:
    """One source stream and where it goes in the output."""

    stream: av.stream.Stream
    out_stream: av.stream.Stream
    transcode: bool = False

    def describe(self) -> str:
        src = self.stream.codec_context.name
        if self.transcode:
            return f"{src} -> {self.out_stream.codec_context.name}"
        return f"{src} (copied)"


class CopiedStreams:
    """The source's audio and subtitle streams, fed into the output up to the video's time."""

    def __init__(self, source: av.container.InputContainer, routes: list[Route],
                 out: av.container.OutputContainer):
        self.source = source
        self.routes = {r.stream.index: r for r in routes}
        self.out = out
        self._packets = source.demux(*[r.stream for r in routes])
        self._next: av.Packet | None = None
        self.packets_written = 0           # audio packets
        self.subtitle_packets_written = 0

    @classmethod
    def open(cls, path: Path, out: av.container.OutputContainer, fmt: str) -> CopiedStreams | None:
        try:
            source = av.open(str(path), "r")
        except (av.FFmpegError, OSError) as e:
            log.warning("cannot read audio from %s (%s); writing video only", path.name, e)
            return None
        routes, dropped = [], []
        for stream in source.streams:
            route = None
            if stream.type == "audio":
                route = _audio_route(stream, out, fmt)
            elif stream.type == "subtitle":
                route = _subtitle_route(stream, out, fmt)
            if route is not None:
                _keep_tags(stream, route.out_stream, fmt)
                routes.append(route)
            elif stream.type != "video" or stream.index != source.streams.video[0].index:  # not the one stylized
                dropped.append(f"{stream.type} #{stream.index} ({_codec_name(stream)})")
        if dropped:
            hint = "; write .mkv to keep the subtitles" if fmt != "matroska" and any(
                d.startswith("subtitle") for d in dropped) else ""
            log.warning("note: dropped %d stream%s the output cannot hold: %s%s", len(dropped),
                        "s" * (len(dropped) > 1), ", ".join(dropped), hint)
        if not routes:
            log.info("%s has no audio; writing video only", path.name)
            source.close()
            return None
        return cls(source, routes, out)

    def describe(self) -> str:
        return ", ".join(r.describe() for r in self.routes.values())

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
            self._mux(packet, self.routes[packet.stream.index])

    def _mux(self, packet: av.Packet, route: Route) -> None:
        if route.transcode and route.stream.type == "subtitle":
            if (packet := _subtitle_packet(packet, route)) is None:
                return
            self.out.mux(packet)
        elif route.transcode:
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                log.debug("audio: skipping an undecodable packet: %s", e)
                return
            for frame in frames:
                self.out.mux(route.out_stream.encode(frame))
        else:
            packet.stream = route.out_stream
            self.out.mux(packet)
        if route.stream.type == "audio":
            self.packets_written += 1
        else:
            self.subtitle_packets_written += 1

    def finish(self, end_seconds: float) -> None:
        """Audio up to where the video ends (an interrupted conversion cuts it there), then flush."""
        self.write_until(end_seconds)
        for route in self.routes.values():
            if route.transcode and route.stream.type == "audio":
                self.out.mux(route.out_stream.encode(None))
        self.close()

    def close(self) -> None:
        self._packets = None
        self.source.close()


def _audio_route(stream: av.AudioStream, out: av.container.OutputContainer, fmt: str) -> Route:
    name = stream.codec_context.name
    if name in out.supported_codecs and (fmt != "mp4" or name in MP4_AUDIO):
        return Route(stream, out.add_stream_from_template(stream))
    target = "aac" if "aac" in out.supported_codecs and fmt != "webm" else out.default_audio_codec
    rate = 48000 if target in ("opus", "libopus") else stream.rate
    out_stream = out.add_stream(target, rate=rate)
    out_stream.layout = LAYOUTS.get(stream.layout.nb_channels, "stereo")
    log.info("%s audio cannot go into %s as it is; transcoding it to %s", name, fmt, target)
    return Route(stream, out_stream, transcode=True)


def _subtitle_route(stream: av.SubtitleStream, out: av.container.OutputContainer, fmt: str) -> Route | None:
    """Copied where the container holds the format; else text subtitles in the container's own text format."""
    name = stream.codec_context.name
    if name in out.supported_codecs:
        return Route(stream, out.add_stream_from_template(stream))
    target = TEXT_SUBTITLES.get(fmt)
    codec = stream.codec_context.codec
    if target is None or target not in out.supported_codecs or codec is None or not codec.text_sub:
        return None
    decoder = stream.codec_context
    decoder.open(strict=False)              # makes its ASS header, which the encoder starts from
    out_stream = out.add_stream(target)
    out_stream.time_base = stream.time_base
    out_stream.codec_context.time_base = stream.time_base
    out_stream.codec_context.subtitle_header = decoder.subtitle_header
    log.info("%s subtitles cannot go into %s as they are; converting them to %s", name, fmt, target)
    return Route(stream, out_stream, transcode=True)


def _subtitle_packet(packet: av.Packet, route: Route) -> av.Packet | None:
    """One source subtitle packet in the output's text format, at the same time; None if it holds nothing."""
    try:
        subtitle = route.stream.codec_context.decode2(packet)
        if subtitle is None or len(subtitle) == 0:
            return None
        encoded = route.out_stream.codec_context.encode_subtitle(subtitle)
    except (av.FFmpegError, ValueError) as e:
        log.debug("subtitles: skipping a packet that does not convert: %s", e)
        return None
    encoded.pts = packet.pts if packet.pts is not None else packet.dts
    encoded.dts = encoded.pts
    encoded.duration = packet.duration
    encoded.time_base = packet.time_base
    encoded.stream = route.out_stream
    return encoded


def _keep_tags(stream: av.stream.Stream, out_stream: av.stream.Stream, fmt: str) -> None:
    """The track's language, title and disposition (default, forced, ...) in the output. MP4 keeps a track's
    title as "name" (and players show its handler name), so an MP4 input's "name" is its title."""
    tags = {k.lower(): v for k, v in stream.metadata.items() if v}
    title = tags.get("title") or tags.get("name")
    if tags.get("language"):
        out_stream.metadata["language"] = tags["language"]
    if title:
        out_stream.metadata["title"] = title
        if fmt in ("mp4", "mov"):
            out_stream.metadata["handler_name"] = title
    out_stream.disposition = stream.disposition


def _codec_name(stream: av.stream.Stream) -> str:
    try:
        return stream.codec_context.name
    except (AttributeError, av.FFmpegError):
        return stream.metadata.get("filename") or stream.metadata.get("mimetype") or "unknown"
