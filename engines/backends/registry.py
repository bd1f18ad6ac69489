"""The backends by name: what engine class each one builds and which options it takes.

A backend is registered once, here, with its engine class (imported on first use, so that a missing
onnxruntime or TensorRT costs nothing until asked for) and the options that class takes besides
graph, device and precision. `create_engine` (engines.backends.select) passes each engine only its
own options, so one config (written for `auto`) serves every backend. A new backend, or a second
network behind an existing one, is one more `register(...)` call.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from engines.backends.base import Engine
from engines.errors import BackendUnavailable


@dataclass(frozen=True)
class Backend:
    name: str
    engine: str                     # "module:Class" of its Engine
    options: frozenset[str]         # keyword options the engine takes besides graph, device, precision
    probe: str | None = None        # "module:function" that raises BackendUnavailable where it cannot run

    def engine_class(self) -> type[Engine]:
        module, _, cls = self.engine.partition(":")
        return getattr(importlib.import_module(module), cls)

    def check(self) -> None:
        """Raise BackendUnavailable (saying what to do) if this backend cannot run here."""
        if self.probe:
            module, _, fn = self.probe.partition(":")
            getattr(importlib.import_module(module), fn)()

    def accepts(self, options: dict) -> tuple[dict, list[str]]:
        """(the options this backend takes, the names of those it does not)."""
        return ({k: v for k, v in options.items() if k in self.options},
                sorted(k for k in options if k not in self.options))


def import_runtime(module: str, label: str, hint: str):
    """Import a backend's runtime library, or BackendUnavailable saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise BackendUnavailable(f"{label} is not installed ({e}): {hint}") from None


REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    REGISTRY[backend.name] = backend
    return backend


register(Backend("torch", "engines.backends.torch_backend:TorchEngine",
                 frozenset({"cuda_graphs", "compile", "threads", "fold_padding", "channels_last"})))
register(Backend("onnxruntime", "engines.backends.onnxruntime_backend:OnnxRuntimeEngine",
                 frozenset({"providers", "threads", "opset"}), probe="engines.backends.onnxruntime_backend:import_ort"))
register(Backend("openvino", "engines.backends.openvino_backend:OpenVinoEngine",
                 frozenset({"threads", "opset"}), probe="engines.backends.openvino_backend:import_openvino"))
register(Backend("tensorrt", "engines.backends.tensorrt_backend:TensorRTEngine",
                 frozenset({"resolutions", "max_batch", "workspace_gib", "opset"}),
                 probe="engines.backends.tensorrt_backend:check_available"))
