"""The TensorRT backend: engines built from the exported ONNX (engines.export), cached on disk.

How it works
- The fp16 ONNX (fp32 statistics and AdaIN inside, explicit Casts) is parsed into a strongly typed
  network where TensorRT has the flag (9.x/10.x), so precision comes from the graph; TensorRT 11
  removed the builder precision flags and is always typed from the graph; an old TensorRT without
  the flag gets BuilderFlag.FP16 instead (`precision_plan`).
- One optimisation profile covers the configured resolutions and batch sizes (`make_profile`);
  a timing cache file per GPU/TensorRT version makes rebuilds fast.
- The serialised engine lives in the cache folder (engines.export.cache_dir, "tensorrt/") under a
  key of GPU name, compute capability, TensorRT version, precision, profile and ONNX hash
  (`engine_cache_key`), so a new driver-compatible run loads it in a second, and anything that would
  make it invalid makes a new key instead.

The profile, cache key and precision logic (pure, tested without TensorRT) is in
engines.backends.tensorrt_profile; this module holds only the calls into the TensorRT API.
- Inference is `execute_async_v3` on torch CUDA tensors: `set_input_shape` and `set_tensor_address`
  with `data_ptr()`, on `torch.cuda.current_stream()`, outputs allocated by torch; no host copies and
  no synchronisation (the caller's next torch op on the same stream is ordered after it).
- `prebuild_engines` builds the engines for `stylestream build-engine` and saves the resolutions
  and max batch it was given (`save_profile_settings`), so later runs use the same profile and
  find those engines instead of building new ones for the default profile.

What was run and what was not (stated plainly)
- `tensorrt` cannot be installed where this was written (the registry has only stub packages, and
  the machine has no GPU). Nothing in this module that imports `tensorrt` has been executed: the
  builder, the runtime and `TensorRTEngine` follow the TensorRT 10 Python API and NVIDIA's
  10.x -> 11.x migration notes (no precision flags, always strongly typed) and are untested.
- Executed and unit-tested without TensorRT (tests/test_tensorrt_backend.py): everything in
  engines.backends.tensorrt_profile, and that the engine and `prebuild_engines` raise BackendUnavailable
  without a GPU/TensorRT. The ONNX it builds from is tested (onnx.checker, onnxruntime parity,
  fp16 structure) in tests/test_export.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from engines.backends.exported import ExportedGraphEngine
from engines.backends.registry import import_runtime
from engines.backends.tensorrt_profile import (
    DEFAULT_MAX_BATCH,
    DEFAULT_RESOLUTIONS,
    Profile,
    engine_cache_key,
    load_profile_settings,
    make_profile,
    precision_plan,
    profile_fits,
    save_profile_settings,
    slug,
    trt_major,
)
from engines.devices import resolve_device
from engines.errors import BackendUnavailable, ConfigError, InputError
from engines.export import DEFAULT_OPSET, INPUTS, OUTPUTS, cache_dir, cached_export, graph_hash
from engines.files import atomic_write, file_sha256
from engines.graph import StyleGraph, load_graph

log = logging.getLogger(__name__)


def import_trt():
    trt = import_runtime("tensorrt", "TensorRT", "pip install 'stylestream[tensorrt]' on a machine with an "
                         "NVIDIA GPU, or use --backend torch")
    if not hasattr(trt, "Builder"):  # the registry's stub packages import but are empty
        raise BackendUnavailable("The installed 'tensorrt' package is a stub without the library; "
                                 "install NVIDIA's tensorrt wheel, or use --backend torch")
    return trt


def cuda_device(device: str) -> torch.device:
    return resolve_device(device, kinds=("cuda",), who="TensorRT",
                          hint="on the CPU use --backend onnxruntime or torch")


def check_available() -> None:
    """BackendUnavailable unless torch sees a GPU and the TensorRT library imports (the registry's probe)."""
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU and torch sees none (use --device cpu with "
                                 "onnxruntime or torch)")
    import_trt()


def gpu_identity(device: torch.device) -> tuple[str, str]:
    props = torch.cuda.get_device_properties(device)
    return props.name, f"{props.major}.{props.minor}"


def _torch_dtype(trt, dt) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    return table[dt]


def _build(trt, onnx_path: Path, profile: Profile, precision: str, timing_path: Path,
           workspace_gib: float) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag_enum = trt.NetworkDefinitionCreationFlag
    strong_flag = getattr(flag_enum, "STRONGLY_TYPED", None)
    strongly, fp16_flag = precision_plan(trt_major(trt.__version__), strong_flag is not None, precision)
    flags = 1 << int(strong_flag) if strongly else 0
    if trt_major(trt.__version__) < 10 and hasattr(flag_enum, "EXPLICIT_BATCH"):
        flags |= 1 << int(flag_enum.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT could not parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.items():
        opt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(opt_profile)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    log.info("building a TensorRT engine from %s (strongly typed: %s; this takes minutes once)",
             onnx_path.name, strongly)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailable(f"TensorRT failed to build an engine from {onnx_path.name} (see the log above)")
    atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def engine_file(graph: StyleGraph, part: str, device: torch.device, precision: str,
                resolutions: Sequence[tuple[int, int]], max_batch: int, opset: int = DEFAULT_OPSET,
                workspace_gib: float = 4.0, force: bool = False, digest: str | None = None) -> tuple[Path, Profile]:
    """The serialised engine for `part` (built now unless cached) and its profile."""
    trt = import_trt()
    onnx_path = cached_export(graph, part, precision, opset, digest=digest)
    profile = make_profile(resolutions, max_batch, part, feat_channels=graph.feat_channels,
                           halvings=graph.halvings, style_channels=graph.style_channels)
    gpu, cc = gpu_identity(device)
    key = engine_cache_key(gpu, cc, trt.__version__, precision, profile, file_sha256(onnx_path), part)
    folder = cache_dir("tensorrt")
    path = folder / f"{key}.engine"
    if force or not path.is_file():
        timing = folder / f"timing-{slug(gpu)}-sm{cc.replace('.', '')}-trt{slug(trt.__version__)}.cache"
        with torch.cuda.device(device):
            atomic_write(path, _build(trt, onnx_path, profile, precision, timing, workspace_gib))
        log.info("TensorRT engine saved: %s", path)
    return path, profile


def prebuild_engines(decoder: str | Path | None = None,
                     resolutions: Sequence[tuple[int, int]] = DEFAULT_RESOLUTIONS,
                     max_batch: int = DEFAULT_MAX_BATCH, precision: str = "fp16", device: str = "cuda",
                     parts: Sequence[str] = ("full", "encode", "decode"), force: bool = False,
                     workspace_gib: float = 4.0, model: str = "full") -> list[Path]:
    """Build (or find cached) engines of `model` for `stylestream build-engine`; returns their files."""
    dev = cuda_device(device)
    import_trt()
    graph = load_graph(str(decoder) if decoder is not None else None, model=model)
    digest = graph_hash(graph)
    files = [engine_file(graph, p, dev, precision, resolutions, max_batch, workspace_gib=workspace_gib,
                         force=force, digest=digest)[0] for p in parts]
    save_profile_settings(resolutions, max_batch)
    return files


class _Runner:
    """One deserialised engine and its execution context."""

    def __init__(self, trt, runtime, path: Path, profile: Profile, part: str):
        self.engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"TensorRT could not load {path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.profile, self.part = profile, part
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in INPUTS[part] + OUTPUTS[part]}

    def __call__(self, inputs: dict[str, torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        keep = []
        for name in INPUTS[self.part]:
            t = inputs[name].to(device, self.dtypes[name]).contiguous()
            if not profile_fits(self.profile, name, t.shape):
                lo, _, hi = self.profile[name]
                raise InputError(f"{name} of shape {tuple(t.shape)} is outside the TensorRT profile {lo}..{hi}; "
                                 "rebuild with `stylestream build-engine --resolution WxH --max-batch N`")
            keep.append(t)  # alive until enqueued; the caching allocator orders reuse on this stream
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outs = []
        for name in OUTPUTS[self.part]:
            out = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name], device=device)
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        if not self.context.execute_async_v3(torch.cuda.current_stream(device).cuda_stream):
            raise RuntimeError(f"TensorRT failed to run the {self.part} engine")
        return outs


class TensorRTEngine(ExportedGraphEngine):
    name = "tensorrt"

    def __init__(self, graph: StyleGraph | str | Path | None = None, device: str = "cuda",
                 precision: str = "auto", resolutions: Sequence[tuple[int, int]] | None = None,
                 max_batch: int | None = None, workspace_gib: float = 4.0, opset: int = DEFAULT_OPSET):
        self.trt = import_trt()
        self.device = cuda_device(device)
        precision = "fp16" if precision == "auto" else precision
        if precision not in ("fp16", "fp32"):
            raise ConfigError(f"The TensorRT backend builds fp16 or fp32 engines, not {precision!r}")
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self._load_graph(graph)
        if resolutions is None or max_batch is None:  # what build-engine last built, or the defaults
            saved_resolutions, saved_batch = load_profile_settings()
            resolutions = saved_resolutions if resolutions is None else resolutions
            max_batch = saved_batch if max_batch is None else max_batch
        self.options = {"resolutions": tuple(map(tuple, resolutions)), "max_batch": max_batch,
                        "workspace_gib": workspace_gib, "opset": opset}
        self.runtime = self.trt.Runtime(self.trt.Logger(self.trt.Logger.WARNING))
        self._runners: dict[str, _Runner] = {}
        self._runner("full")

    def _runner(self, part: str) -> _Runner:
        if part not in self._runners:
            o = self.options
            path, profile = engine_file(self.graph, part, self.device, self.precision, o["resolutions"],
                                        o["max_batch"], o["opset"], o["workspace_gib"], digest=self.digest)
            self._runners[part] = _Runner(self.trt, self.runtime, path, profile, part)
        return self._runners[part]

    def _run(self, part: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        return self._runner(part)(inputs, self.device)
