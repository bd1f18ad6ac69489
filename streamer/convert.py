"""Converting video files: which output each input gets, the checks before the engine loads, one file's run."""

from __future__ import annotations

import logging
from pathlib import Path

from engines.backends.base import Engine
from engines.errors import InputError
from streamer.config import StreamConfig
from streamer.loop import RunResult
from streamer.paths import pair_outputs
from streamer.pipeline import Interrupted, build_loop, build_smoother
from streamer.sources import URL_SCHEMES
from streamer.sources.url import redact_url
from streamer.stylize import NamedStyle, output_size

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv", ".wmv"}


def plan_conversions(inputs: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """(input video, output file) pairs: one video to a file name, or any number to a folder of MP4s."""
    for p in inputs:
        url = p.as_posix().replace(":/", "://", 1)  # a Path keeps one slash of "://"
        if url.startswith(URL_SCHEMES):
            raise InputError(f"convert reads files; to stylize and save the stream {redact_url(url)} use "
                             "`stylestream live --source URL --record out.mp4 --no-window`")
    return pair_outputs(inputs, output, VIDEO_SUFFIXES, "video", lambda out: bool(out.suffix),
                        lambda f: f"{f.stem}.mp4")


def video_sink(cfg: StreamConfig, dst: Path, audio: bool):
    from streamer.sinks.video_file import VideoFileSink

    v = cfg.video
    return VideoFileSink(dst, codec=v.codec, crf=v.crf, preset=v.preset, audio=audio, overwrite=v.overwrite)


def check_conversions(cfg: StreamConfig, pairs: list[tuple[Path, Path]]) -> None:
    """Every input a readable video and every output name usable: before the engine loads or a frame is written."""
    from streamer.sources.video_file import VideoFileSource

    for src, dst in pairs:
        info = VideoFileSource(src).info  # probes: InputError for an empty, corrupt, truncated or non-video file
        output_size(info.width, info.height, cfg.size)  # InputError for an extreme shape
        video_sink(cfg, dst, audio=False).check()


def convert_one(cfg: StreamConfig, engine: Engine, styles: list[NamedStyle], src: Path, dst: Path,
                timings: bool | None = None) -> RunResult:
    """One file; `timings` (default: with --stats) measures each stage (RunResult.stages)."""
    from streamer.sources.video_file import VideoFileSource

    with VideoFileSource(src, strict=True) as source:
        sink = video_sink(cfg, dst, audio=cfg.video.audio)
        loop = build_loop(cfg, engine, styles, source, [sink], build_smoother(cfg), timings=timings)
        result = loop.run()
    log.info("%s: %d frames in %.1f s (%.2f fps)%s", dst, result.frames_out, result.seconds, result.fps,
             " - interrupted, the file holds the frames so far" if result.interrupted else "")
    if result.stages:
        log.info("ms per frame: %s", ", ".join(f"{k} {v}" for k, v in result.stages["ms_per_frame"].items()))
    return result


def interrupted(result: RunResult, dst: Path, finished: int = 0) -> Interrupted:
    held = f"{dst} holds the first {result.frames_out} frames" if result.frames_out else f"nothing written to {dst}"
    before = f" ({finished} finished before it)" if finished else ""
    return Interrupted(f"interrupted: {held}{before}", result.signal)
