"""The OpenVINO backend: the exported per-frame graph (engines.export) compiled by OpenVINO's CPU plugin.

OpenVINO runs on any x86-64 CPU (Intel and AMD) and picks its kernels from the CPU's instruction set
(AVX2, AVX-512, AMX). Where the CPU has bf16 in hardware its default precision is bf16 on AMX/AVX512-BF16
units, the fastest way to run the lite network found on such a CPU (benchmarks/cpu_runtimes.py, numbers
in docs/models.md); elsewhere fp32. The graph is compiled once per input shape (a stream's frames keep
one size), with the latency hint, one stream and the engine's thread count.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from engines.backends.exported import ExportedGraphEngine
from engines.backends.registry import import_runtime
from engines.devices import resolve_device
from engines.errors import BackendUnavailable, ConfigError
from engines.export import DEFAULT_OPSET, cached_export
from engines.graph import StyleGraph
from engines.machine import cpu_has_native_bf16

log = logging.getLogger(__name__)

HINTS = {"fp32": "f32", "bf16": "bf16"}


def import_openvino():
    return import_runtime("openvino", "OpenVINO", "pip install openvino")


class OpenVinoEngine(ExportedGraphEngine):
    name = "openvino"

    def __init__(self, graph: StyleGraph | str | Path | None = None, device: str = "cpu", precision: str = "auto",
                 threads: int | None = None, opset: int = DEFAULT_OPSET):
        self.ov = import_openvino()
        self.device = resolve_device(device, kinds=("cpu",), auto_cuda=False, who="openvino")
        if precision == "auto":
            precision = "bf16" if cpu_has_native_bf16() else "fp32"
        if precision not in HINTS:
            raise ConfigError(f"The openvino backend runs fp32 or bf16, not {precision!r}")
        self.precision = precision
        self.dtype = torch.float32  # inputs and outputs; bf16 is OpenVINO's inside precision
        self._load_graph(graph)
        self.opset = opset
        self.threads = threads
        self.core = self.ov.Core()
        self._models: dict[str, object] = {}
        self._compiled: dict[tuple, object] = {}

    def describe(self) -> str:
        return f"openvino on cpu ({self.precision} inside, {self.threads or 'all'} threads)"

    def _config(self) -> dict:
        # not pinned: the stream's other threads (decode, blend, encode) share the cores, and an unpinned
        # thread can move off a busy one (convert 1.5-2% faster in 6 paired runs, native and capped; docs/models.md)
        config = {"INFERENCE_PRECISION_HINT": HINTS[self.precision], "PERFORMANCE_HINT": "LATENCY",
                  "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config

    def _request(self, part: str, feed: dict[str, np.ndarray]):
        """An infer request for `part` compiled for these input shapes (compiled on first use)."""
        key = (part, *((n, a.shape) for n, a in feed.items()))
        if key not in self._compiled:
            if part not in self._models:
                path = cached_export(self.graph, part, "fp32", self.opset, digest=self.digest)
                self._models[part] = self.core.read_model(str(path))
            model = self._models[part].clone()
            model.reshape({n: list(a.shape) for n, a in feed.items()})
            try:
                compiled = self.core.compile_model(model, "CPU", self._config())
            except RuntimeError as e:
                raise BackendUnavailable(f"OpenVINO could not compile the {part} graph: {str(e).splitlines()[0]}; "
                                         "use --backend onnxruntime or torch") from None
            log.info("openvino: compiled %s for %s", part, {n: a.shape for n, a in feed.items()})
            self._compiled[key] = compiled.create_infer_request()
        return self._compiled[key]

    def _run(self, part: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        # .numpy() shares memory with the tensor; OpenVINO reads the arrays in place
        feed = {n: t.detach().to("cpu", torch.float32).contiguous().numpy() for n, t in inputs.items()}
        request = self._request(part, feed)
        request.infer(feed)
        # copies: the request's output buffers are reused by its next inference
        return [torch.from_numpy(request.get_output_tensor(i).data.copy()) for i in range(len(request.model_outputs))]
