"""Backends: one file per way of running the per-frame graph (torch, onnxruntime, tensorrt)."""

from __future__ import annotations

from engines.backends.base import Engine

__all__ = ["Engine", "create_engine"]


def create_engine(backend: str = "torch", device: str = "auto", precision: str = "auto",
                  decoder: str | None = None, **options) -> Engine:
    """Build an engine by name. ("auto" is resolved by engines.backends.select once it exists.)"""
    if backend in ("torch", "auto"):
        from engines.backends.torch_backend import TorchEngine
        from engines.graph import load_graph

        return TorchEngine(load_graph(decoder), device=device, precision=precision, **options)
    from engines.errors import BackendUnavailable

    raise BackendUnavailable(f"Unknown backend {backend!r}")
