"""The stream builders: a StreamConfig's engine, styles and smoother, and the loop around them.

Shared by every command that runs a stream (`convert`, `live`, `demo`, a cluster worker's segments,
the benchmarks), so that each builds it the same way.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import torch

from engines.adain import blend_styles
from engines.backends import create_engine
from engines.backends.base import Engine
from engines.errors import StylestreamError
from engines.presets import resolve_style
from streamer.config import EngineConfig, StreamConfig
from streamer.loop import StreamLoop
from streamer.stylize import NamedStyle, StylizeStep, output_size
from streamer.working_size import Governor

log = logging.getLogger(__name__)


class Interrupted(StylestreamError):
    """A conversion stopped by Ctrl-C or SIGTERM. Its output is a playable file of the frames so far.

    The exit status is the shell's for the signal: 130 (SIGINT), 143 (SIGTERM).
    """

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.exit_code = 128 + (signum or signal.SIGINT)


def build_engine(e: EngineConfig, job: str = "convert", frame_pixels: int | None = None) -> Engine:
    """The engine for `job` ("convert", "live", "serve"): `model: auto` picks the network for it."""
    options = {}
    if e.backend in ("torch", "auto"):
        options = {"cuda_graphs": e.cuda_graphs, "compile": e.compile}
    if e.threads:
        options["threads"] = e.threads
    engine = create_engine(e.backend, device=e.device, precision=e.precision,
                           decoder=str(e.decoder) if e.decoder else None, model=e.model, job=job,
                           frame_pixels=frame_pixels, **options)
    if engine.device.type == "cpu" and engine.name != "torch":
        # torch only moves the frames here (upload, resize); a second OpenMP thread would wait for a core
        # that the network, the smoothing or the encoder holds (upload: 10 -> 3.6 ms per 360p frame on
        # 2 cores, docs/models.md). Style codes still get every core (Engine.encode_style).
        torch.set_num_threads(1)
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


def build_governor(cfg: StreamConfig, info) -> Governor:
    """A live stream's working size: the configured size, lowered to hold the source's frame rate (or
    live.fps) unless live.adaptive_size is off."""
    out = output_size(info.width, info.height, cfg.size)
    return Governor(out, cfg.live.fps or info.fps, fixed=not cfg.live.adaptive_size)


def build_loop(cfg: StreamConfig, engine: Engine, styles: list[NamedStyle], source, sinks: list, smoother=None,
               controls=None, progress: bool | None = None, on_frame=None,
               timings: bool | None = None, governor: Governor | None = None) -> StreamLoop:
    """The stylize step (at the configured size) and the loop around it, for `source`. `progress` None:
    a bar for files; `on_frame(frame)` after the sinks took each frame (a cluster worker's count);
    `timings` None: per-stage times with --stats; `governor` (live): the network's working size."""
    info = source.info
    step = StylizeStep(engine, smoother, output_size(info.width, info.height, cfg.size), cfg.preserve_color)
    batch = 1 if info.live else cfg.engine.batch or (4 if engine.device.type == "cuda" else 1)
    return StreamLoop(source, step, styles, sinks, batch=batch, alpha=cfg.alpha, stats=cfg.stats,
                      progress=not info.live if progress is None else progress, controls=controls, on_frame=on_frame,
                      timings=cfg.stats if timings is None else timings, governor=governor)
