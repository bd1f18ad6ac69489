"""`auto` on a CPU: the backend that ran this network fastest on this machine, measured once and cached.

Which CPU runtime wins depends on the CPU (AMX or AVX512-BF16, AVX-512, AVX2 only), on the network
and on the frame size, so a rule learned on one machine misleads on the next. The first time a
network runs at a size class on a machine, every present CPU backend stylizes a few frames of that
size; the fastest is written to the cache (cache_dir("calibration")), keyed by the machine (CPU model
and flags, oneDNN cap, threads, runtime versions), the network and its weights, and the size. Later
runs read it. `stylestream bench --calibrate` redoes it; STYLESTREAM_CALIBRATE=off (the test suite)
uses the fixed order in FALLBACK instead.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time

import torch

from engines.backends.registry import REGISTRY
from engines.errors import StylestreamError
from engines.export import cache_dir, graph_hash
from engines.files import atomic_output
from engines.machine import cpu_class, cpu_has_native_bf16, cpu_model

log = logging.getLogger(__name__)

CPU_BACKENDS = ("openvino", "onnxruntime", "torch")
STANDARD_PIXELS = 640 * 360  # the size class calibrated when the frame size is not known yet
RUNS = 3


def fallback() -> tuple[str, ...]:
    """The order used without a calibration: OpenVINO first where bf16 is native (its AMX kernels were
    the fastest by far where measured), else onnxruntime."""
    return ("openvino", "onnxruntime", "torch") if cpu_has_native_bf16() else ("onnxruntime", "openvino", "torch")


def calibration_enabled() -> bool:
    return os.environ.get("STYLESTREAM_CALIBRATE", "on").lower() not in ("0", "off", "no", "false")


def size_class(frame_pixels: int | None) -> tuple[int, int]:
    """The 16:9 size (multiples of 8) with about `frame_pixels` pixels: what a calibration times."""
    px = frame_pixels or STANDARD_PIXELS
    w = max(64, round(math.sqrt(px * 16 / 9) / 8) * 8)
    return max(64, round(w * 9 / 16 / 8) * 8), w


def machine_key(threads: int | None) -> dict:
    versions = {}
    for mod in ("onnxruntime", "openvino"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    return {"cpu": cpu_model(), "flags": cpu_class(), "threads": threads or torch.get_num_threads(),
            "torch": torch.__version__, **versions}


def calibration_path(graph, hw: tuple[int, int], threads: int | None):
    key = json.dumps({"machine": machine_key(threads), "graph": graph_hash(graph), "hw": hw}, sort_keys=True)
    name = f"{graph.kind}-{hw[1]}x{hw[0]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    return cache_dir("calibration") / name


def time_backend(name: str, graph, hw: tuple[int, int], threads: int | None) -> float:
    """Median ms of one stylized frame of size hw (after a warm-up) with backend `name`."""
    from engines.adain import StyleCode

    options = {"threads": threads} if threads else {}
    # a copy: an engine may convert its graph in place (the torch backend's layout and precision)
    engine = REGISTRY[name].engine_class()(copy.deepcopy(graph), device="cpu", **options)
    gen = torch.Generator().manual_seed(0)
    frame = torch.rand(1, 3, *hw, generator=gen)
    c = graph.style_channels
    style = StyleCode(torch.rand(c, generator=gen), torch.rand(c, generator=gen) + 0.1)
    engine.stylize(frame, style, 1.0)
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        engine.stylize(frame, style, 1.0)
        times.append((time.perf_counter() - t) * 1000)
    return sorted(times)[len(times) // 2]


def calibrate(graph, present: list[str], frame_pixels: int | None = None, threads: int | None = None,
              redo: bool = False) -> dict:
    """-> {"best": name, "ms": {name: ms}, ...}, measured now or read from the cache."""
    hw = size_class(frame_pixels)
    path = calibration_path(graph, hw, threads)
    if path.is_file() and not redo:
        try:
            result = json.loads(path.read_text())
            if result.get("best") in present:
                return result
        except (OSError, ValueError):
            pass  # unreadable: measure again
    log.warning("calibrating the CPU backends for the %s network at %dx%d (once on this machine)",
                graph.kind, hw[1], hw[0])
    ms = {}
    for name in (b for b in CPU_BACKENDS if b in present):
        try:
            ms[name] = round(time_backend(name, graph, hw, threads), 2)
        except StylestreamError as e:  # a runtime that cannot run this graph here: not a candidate
            log.info("calibration: %s cannot run here (%s)", name, e)
    if not ms:
        return {"best": "torch", "ms": {}, "hw": hw}
    result = {"best": min(ms, key=ms.get), "ms": ms, "hw": list(hw), "machine": machine_key(threads),
              "network": graph.kind, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    log.warning("calibration: %s", ", ".join(f"{n} {v:.1f} ms" for n, v in sorted(ms.items(), key=lambda kv: kv[1])))
    return result
