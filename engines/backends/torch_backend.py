"""The torch backend: CPU (fp32) and CUDA (fp16, channels_last, CUDA graphs, optional torch.compile).

On CUDA the convolutions run in fp16 while the AdaIN statistics stay fp32 (engines.adain).
For a fixed input shape the fused graph is captured once as a CUDA graph and replayed, which
removes the per-layer launch overhead that dominates at small resolutions.
"""

from __future__ import annotations

import logging

import torch

from engines.adain import StyleCode
from engines.backends.base import Engine
from engines.devices import resolve_device
from engines.errors import BackendUnavailable
from engines.graph import StyleGraph, load_graph
from engines.machine import cpu_has_native_bf16

log = logging.getLogger(__name__)


class _CudaGraph:
    """One captured replay of `fn` for fixed input shapes; inputs are copied into static buffers."""

    def __init__(self, fn, inputs: list[torch.Tensor]):
        self.static_in = [x.clone() for x in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(2):  # warm-up: cuDNN picks its algorithms outside the capture
                fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.static_out = fn(*self.static_in)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        for buf, x in zip(self.static_in, inputs, strict=True):
            buf.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.static_out.clone()


COMPILE_MODES = ("eager", "default", "max-autotune-no-cudagraphs")


def compile_mode(compile: bool | str | None) -> str:
    """The torch.compile mode an engine option means ("" for none). True: max-autotune (our CUDA graphs)."""
    if compile is True:
        return "max-autotune-no-cudagraphs"
    if not compile:
        return ""
    if compile not in COMPILE_MODES:
        raise BackendUnavailable(f"Unknown compile mode {compile!r}: use {', '.join(COMPILE_MODES)}")
    return compile


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, graph: StyleGraph | None = None, device: str = "auto", precision: str = "auto",
                 cuda_graphs: bool = True, compile: bool | str = False, threads: int | None = None,
                 fold_padding: bool = False, channels_last: bool = True):
        self.device = resolve_device(device)
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "bf16" if cpu_has_native_bf16() else "fp32"
        if precision not in ("fp32", "fp16", "bf16"):
            raise BackendUnavailable(f"Unknown precision {precision!r}: use fp32, fp16 or bf16")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        if threads:
            torch.set_num_threads(threads)
        graph = graph if graph is not None else load_graph()
        if fold_padding:
            from engines.backends.torch_fold import fold_padding as fold

            graph = fold(graph)
        # channels_last pays on both: cuDNN tensor cores, and oneDNN on the CPU (docs/models.md).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.graph = graph.to(self.device, self.dtype).to(memory_format=self.memory_format).eval()
        self.variant = {"compile": compile_mode(compile) or None, "fold_padding": fold_padding,
                        "channels_last": channels_last}
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._forward = self.graph.forward
        mode = compile_mode(compile)
        if mode == "eager":  # TorchDynamo without code generation: tests the plumbing on a CPU
            self._forward = torch.compile(self.graph.forward, backend="eager", dynamic=False)
        elif mode:  # our own CUDA graph capture replays it (below), so inductor's is off
            self._forward = torch.compile(self.graph.forward, mode=mode, dynamic=False)
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._captured: dict[tuple, _CudaGraph] = {}

    def _prepare(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self.device, self.dtype).contiguous(memory_format=self.memory_format)

    @torch.inference_mode()
    def encode(self, batch):
        return self.graph.encode(self._prepare(batch))

    @torch.inference_mode()
    def decode(self, feat, content_mean, content_std, style: StyleCode, alpha: float, out_hw):
        smean, sstd = style.batch(feat.shape[0], self.device, self.graph.style_channels)
        a = torch.full((feat.shape[0],), float(alpha), device=self.device)
        return self.graph.decode(feat, content_mean, content_std, smean, sstd, a, out_hw)

    @torch.inference_mode()
    def stylize(self, batch: torch.Tensor, style: StyleCode, alpha: float) -> torch.Tensor:
        x = self._prepare(batch)
        smean, sstd = style.batch(x.shape[0], self.device, self.graph.style_channels)
        a = torch.full((x.shape[0],), float(alpha), device=self.device)
        if not self.cuda_graphs:
            return self._forward(x, smean, sstd, a)
        key = tuple(x.shape)
        if key not in self._captured:
            log.info("capturing a CUDA graph for input %s", "x".join(map(str, key)))
            self._captured[key] = _CudaGraph(self._forward, [x, smean.contiguous(), sstd.contiguous(), a])
        return self._captured[key](x, smean, sstd, a)
