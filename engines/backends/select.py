"""Which backends are present, which one `auto` means here, and building an engine by name.

The `auto` rule:
- CUDA: tensorrt when it imports (fp16 engine built for the profile), else torch (fp16,
  channels_last, CUDA graphs). onnxruntime-gpu is not chosen automatically: it runs the same
  graph through cuDNN as torch does, without CUDA graphs.
- CPU: measured on the machine (engines.backends.calibrate): the first run of a network at a size
  class times every present CPU backend (openvino, onnxruntime, torch, each in its own best
  precision) and keeps the fastest, cached per machine. Without a calibration (STYLESTREAM_CALIBRATE=off,
  or an explicit --precision) a fixed order: openvino first where bf16 is native, else onnxruntime.
  `--precision bf16` keeps to the backends that run it (openvino, torch).
The measurements: docs/models.md, "Which backend `auto` picks".
"""

from __future__ import annotations

import logging
from pathlib import Path

from engines.backends.base import Engine
from engines.backends.registry import REGISTRY
from engines.devices import resolve_device
from engines.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

BACKENDS = tuple(REGISTRY)
# Fastest first on CUDA (see the module docstring); on a CPU `auto` is measured (engines.backends.calibrate).
PREFERENCE = {"cuda": ("tensorrt", "torch")}
BF16_BACKENDS = ("openvino", "torch")  # the CPU backends that run bf16


def why_unavailable(backend: str) -> str | None:
    """Why `backend` cannot run on this machine, saying what to do; None when it can."""
    try:
        REGISTRY[backend].check()
    except BackendUnavailable as e:
        return str(e)
    return None


def available_backends() -> list[str]:
    """Backends that can run on this machine (tensorrt only with a CUDA GPU)."""
    return [b for b in BACKENDS if why_unavailable(b) is None]


def pick_backend(backend: str = "auto", device: str = "auto", precision: str = "auto") -> str:
    """The backend to use: a named one if it is present, or for "auto" the fastest present one."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ConfigError(f"Unknown backend {backend!r}: use auto, {', '.join(BACKENDS)}")
        problem = why_unavailable(backend)
        if problem:
            raise BackendUnavailable(f"Backend {backend!r} is not available here: {problem}; "
                                     "or use --backend auto")
        return backend
    present = available_backends()
    kind = resolve_device(device, check=False).type
    choices = PREFERENCE.get(kind) or cpu_order()
    if precision == "bf16":
        choices = tuple(b for b in choices if b in BF16_BACKENDS)
    name = next(b for b in choices + ("torch",) if b in present)
    log.info("backend auto -> %s on %s (present: %s)", name, kind, ", ".join(present))
    return name


def cpu_order() -> tuple[str, ...]:
    from engines.backends.calibrate import fallback

    return fallback()


def measured_cpu_backend(graph, precision: str, frame_pixels: int | None, threads: int | None) -> str | None:
    """The calibrated fastest CPU backend for `graph` here (None: not calibrating, or a fixed precision)."""
    from engines.backends.calibrate import calibrate, calibration_enabled

    if precision != "auto" or not calibration_enabled():
        return None
    present = [b for b in available_backends() if b != "tensorrt"]
    return calibrate(graph, present, frame_pixels, threads)["best"]


def create_engine(backend: str = "auto", device: str = "auto", precision: str = "auto",
                  decoder: str | Path | None = None, graph=None, model: str = "full", job: str = "image",
                  frame_pixels: int | None = None, **options) -> Engine:
    """Build an engine by name ("auto": see pick_backend).

    `graph` (a StyleGraph or LiteGraph) is used instead of loading one. Else `model` (full, lite, or auto:
    engines.models.pick_model for `job` on this device) is loaded, with `decoder` as its weights file.
    Options that the chosen backend does not declare in the registry (e.g. cuda_graphs for onnxruntime,
    when the config was written for auto) are dropped with a debug message rather than failing.
    """
    name = pick_backend(backend, device, precision)
    kind = resolve_device(device, check=False).type
    if graph is None:
        graph = _load_model(model, job, kind, frame_pixels, decoder)
    if backend == "auto" and kind == "cpu":
        name = measured_cpu_backend(graph, precision, frame_pixels, options.get("threads")) or name
    entry = REGISTRY[name]
    kwargs, dropped = entry.accepts(options)
    if dropped:
        log.debug("%s backend ignores options: %s", name, ", ".join(dropped))
    # "auto" goes through as is: each backend resolves it (onnxruntime picks CUDA only when its
    # build has the CUDA provider, so a CPU-only onnxruntime on a GPU box still runs).
    return entry.engine_class()(graph, device=device, precision=precision, **kwargs)


def _load_model(model: str, job: str, device_type: str, frame_pixels: int | None, weights: str | Path | None):
    from engines.errors import WeightsError
    from engines.graph import load_graph
    from engines.models import BEST_QUALITY, pick_model

    chosen = pick_model(model, job, device_type, frame_pixels)
    weights = str(weights) if weights is not None else None
    try:
        return load_graph(weights, model=chosen)
    except WeightsError as e:
        if model != "auto" or chosen == BEST_QUALITY:  # nothing to fall back to, or asked for by name
            raise
        log.warning("the %s model cannot be loaded (%s); running the %s model", chosen, e, BEST_QUALITY)
        return load_graph(weights, model=BEST_QUALITY)
