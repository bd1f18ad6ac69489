"""The onnxruntime backend: the exported per-frame graph (engines.export) in an InferenceSession.

CPU: the session is tuned for one stream of large convolutions: intra-op threads = physical cores
(hyper-threads share the FMA units and only add contention), every graph optimisation (constant
folding of the reflection pads, Conv+ReLU fusion, the NCHWc blocked layout), memory pattern
planning, sequential execution (the graph is a chain: nothing to run in parallel). Inputs go in as
numpy views of the torch tensors and outputs come back as torch views of ORT's arrays (no copies).
In fp32 it is faster than the torch CPU backend (channels_last, oneDNN) at every size, so `auto`
picks it on CPUs without bf16 in hardware; where the CPU has bf16, torch in bf16 is faster still
(engines.backends.select has the numbers, from benchmarks/results/speed-cpu-*.json).

CUDA (device="cuda", needs the onnxruntime-gpu build): the CUDA execution provider, and TensorRT's
ahead of it when the build has it; tensors stay on the GPU, bound with IO binding to torch CUDA
memory. Not run here (no GPU, and the installed onnxruntime is the CPU build).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from engines.backends.exported import ExportedGraphEngine
from engines.backends.registry import import_runtime
from engines.devices import resolve_device
from engines.errors import BackendUnavailable, ConfigError
from engines.export import DEFAULT_OPSET, OUTPUTS, cache_dir, cached_export, feat_hw, tensor_dtype
from engines.graph import StyleGraph

log = logging.getLogger(__name__)


def import_ort():
    return import_runtime("onnxruntime", "onnxruntime", "pip install onnxruntime (or onnxruntime-gpu for CUDA)")


def physical_cores() -> int:
    """Physical cores this process may use (hyper-threads not counted)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    phys = core = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not key:  # blank line ends one logical CPU
                    if core:
                        cores.add((phys, core))
                    phys = core = ""
        if core:
            cores.add((phys, core))
    except OSError:
        pass
    return max(1, min(len(cores) or allowed, allowed))


def cpu_session_options(threads: int | None = None):
    ort = import_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or physical_cores()
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.enable_mem_pattern = True
    so.enable_cpu_mem_arena = True
    so.log_severity_level = 3  # warnings about unused initializers etc. are noise for users
    return so


def default_providers(device: torch.device, precision: str) -> list:
    """Execution providers for `device`, best first, among those this onnxruntime build has."""
    ort = import_ort()
    have = ort.get_available_providers()
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in have:
        raise BackendUnavailable("This onnxruntime has no CUDA support (providers: " + ", ".join(have)
                                 + "); pip install onnxruntime-gpu, or use --device cpu or --backend torch")
    index = device.index or 0
    providers: list = []
    if "TensorrtExecutionProvider" in have:
        providers.append(("TensorrtExecutionProvider", {
            "device_id": index, "trt_fp16_enable": precision == "fp16",
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir("ort-tensorrt")),
            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir("ort-tensorrt")),
        }))
    providers.append(("CUDAExecutionProvider", {"device_id": index, "cudnn_conv_algo_search": "EXHAUSTIVE"}))
    providers.append("CPUExecutionProvider")
    return providers


class OnnxRuntimeEngine(ExportedGraphEngine):
    name = "onnxruntime"

    def __init__(self, graph: StyleGraph | str | Path | None = None, device: str = "cpu",
                 providers: list | None = None, threads: int | None = None, precision: str = "auto",
                 opset: int = DEFAULT_OPSET):
        self.ort = import_ort()
        cuda = "CUDAExecutionProvider" in self.ort.get_available_providers() and torch.cuda.is_available()
        self.device = resolve_device(device, kinds=("cpu", "cuda"), auto_cuda=cuda, who="onnxruntime")
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"The onnxruntime backend runs fp32 or fp16, not {precision!r}")
        self.precision = precision
        self.dtype = tensor_dtype("content", precision)
        self._load_graph(graph)
        self.opset = opset
        self.providers = providers or default_providers(self.device, precision)
        self.threads = threads
        self._sessions: dict[str, object] = {}
        self._session("full")  # export and optimise now, not on the first frame

    # -- sessions -------------------------------------------------------------------------------

    def _session(self, part: str):
        if part not in self._sessions:
            path = cached_export(self.graph, part, self.precision, self.opset, digest=self.digest)
            so = cpu_session_options(self.threads)
            try:
                sess = self.ort.InferenceSession(str(path), so, providers=self.providers)
            except Exception as e:  # noqa: BLE001 - ORT raises its own non-Exception-subclass types too
                raise BackendUnavailable(f"onnxruntime could not load {path.name}: {str(e).splitlines()[0]}; "
                                         f"delete {path} to re-export, or use --backend torch") from None
            log.info("onnxruntime %s session: %s (%s)", part, path.name, ", ".join(sess.get_providers()))
            self._sessions[part] = sess
        return self._sessions[part]

    def describe(self) -> str:
        providers = self._session("full").get_providers()
        return f"{super().describe()} [{providers[0]}]"

    def _run(self, part: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        sess = self._session(part)
        if self.device.type == "cuda":
            return self._run_cuda(sess, part, inputs)
        # .contiguous() is a no-op for the usual inputs; .numpy() shares memory with the tensor.
        feed = {n: t.detach().to("cpu", tensor_dtype(n, self.precision)).contiguous().numpy()
                for n, t in inputs.items()}
        return [torch.from_numpy(o) for o in sess.run(None, feed)]

    def _run_cuda(self, sess, part: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """IO binding to torch CUDA memory: no host round trip."""
        index = self.device.index or 0
        binding = sess.io_binding()
        keep = []
        for n, t in inputs.items():
            t = t.detach().to(self.device, tensor_dtype(n, self.precision)).contiguous()
            keep.append(t)
            binding.bind_input(n, "cuda", index, _np_dtype(t.dtype), list(t.shape), t.data_ptr())
        outs = []
        for n, shape in zip(OUTPUTS[part], self._output_shapes(part, inputs, self.graph), strict=True):
            out = torch.empty(shape, dtype=tensor_dtype(n, self.precision), device=self.device)
            outs.append(out)
            binding.bind_output(n, "cuda", index, _np_dtype(out.dtype), list(shape), out.data_ptr())
        # ORT runs on its own stream: let torch's pending work on the inputs finish first.
        torch.cuda.current_stream(self.device).synchronize()
        sess.run_with_iobinding(binding)
        return outs

    @staticmethod
    def _output_shapes(part: str, inputs: dict[str, torch.Tensor], graph) -> list[tuple[int, ...]]:
        if part == "decode":
            n, _, fh, fw = inputs["feat"].shape
            k = 2 ** graph.halvings
            return [(n, 3, k * fh, k * fw)]
        n, _, h, w = inputs["content"].shape
        if part == "full":
            return [(n, 3, h, w)]
        c = graph.feat_channels
        return [(n, c, *feat_hw(h, w, graph.halvings)), (n, c), (n, c)]


def _np_dtype(dtype: torch.dtype):
    import numpy as np

    return {torch.float32: np.float32, torch.float16: np.float16}[dtype]
