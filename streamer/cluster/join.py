"""Join a long file's segments into its output: the encoded packets remuxed in order, audio copied once.

Nothing is decoded or encoded again. The segments were encoded with the same settings and carry the
source's timestamps, so their packets go into one stream as they are: every frame keeps its pts, and
the decode timestamps run on from one segment into the next (each encoder has the same B-frame delay);
a join that would break that order is refused rather than written. The source's audio is then
copied (or transcoded) once by the same code as a single-machine convert, up to where the video ends.

The output is written to a hidden partial file beside it and renamed into place, like VideoFileSink does.
"""

from __future__ import annotations

import logging
import os
import shutil
from fractions import Fraction

import av

from engines.errors import OutputError
from engines.files import temp_beside
from streamer.cluster.plan import FilePlan
from streamer.partial_files import describe_os_error, partial_tag
from streamer.sinks.audio import CopiedStreams
from streamer.sinks.encoder import CONTAINERS
from streamer.sources.video_file import VideoFileSource

log = logging.getLogger(__name__)


def output_rate(fps: float) -> Fraction:
    """The frame rate VideoFileSink gives the same source (its end time: last frame + one frame)."""
    return Fraction(fps if 0 < fps < 1000 else 25.0).limit_denominator(1001)


def join_segments(plan: FilePlan, audio: bool) -> int:
    """Write `plan.dst` from its finished segments; the number of video packets. Removes the parts folder."""
    parts = [plan.segment_path(s) for s in plan.segments]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise OutputError(f"Cannot join {plan.dst}: segments missing in {plan.parts_dir}: {', '.join(missing)}")
    partial = temp_beside(plan.dst, partial_tag())  # named as VideoFileSink names its partial files
    fmt = CONTAINERS[plan.dst.suffix.lower()]
    rate = output_rate(VideoFileSource(plan.src).info.fps)
    try:
        out = av.open(str(partial), "w", format=fmt)
    except OSError as e:
        raise OutputError(describe_os_error(e, plan.dst)) from None
    track = None
    try:
        with av.open(str(parts[0])) as first:
            template = first.streams.video[0]
            extradata = template.codec_context.extradata
            video = out.add_stream_from_template(template)
            video.time_base = template.time_base
        track = CopiedStreams.open(plan.src, out, fmt) if audio else None
        out.start_encoding()
        packets, end = _remux(parts, [s.frames for s in plan.segments], out, video, extradata, track)
        if track is not None:
            track.finish(end + 1 / rate)
            track = None
        out.close()
        os.replace(partial, plan.dst)
    except OSError as e:
        _discard(out, track, partial)
        raise OutputError(describe_os_error(e, plan.dst)) from None
    except BaseException:
        _discard(out, track, partial)
        raise
    shutil.rmtree(plan.parts_dir, ignore_errors=True)
    log.info("joined %d segments into %s (%d frames)", len(parts), plan.dst, packets)
    return packets


def _remux(parts, frames, out, video, extradata, track) -> tuple[int, float]:
    """Mux every segment's video packets in order; (packets, pts in seconds of the last frame).
    A segment without exactly its planned frames is refused (the join never writes a short file)."""
    last_dts = None
    top_pts = None
    packets = 0
    for part, expected in zip(parts, frames, strict=True):
        before = packets
        with av.open(str(part)) as container:
            stream = container.streams.video[0]
            if stream.codec_context.extradata != extradata:
                raise OutputError(f"Cannot join {part.name}: it was encoded with other settings than the first "
                                  f"segment; remove {part.parent} and convert again")
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if last_dts is not None and packet.dts <= last_dts:
                    raise OutputError(f"Cannot join {part.name}: its timestamps overlap the segment before "
                                      f"(dts {packet.dts} after {last_dts}); remove {part.parent} and convert again")
                last_dts = packet.dts
                top_pts = packet.pts if top_pts is None else max(top_pts, packet.pts)
                packet.stream = video
                out.mux(packet)
                packets += 1
                if track is not None:
                    track.write_until(float(top_pts * stream.time_base))
            time_base = stream.time_base
        if packets - before != expected:
            part.unlink(missing_ok=True)
            raise OutputError(f"Cannot join {part.name}: it holds {packets - before} frames, not {expected}; it was "
                              f"removed, convert again to redo it")
    return packets, float(top_pts * time_base)


def _discard(out, track, partial) -> None:
    if track is not None:
        track.close()
    try:
        out.close()
    except (OSError, av.FFmpegError) as e:
        log.debug("closing %s after a failure: %s", partial, e)
    partial.unlink(missing_ok=True)
