"""Builds a stream from a StreamConfig (engine, styles, source, smoother, sinks) and runs it."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from engines.adain import blend_styles
from engines.backends import create_engine
from engines.backends.base import Engine
from engines.errors import InputError, OutputError, StylestreamError
from engines.presets import resolve_style
from streamer.app.config import StreamConfig
from streamer.app.paths import pair_outputs
from streamer.loop import RunResult, StreamLoop
from streamer.sources import URL_SCHEMES
from streamer.sources.url import redact_url
from streamer.stylize import NamedStyle, StylizeStep, output_size

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".ts", ".mpg", ".mpeg", ".flv", ".wmv"}


class Interrupted(StylestreamError):
    """A conversion stopped by Ctrl-C or SIGTERM. Its output is a playable file of the frames so far.

    The exit status is the shell's for the signal: 130 (SIGINT), 143 (SIGTERM).
    """

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.exit_code = 128 + (signum or signal.SIGINT)


def build_engine(cfg: StreamConfig, job: str = "convert", frame_pixels: int | None = None) -> Engine:
    """The engine for `job` ("convert", "live"): `engine.model: auto` picks the network for it."""
    e = cfg.engine
    options = {}
    if e.backend in ("torch", "auto"):
        options = {"cuda_graphs": e.cuda_graphs, "compile": e.compile}
    engine = create_engine(e.backend, device=e.device, precision=e.precision,
                           decoder=str(e.decoder) if e.decoder else None, model=e.model, job=job,
                           frame_pixels=frame_pixels, **options)
    log.info("engine: %s", engine.describe_model())
    return engine


def build_styles(cfg: StreamConfig, engine: Engine) -> list[NamedStyle]:
    """The styles hotkeys cycle through; a weighted blend (if weights are given) comes first."""
    named = []
    for spec in cfg.styles:
        code = resolve_style(spec, engine.encode_style, cfg.style_size, cfg.max_pixels)
        named.append(NamedStyle(Path(spec).stem if Path(spec).suffix else spec, code))
    if cfg.style_weights:
        mix = blend_styles([n.code for n in named], cfg.style_weights)
        label = " + ".join(f"{w:g} {n.name}" for w, n in zip(cfg.style_weights, named, strict=True))
        named.insert(0, NamedStyle(label, mix))
    return named


def build_smoother(cfg: StreamConfig):
    if not cfg.temporal.active:
        return None
    from streamer.temporal import TemporalSmoother

    return TemporalSmoother(cfg.temporal)


def build_loop(cfg: StreamConfig, engine: Engine, styles: list[NamedStyle], source, sinks: list, smoother=None,
               controls=None, progress: bool | None = None, on_frame=None,
               timings: bool | None = None) -> StreamLoop:
    """The stylize step (at the configured size) and the loop around it, for `source`. `progress` None:
    a bar for files; `on_frame(frame)` after the sinks took each frame (a cluster worker's count);
    `timings` None: per-stage times with --stats."""
    info = source.info
    step = StylizeStep(engine, smoother, output_size(info.width, info.height, cfg.size), cfg.preserve_color)
    batch = 1 if info.live else cfg.engine.batch or (4 if engine.device.type == "cuda" else 1)
    return StreamLoop(source, step, styles, sinks, batch=batch, alpha=cfg.alpha, stats=cfg.stats,
                      progress=not info.live if progress is None else progress, controls=controls, on_frame=on_frame,
                      timings=cfg.stats if timings is None else timings)


def plan_conversions(inputs: list[Path], output: Path) -> list[tuple[Path, Path]]:
    """(input video, output file) pairs: one video to a file name, or any number to a folder of MP4s."""
    for p in inputs:
        url = p.as_posix().replace(":/", "://", 1)  # a Path keeps one slash of "://"
        if url.startswith(URL_SCHEMES):
            raise InputError(f"convert reads files; to stylize and save the stream {redact_url(url)} use "
                             "`stylestream live --source URL --record out.mp4 --no-window`")
    return pair_outputs(inputs, output, VIDEO_SUFFIXES, "video", lambda out: bool(out.suffix),
                        lambda f: f"{f.stem}.mp4")


def _video_sink(cfg: StreamConfig, dst: Path, audio: bool):
    from streamer.sinks.video_file import VideoFileSink

    v = cfg.video
    return VideoFileSink(dst, codec=v.codec, crf=v.crf, preset=v.preset, audio=audio, overwrite=v.overwrite)


def check_conversions(cfg: StreamConfig, pairs: list[tuple[Path, Path]]) -> None:
    """Every input a readable video and every output name usable: before the engine loads or a frame is written."""
    from streamer.sources.video_file import VideoFileSource

    for src, dst in pairs:
        info = VideoFileSource(src).info  # probes: InputError for an empty, corrupt, truncated or non-video file
        output_size(info.width, info.height, cfg.size)  # InputError for an extreme shape
        _video_sink(cfg, dst, audio=False).check()


def convert_one(cfg: StreamConfig, engine: Engine, styles: list[NamedStyle], src: Path, dst: Path,
                timings: bool | None = None) -> RunResult:
    """One file; `timings` (default: with --stats) measures each stage (RunResult.stages)."""
    from streamer.sources.video_file import VideoFileSource

    with VideoFileSource(src, strict=True) as source:
        sink = _video_sink(cfg, dst, audio=cfg.video.audio)
        loop = build_loop(cfg, engine, styles, source, [sink], build_smoother(cfg), timings=timings)
        result = loop.run()
    log.info("%s: %d frames in %.1f s (%.2f fps)%s", dst, result.frames_out, result.seconds, result.fps,
             " - interrupted, the file holds the frames so far" if result.interrupted else "")
    if result.stages:
        log.info("ms per frame: %s", ", ".join(f"{k} {v}" for k, v in result.stages["ms_per_frame"].items()))
    return result


def run_convert(cfg: StreamConfig, inputs: list[Path], output: Path) -> list[Path]:
    """Convert each input; the outputs written. Raises Interrupted after Ctrl-C / SIGTERM (outputs kept)."""
    pairs = plan_conversions(inputs, output)
    check_conversions(cfg, pairs)
    engine = build_engine(cfg)
    styles = build_styles(cfg, engine)
    written = []
    for src, dst in pairs:
        try:
            result = convert_one(cfg, engine, styles, src, dst)
        except StylestreamError as e:
            if written:  # finished files are complete; say which are there
                e.args = (f"{e} ({len(written)} finished before it and kept: {', '.join(p.name for p in written)})",)
            raise
        if result.interrupted:
            raise interrupted(result, dst, finished=len(written))
        written.append(dst)
    return written


def interrupted(result: RunResult, dst: Path, finished: int = 0) -> Interrupted:
    held = f"{dst} holds the first {result.frames_out} frames" if result.frames_out else f"nothing written to {dst}"
    before = f" ({finished} finished before it)" if finished else ""
    return Interrupted(f"interrupted: {held}{before}", result.signal)


def run_live(cfg: StreamConfig) -> RunResult:
    from streamer.controls import LiveControls
    from streamer.sources import open_source

    lc = cfg.live
    # what can fail at once does, before the engine loads: no output, no display, a missing camera or file
    if not lc.window and lc.mjpeg is None and lc.vcam is None and lc.record is None:
        raise OutputError("live needs an output: the preview window, --vcam, --mjpeg PORT or --record FILE")
    if lc.window:
        from streamer.sinks.display import check_display

        check_display()
    source = open_source(lc.source, live=True, loop=lc.loop, width=lc.camera_width, height=lc.camera_height,
                         fps=lc.camera_fps)
    with source:
        out_w, out_h = output_size(source.info.width, source.info.height, cfg.size)
        engine = build_engine(cfg, "live", out_w * out_h)
        styles = build_styles(cfg, engine)
        smoother = build_smoother(cfg)
        controls = LiveControls([s.name for s in styles], alpha=cfg.alpha, smoothing=smoother is not None)
        sinks = _live_sinks(cfg, engine, controls, source)
        loop = build_loop(cfg, engine, styles, source, sinks, smoother, controls)
        return loop.run()


def _live_sinks(cfg: StreamConfig, engine: Engine, controls, source) -> list:
    lc = cfg.live
    sinks = []
    if lc.window:
        from streamer.sinks.window import WindowSink

        def hud_info() -> dict:
            return {"style": controls.style_name, "alpha": controls.alpha, "backend": engine.describe_model(),
                    "smoothing": controls.smoothing, "source": getattr(source, "status", "")}

        sinks.append(WindowSink(controls=controls, hud_info=hud_info))
    if lc.mjpeg is not None:
        from streamer.sinks.mjpeg import MjpegSink

        sinks.append(MjpegSink(host=lc.mjpeg.host, port=lc.mjpeg.port, quality=lc.mjpeg.quality))
    if lc.vcam is not None:
        from streamer.sinks.vcam import VirtualCameraSink

        sinks.append(VirtualCameraSink(device=lc.vcam.device, fps=lc.vcam.fps))
    if lc.record is not None:
        sinks.append(_video_sink(cfg, lc.record, audio=False))
    return sinks


def convert_timing_hook(clip_size: str, seconds: float, folder: Path, presets: tuple[str, ...] = ("medium",),
                        breakdown: bool = True):
    """A run_bench hook: end-to-end `convert` fps of each engine on a generated clip with audio (the demo clip).

    Same loop, sink and defaults as `stylestream convert` (smoothing on, libx264), at the clip's own size;
    one run per encoder preset, then (`breakdown`) one more with the default preset and stage timing on
    (streamer.timing: decode, upload, network, smoothing, download, encode in ms per frame).
    """
    from engines.bench import parse_resolutions, random_style
    from streamer.app.democlip import render_frame, write_demo_clip

    ((h, w),) = parse_resolutions(clip_size)
    h, w = h // 2 * 2, w // 2 * 2  # H.264 in yuv420p needs even sides
    clip = write_demo_clip(folder / f"clip-{w}x{h}.mp4", seconds=seconds, width=w, height=h)
    style = random_style()

    def run(engine, name: str, preset: str, timings: bool) -> dict:
        cfg = StreamConfig(size=0, video={"overwrite": True, "preset": preset})
        out = folder / f"out-{engine.model}-{name}.mp4"
        result = convert_one(cfg, engine, [NamedStyle("random", style)], clip, out, timings=timings)
        return {"clip": f"{w}x{h}", "frames": result.frames_out, "seconds": round(result.seconds, 2),
                "fps": round(result.fps, 2), "preset": preset, "audio": True,
                "smoothing": cfg.temporal.mechanism if cfg.temporal.enabled else "off",
                **({"stages": result.stages} if result.stages else {})}

    def hook(engine, name: str) -> dict:
        # Smoothing runs the split graph (encode, decode), which a backend may build on first use: not timed.
        feat, mean, std = engine.encode(engine.upload([render_frame(0.0, w, h)]))
        engine.decode(feat, mean, std, style, 1.0, (h, w))
        runs = [run(engine, name, p, timings=False) for p in presets]
        extra = {"convert": runs[0]}
        if len(runs) > 1:
            extra["convert_presets"] = runs
        if breakdown:
            extra["convert_stages"] = run(engine, name, presets[0], timings=True)
        return extra

    return hook
