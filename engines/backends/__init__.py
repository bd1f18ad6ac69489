"""Backends: one file per way of running the per-frame graph (torch, onnxruntime, openvino, tensorrt)."""

from __future__ import annotations

from engines.backends.base import Engine

__all__ = ["Engine", "create_engine"]


def create_engine(backend: str = "torch", device: str = "auto", precision: str = "auto",
                  decoder: str | None = None, **options) -> Engine:
    """Build an engine by name; "auto" picks the fastest present one (engines.backends.select)."""
    from engines.backends.select import create_engine as _create

    return _create(backend, device=device, precision=precision, decoder=decoder, **options)
