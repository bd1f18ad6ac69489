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
- Inference is `execute_async_v3` on torch CUDA tensors: `set_input_shape` and `set_tensor_address`
  with `data_ptr()`, on `torch.cuda.current_stream()`, outputs allocated by torch; no host copies and
  no synchronisation (the caller's next torch op on the same stream is ordered after it).
- `build_engine` prebuilds the engines for `stylestream build-engine` and saves the resolutions
  and max batch it was given (`save_profile_settings`), so later runs use the same profile and
  find those engines instead of building new ones for the default profile.

What was run and what was not (stated plainly)
- `tensorrt` cannot be installed where this was written (the registry has only stub packages, and
  the machine has no GPU). Nothing in this module that imports `tensorrt` has been executed: the
  builder, the runtime and `TensorRTEngine` follow the TensorRT 10 Python API and NVIDIA's
  10.x -> 11.x migration notes (no precision flags, always strongly typed) and are untested.
- Executed and unit-tested without TensorRT (tests/test_tensorrt_backend.py): `trt_major`,
  `make_profile`, `engine_cache_key`, `precision_plan`, `parse_resolution`, `profile_fits`, the
  saved build-engine profile, and that the engine and `build_engine` raise BackendUnavailable
  without a GPU/TensorRT. The ONNX it builds from is tested (onnx.checker, onnxruntime parity,
  fp16 structure) in tests/test_export.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from engines.adain import StyleCode
from engines.backends.base import Engine
from engines.errors import BackendUnavailable, ConfigError, InputError
from engines.export import (
    DEFAULT_OPSET,
    FEAT_CHANNELS,
    INPUTS,
    OUTPUTS,
    cache_dir,
    cached_export,
    feat_hw,
    graph_hash,
    onnx_hash,
)
from engines.graph import StyleGraph, load_graph

log = logging.getLogger(__name__)

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]
# (height, width); the first is the optimisation target (the stream config's default size, 16:9).
DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((480, 854), (128, 128), (1080, 1920))
DEFAULT_MAX_BATCH = 4
MIN_SIDE = 8  # three 2x poolings: below this the features would be empty


# -- pure logic (tested without TensorRT) ---------------------------------------------------------


def trt_major(version: str) -> int:
    """'10.3.0.26' -> 10; 0 when the string has no leading number."""
    m = re.match(r"\s*(\d+)", str(version))
    return int(m.group(1)) if m else 0


def parse_resolution(text: str) -> tuple[int, int]:
    """'1280x720' (width x height, as displays are named) -> (720, 1280), tensor order (H, W)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m:
        raise ConfigError(f"Bad resolution {text!r}: write WIDTHxHEIGHT, e.g. 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if min(w, h) < MIN_SIDE or max(w, h) > 16384:
        raise ConfigError(f"Resolution {text} out of range: sides must be {MIN_SIDE}..16384")
    return h, w


def _round_down8(x: int) -> int:
    return max(MIN_SIDE, x // 8 * 8)


def _round_up8(x: int) -> int:
    return -(-x // 8) * 8


def make_profile(resolutions: Sequence[tuple[int, int]], max_batch: int = DEFAULT_MAX_BATCH,
                 part: str = "full", opt_batch: int | None = None) -> Profile:
    """(min, opt, max) shape per input of `part` covering every (height, width) in `resolutions`.

    Heights and widths: min = smallest rounded down to a multiple of 8, max = largest rounded up to
    one (a little slack costs nothing and frames a few pixels off still fit), opt = the first
    resolution as it is (TensorRT tunes its kernels there). Batch: 1 .. max_batch, opt = opt_batch
    (default max_batch: batching is for throughput). The decode part's feature input follows from
    the image sizes by the encoder's three ceil-mode poolings.
    """
    if not resolutions:
        raise ConfigError("No resolution given for the TensorRT profile")
    if part not in INPUTS:
        raise ConfigError(f"Unknown part {part!r}: use full, encode or decode")
    if max_batch < 1:
        raise ConfigError(f"max batch must be at least 1, not {max_batch}")
    opt_batch = max_batch if opt_batch is None else opt_batch
    if not 1 <= opt_batch <= max_batch:
        raise ConfigError(f"opt batch {opt_batch} must be between 1 and max batch {max_batch}")
    for h, w in resolutions:
        if min(h, w) < MIN_SIDE:
            raise ConfigError(f"Resolution {w}x{h} too small for the network (sides >= {MIN_SIDE})")
    hs, ws = [r[0] for r in resolutions], [r[1] for r in resolutions]
    images = {
        "min": (_round_down8(min(hs)), _round_down8(min(ws))),
        "opt": tuple(resolutions[0]),
        "max": (_round_up8(max(hs)), _round_up8(max(ws))),
    }
    batches = {"min": 1, "opt": opt_batch, "max": max_batch}

    def shape(name: str, which: str) -> Shape:
        n, (h, w) = batches[which], images[which]
        if name == "content":
            return (n, 3, h, w)
        if name == "feat":
            return (n, FEAT_CHANNELS, *feat_hw(h, w))
        if name == "alpha":
            return (n,)
        return (n, FEAT_CHANNELS)  # the statistics

    return {name: (shape(name, "min"), shape(name, "opt"), shape(name, "max")) for name in INPUTS[part]}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def engine_cache_key(gpu_name: str, compute_capability: str | tuple[int, int], trt_version: str,
                     precision: str, profile: Profile, onnx_digest: str, part: str = "full") -> str:
    """A file name that changes whenever the engine would have to be rebuilt.

    Readable parts first (part, GPU, sm, TensorRT version, precision), then a hash over all of it,
    the profile and the ONNX hash included.
    """
    if isinstance(compute_capability, tuple):
        compute_capability = f"{compute_capability[0]}.{compute_capability[1]}"
    canon = json.dumps({
        "gpu": gpu_name, "cc": str(compute_capability), "trt": str(trt_version), "precision": precision,
        "profile": {k: [list(s) for s in v] for k, v in sorted(profile.items())}, "onnx": onnx_digest,
        "part": part,
    }, sort_keys=True)
    digest = hashlib.sha256(canon.encode()).hexdigest()[:16]
    sm = str(compute_capability).replace(".", "")
    return f"{part}-{_slug(gpu_name)}-sm{sm}-trt{_slug(str(trt_version))}-{precision}-{digest}"


def precision_plan(major: int, has_strongly_typed: bool, precision: str) -> tuple[bool, bool]:
    """(create the network STRONGLY_TYPED, set BuilderFlag.FP16) for a TensorRT major version.

    TensorRT 11 removed the precision flags: types come from the graph (the flag is set if the
    enum still has it). 9.x/10.x: strongly typed, so the fp16 graph's explicit casts are obeyed
    (BuilderFlag.FP16 is an error then). Older: weakly typed with the FP16 flag as a fallback.
    """
    if major >= 11:
        return has_strongly_typed, False
    if has_strongly_typed:
        return True, False
    return False, precision == "fp16"


def profile_fits(profile: Profile, name: str, shape: Sequence[int]) -> bool:
    """Whether a tensor of `shape` can be fed to input `name` of an engine built for `profile`."""
    lo, _, hi = profile[name]
    return len(shape) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True))


# -- TensorRT (needs the package and a GPU) -------------------------------------------------------


def import_trt():
    try:
        import tensorrt as trt
    except ImportError as e:
        raise BackendUnavailable(f"TensorRT is not installed ({e}): pip install 'stylestream[tensorrt]' on a "
                                 "machine with an NVIDIA GPU, or use --backend torch") from None
    if not hasattr(trt, "Builder"):  # the registry's stub packages import but are empty
        raise BackendUnavailable("The installed 'tensorrt' package is a stub without the library; "
                                 "install NVIDIA's tensorrt wheel, or use --backend torch")
    return trt


def _cuda_device(device: str) -> torch.device:
    dev = torch.device("cuda" if device == "auto" else device)
    if dev.type != "cuda":
        raise BackendUnavailable(f"TensorRT runs on CUDA devices only, not {device!r}; use --backend onnxruntime "
                                 "or torch on the CPU")
    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU and torch sees none; on the CPU use "
                                 "--backend onnxruntime or torch")
    return dev


def gpu_identity(device: torch.device) -> tuple[str, str]:
    props = torch.cuda.get_device_properties(device)
    return props.name, f"{props.major}.{props.minor}"


def _torch_dtype(trt, dt) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if hasattr(trt.DataType, "BF16"):
        table[trt.DataType.BF16] = torch.bfloat16
    return table[dt]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write beside `path` and rename: a crash or a second process never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


PROFILE_FILE = "profile.json"


def save_profile_settings(resolutions: Sequence[tuple[int, int]], max_batch: int) -> Path:
    """Remember what `stylestream build-engine` built for; TensorRTEngine uses it by default."""
    make_profile(resolutions, max_batch)  # refuse settings that cannot make a profile
    path = cache_dir("tensorrt") / PROFILE_FILE
    data = {"resolutions": [[int(h), int(w)] for h, w in resolutions], "max_batch": int(max_batch)}
    _atomic_write(path, (json.dumps(data) + "\n").encode())
    return path


def load_profile_settings() -> tuple[tuple[tuple[int, int], ...], int]:
    """(resolutions, max batch) saved by the last build-engine, else the defaults."""
    path = cache_dir("tensorrt") / PROFILE_FILE
    if not path.is_file():
        return DEFAULT_RESOLUTIONS, DEFAULT_MAX_BATCH
    try:
        data = json.loads(path.read_text())
        resolutions = tuple((int(h), int(w)) for h, w in data["resolutions"])
        max_batch = int(data["max_batch"])
        make_profile(resolutions, max_batch)
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        log.warning("ignoring %s (%s); using the default TensorRT profile", path, e)
        return DEFAULT_RESOLUTIONS, DEFAULT_MAX_BATCH
    return resolutions, max_batch


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
    _atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def engine_file(graph: StyleGraph, part: str, device: torch.device, precision: str,
                resolutions: Sequence[tuple[int, int]], max_batch: int, opset: int = DEFAULT_OPSET,
                workspace_gib: float = 4.0, force: bool = False, digest: str | None = None) -> tuple[Path, Profile]:
    """The serialised engine for `part` (built now unless cached) and its profile."""
    trt = import_trt()
    onnx_path = cached_export(graph, part, precision, opset, digest=digest)
    profile = make_profile(resolutions, max_batch, part)
    gpu, cc = gpu_identity(device)
    key = engine_cache_key(gpu, cc, trt.__version__, precision, profile, onnx_hash(onnx_path), part)
    folder = cache_dir("tensorrt")
    path = folder / f"{key}.engine"
    if force or not path.is_file():
        timing = folder / f"timing-{_slug(gpu)}-sm{cc.replace('.', '')}-trt{_slug(trt.__version__)}.cache"
        with torch.cuda.device(device):
            _atomic_write(path, _build(trt, onnx_path, profile, precision, timing, workspace_gib))
        log.info("TensorRT engine saved: %s", path)
    return path, profile


def build_engine(decoder: str | Path | None = None, resolutions: Sequence[tuple[int, int]] = DEFAULT_RESOLUTIONS,
                 max_batch: int = DEFAULT_MAX_BATCH, precision: str = "fp16", device: str = "cuda",
                 parts: Sequence[str] = ("full", "encode", "decode"), force: bool = False,
                 workspace_gib: float = 4.0) -> list[Path]:
    """Prebuild (or find cached) engines for `stylestream build-engine`; returns their files."""
    dev = _cuda_device(device)
    import_trt()
    graph = load_graph(str(decoder) if decoder is not None else None)
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


class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, graph: StyleGraph | str | Path | None = None, device: str = "cuda",
                 precision: str = "auto", resolutions: Sequence[tuple[int, int]] | None = None,
                 max_batch: int | None = None, workspace_gib: float = 4.0, opset: int = DEFAULT_OPSET):
        self.trt = import_trt()
        self.device = _cuda_device(device)
        precision = "fp16" if precision == "auto" else precision
        if precision not in ("fp16", "fp32"):
            raise ConfigError(f"The TensorRT backend builds fp16 or fp32 engines, not {precision!r}")
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        if graph is None or isinstance(graph, str | Path):
            graph = load_graph(str(graph) if graph is not None else None)
        self.graph = graph.eval()
        self.digest = graph_hash(self.graph)
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

    def _style_inputs(self, n: int, style: StyleCode, alpha: float) -> dict[str, torch.Tensor]:
        smean, sstd = style.batch(n, self.device)
        return {"style_mean": smean, "style_std": sstd,
                "alpha": torch.full((n,), float(alpha), device=self.device)}

    @torch.inference_mode()
    def encode(self, batch):
        feat, mean, std = self._runner("encode")({"content": batch}, self.device)
        return feat, mean, std

    @torch.inference_mode()
    def decode(self, feat, content_mean, content_std, style: StyleCode, alpha: float, out_hw):
        inputs = {"feat": feat, "content_mean": content_mean, "content_std": content_std,
                  **self._style_inputs(feat.shape[0], style, alpha)}
        (image,) = self._runner("decode")(inputs, self.device)
        return image[..., : out_hw[0], : out_hw[1]]

    @torch.inference_mode()
    def stylize(self, batch, style: StyleCode, alpha: float):
        inputs = {"content": batch, **self._style_inputs(batch.shape[0], style, alpha)}
        (out,) = self._runner("full")(inputs, self.device)
        return out
