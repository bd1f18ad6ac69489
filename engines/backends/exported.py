"""What the onnxruntime and TensorRT backends share: a graph exported to ONNX (engines.export), run by part.

The exported graph has three parts ("full", "encode", "decode"; engines.export). A subclass loads its
runtime and implements `_run(part, inputs)`; everything else (the style and strength inputs, encode,
decode, stylize) is here, once, so a second exported network plugs in by giving another graph.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import torch

from engines.adain import StyleCode
from engines.backends.base import Engine
from engines.export import graph_hash
from engines.graph import StyleGraph, load_graph


class ExportedGraphEngine(Engine):
    graph: StyleGraph
    digest: str  # graph_hash(graph): the key of its cached exports

    def _load_graph(self, graph: StyleGraph | str | Path | None) -> None:
        """A StyleGraph as it is, or one loaded from a decoder file (None: the shipped weights)."""
        if graph is None or isinstance(graph, str | Path):
            graph = load_graph(str(graph) if graph is not None else None)
        self.graph = graph.eval()
        self.digest = graph_hash(self.graph)

    @abstractmethod
    def _run(self, part: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Run exported `part` on named inputs (torch tensors); its outputs, on self.device, in order."""

    def _style_inputs(self, n: int, style: StyleCode, alpha: float) -> dict[str, torch.Tensor]:
        smean, sstd = style.batch(n, self.device, self.graph.style_channels)
        return {"style_mean": smean, "style_std": sstd,
                "alpha": torch.full((n,), float(alpha), device=self.device)}

    @torch.inference_mode()
    def encode(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat, mean, std = self._run("encode", {"content": batch})
        return feat, mean, std

    @torch.inference_mode()
    def decode(self, feat, content_mean, content_std, style: StyleCode, alpha: float, out_hw) -> torch.Tensor:
        inputs = {"feat": feat, "content_mean": content_mean, "content_std": content_std,
                  **self._style_inputs(feat.shape[0], style, alpha)}
        (image,) = self._run("decode", inputs)
        return image[..., : out_hw[0], : out_hw[1]]

    @torch.inference_mode()
    def stylize(self, batch: torch.Tensor, style: StyleCode, alpha: float) -> torch.Tensor:
        inputs = {"content": batch, **self._style_inputs(batch.shape[0], style, alpha)}
        (out,) = self._run("full", inputs)
        return out
