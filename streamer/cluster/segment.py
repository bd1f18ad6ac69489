"""Stylize one work unit on a worker, with the single-machine pipeline (StreamLoop, smoother, VideoFileSink).

- A whole file: exactly what plain `convert` does, audio included, written straight to its output.
- A segment: frames [warm_start, end) of the file, decoded after a seek to the keyframe before
  warm_start. Every frame goes through the same stylize step and temporal smoother; the warm-up
  frames (before `start`) only bring the smoother to the state a single pass has there, and are not
  written. The segment file holds video only, with the source's timestamps (the join adds audio).

A segment file exists only when it is complete: the sink renames it into place after its last frame,
and one with fewer frames than planned (an interrupted or truncated read) is removed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from engines.errors import InputError
from streamer.cluster.plan import FilePlan, Segment
from streamer.frame import Frame
from streamer.pipeline import build_loop, build_smoother
from streamer.sinks import Sink
from streamer.sinks.video_file import VideoFileSink
from streamer.sources import Source
from streamer.sources.video_file import VideoFileSource

WARMUP = "warmup"  # Frame.meta key of frames stylized only to warm the smoother up


class SegmentSource(Source):
    """The frames of one segment, after its warm-up frames (marked meta["warmup"])."""

    def __init__(self, plan: FilePlan, seg: Segment):
        super().__init__()
        self.file = VideoFileSource(plan.src, strict=True)
        self.seg = seg
        self.info = replace(self.file.info, frame_count=seg.frames + seg.warm_frames)

    def stop(self) -> None:
        super().stop()
        self.file.stop()

    def close(self) -> None:
        super().close()
        self.file.close()

    def __iter__(self) -> Iterator[Frame]:
        seg = self.seg
        if seg.index:  # the first segment starts where the file starts: no seek, as in one pass
            self.file.seek(float(seg.warm_start * self.info.time_base))
        for frame in self.file:
            if frame.pts < seg.warm_start:
                continue
            if seg.end is not None and frame.pts >= seg.end:
                return
            if frame.pts < seg.start:
                frame.meta[WARMUP] = True
            yield frame


class WrittenFramesOnly(Sink):
    """Passes every frame but the warm-up ones on to `sink`."""

    def __init__(self, sink: VideoFileSink):
        self.sink = sink
        self.name = sink.name

    def open(self, info) -> None:
        self.sink.open(info)

    def write(self, frame: Frame) -> None:
        if not frame.meta.get(WARMUP):
            self.sink.write(frame)

    def close(self) -> None:
        self.sink.close()

    def abort(self) -> None:
        self.sink.abort()


def convert_unit(cfg, engine, styles, plan: FilePlan, seg: Segment,
                 on_frame: Callable[[int], None] | None = None) -> int:
    """Stylize `seg` of `plan` (the whole file when it is not split); the frames written.

    `on_frame(n)` is called with the count of frames written so far. Raises InputError when the read
    stopped early (the file is truncated or corrupt), with no output left behind.
    """
    v = cfg.video
    whole = not plan.split
    dst = plan.dst if whole else plan.segment_path(seg)
    # The parts folder is this conversion's own: a segment left there by a failed attempt is replaced.
    sink = VideoFileSink(dst, codec=v.codec, crf=v.crf, preset=v.preset, audio=whole and v.audio,
                         overwrite=v.overwrite or not whole)
    source = VideoFileSource(plan.src, strict=True) if whole else SegmentSource(plan, seg)

    def written(frame: Frame) -> None:
        if on_frame is not None and not frame.meta.get(WARMUP):
            on_frame(sink.frames_written)

    cfg = cfg.model_copy(update={"stats": False})  # the driver prints --stats for the whole cluster
    with source:
        loop = build_loop(cfg, engine, styles, source, [WrittenFramesOnly(sink)], build_smoother(cfg),
                          progress=False, on_frame=written)
        result = loop.run()
    short = not whole and sink.frames_written != seg.frames
    if result.interrupted or short:
        dst.unlink(missing_ok=True)
        if short and not result.interrupted:
            raise InputError(f"{plan.src.name} ended after {sink.frames_written} of {seg.frames} frames of "
                             f"segment {seg.index}: the file is truncated or corrupt; check that it plays in "
                             f"a media player")
        raise InputError(f"{plan.src.name}: the worker was stopped in the middle of segment {seg.index}")
    return sink.frames_written
