"""The `convert` and `live` commands: a StreamConfig's stream (streamer.pipeline) from files or a live source."""

from __future__ import annotations

from pathlib import Path

from engines.backends.base import Engine
from engines.errors import OutputError, StylestreamError
from streamer.config import StreamConfig
from streamer.convert import check_conversions, convert_one, interrupted, plan_conversions, video_sink
from streamer.loop import RunResult
from streamer.pipeline import build_engine, build_governor, build_loop, build_smoother, build_styles
from streamer.stylize import output_size


def run_convert(cfg: StreamConfig, inputs: list[Path], output: Path) -> list[Path]:
    """Convert each input; the outputs written. Raises Interrupted after Ctrl-C / SIGTERM (outputs kept)."""
    pairs = plan_conversions(inputs, output)
    check_conversions(cfg, pairs)
    engine = build_engine(cfg.engine)
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
        engine = build_engine(cfg.engine, "live", out_w * out_h)
        styles = build_styles(cfg, engine)
        smoother = build_smoother(cfg)
        controls = LiveControls([s.name for s in styles], alpha=cfg.alpha, smoothing=smoother is not None)
        governor = build_governor(cfg, source.info)
        sinks = _live_sinks(cfg, engine, controls, source, governor)
        loop = build_loop(cfg, engine, styles, source, sinks, smoother, controls, governor=governor)
        return loop.run()


def _live_sinks(cfg: StreamConfig, engine: Engine, controls, source, governor) -> list:
    lc = cfg.live
    sinks = []
    if lc.window:
        from streamer.sinks.window import WindowSink

        def hud_info() -> dict:
            return {"style": controls.style_name, "alpha": controls.alpha, "backend": engine.describe_model(),
                    "smoothing": controls.smoothing, "source": getattr(source, "status", ""),
                    "size": governor.describe()}

        sinks.append(WindowSink(controls=controls, hud_info=hud_info))
    if lc.mjpeg is not None:
        from streamer.sinks.mjpeg import MjpegSink

        sinks.append(MjpegSink(host=lc.mjpeg.host, port=lc.mjpeg.port, quality=lc.mjpeg.quality))
    if lc.vcam is not None:
        from streamer.sinks.vcam import VirtualCameraSink

        sinks.append(VirtualCameraSink(device=lc.vcam.device, fps=lc.vcam.fps))
    if lc.record is not None:
        sinks.append(video_sink(cfg, lc.record, audio=False))
    return sinks
