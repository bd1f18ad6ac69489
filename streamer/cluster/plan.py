"""Work units for a cluster conversion: whole files, and long files cut at keyframes into segments.

A plan reads only the video stream's packet index (PyAV demux, no decoding): the presentation
timestamps of every frame and which packets are keyframes. A segment is a half-open pts range
[start, end) that starts on a keyframe, so a worker can seek there and decode it alone; it is
stylized after `warmup` frames just before `start` (decoded and stylized, not written) so the
temporal smoother has the state it would have had in one pass, and no seam shows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from engines.errors import InputError
from streamer.sources.video_file import VideoFileSource


@dataclass(frozen=True)
class Segment:
    index: int
    start: int            # first frame's pts (a keyframe), in the stream's time base
    end: int | None       # pts the segment stops before; None = to the end of the file
    warm_start: int       # pts of the first warm-up frame (== start: no warm-up)
    frames: int           # frames written (pts in [start, end))
    warm_frames: int      # frames stylized before `start` and not written


@dataclass
class FilePlan:
    """One input: converted whole (one segment, written straight to `dst` with its audio) or in segments."""

    src: Path
    dst: Path
    frames: int
    seconds: float
    time_base: Fraction
    segments: list[Segment] = field(default_factory=list)

    @property
    def split(self) -> bool:
        return len(self.segments) > 1

    @property
    def parts_dir(self) -> Path:
        """Hidden folder beside the output for finished segments (kept for a rerun until the join)."""
        return self.dst.with_name(f".{self.dst.name}.parts")

    def segment_path(self, seg: Segment) -> Path:
        return self.parts_dir / f"seg-{seg.index:05d}{self.dst.suffix}"

    def fingerprint(self, settings: dict) -> str:
        """What makes finished segments reusable: the input file as it is now, the cut and the settings."""
        st = self.src.stat()
        data = {"src": str(self.src.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                "segments": [asdict(s) for s in self.segments], "settings": settings}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def frame_index(path: Path) -> tuple[list[int], list[int], Fraction]:
    """(every frame's pts in presentation order, keyframe pts, time base) from the packet index."""
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"Cannot read {path}: {e}") from None
    try:
        stream = container.streams.video[0]
        pts, keys = [], []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
        return sorted(pts), sorted(keys), stream.time_base
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"Cannot read {path}: {e}; the file is corrupt or truncated") from None
    finally:
        container.close()


def packet_count(path: Path) -> int:
    """Video packets (= frames) in an encoded file; 0 when it cannot be read."""
    try:
        with av.open(str(path), "r") as container:
            return sum(1 for p in container.demux(container.streams.video[0]) if p.size)
    except (av.FFmpegError, OSError, IndexError):
        return 0


def segment_complete(plan: FilePlan, seg: Segment) -> bool:
    """A finished segment of an earlier run holds every frame it should (else it is removed)."""
    path = plan.segment_path(seg)
    if not path.is_file():
        return False
    if packet_count(path) == seg.frames:
        return True
    path.unlink(missing_ok=True)
    return False


def cut_segments(pts: list[int], keys: list[int], time_base: Fraction, segment_seconds: float,
                 warmup: int) -> list[Segment]:
    """Segments of about `segment_seconds`, each starting on a keyframe; one segment if the file is short.

    A cut is made at the first keyframe at least `segment_seconds` after the last cut, and not where
    less than half a segment would remain.
    """
    if not pts:
        return []
    step = segment_seconds / float(time_base)
    last = pts[-1]
    starts = [pts[0]]
    for k in keys:
        if k - starts[-1] >= step and last - k >= step / 2:
            starts.append(k)
    position = {p: i for i, p in enumerate(pts)}
    segments = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else None
        first = position[start]
        stop = position[end] if end is not None else len(pts)
        warm = max(0, first - warmup) if i else first
        segments.append(Segment(i, start, end, pts[warm], stop - first, first - warm))
    return segments


def plan_file(src: Path, dst: Path, segment_seconds: float, warmup: int) -> FilePlan:
    """The plan for one input; InputError (the message plain `convert` gives) for an unreadable file."""
    info = VideoFileSource(src).info  # the same probe as plain convert: same error for a corrupt file
    pts, keys, tb = frame_index(src)
    if not pts:
        # no usable timestamps in the packets: one unit, read as plain convert reads it
        frames = info.frame_count or 0
        return FilePlan(src, dst, frames, info.duration or 0.0, tb, [Segment(0, 0, None, 0, frames, 0)])
    segments = cut_segments(pts, keys, tb, segment_seconds, warmup)
    seconds = float((pts[-1] - pts[0]) * tb) + 1 / info.fps
    return FilePlan(src, dst, len(pts), seconds, tb, segments)
