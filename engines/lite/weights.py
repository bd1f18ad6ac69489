"""Loading the lite network's weights: `engines/weights/lite.safetensors` and its manifest.

The manifest (`lite.json`, written by `stylestream train --model lite`) records the network's widths,
how it was trained and the file's sha256, which is checked on load. Every problem is one WeightsError
that names the file and says what to do.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from engines.decoder import WEIGHTS_DIR, read_manifest
from engines.errors import WeightsError
from engines.files import file_sha256
from engines.lite.network import LiteGraph, LiteShape

DEFAULT_LITE = WEIGHTS_DIR / "lite.safetensors"
RESTORE = "Restore it (git checkout engines/weights/) or retrain with `stylestream train --model lite`."


def load_lite(path: str | Path | None = None, verify: bool = True) -> LiteGraph:
    """The shipped lite network (default) or a given lite .safetensors, on the CPU, in eval mode."""
    weights = Path(path) if path is not None else DEFAULT_LITE
    if not weights.is_file():
        raise WeightsError(f"Lite network weights not found: {weights}. {RESTORE} Or use --model full.")
    manifest = read_manifest(weights)
    if verify and manifest.get("sha256") and file_sha256(weights) != manifest["sha256"]:
        raise WeightsError(f"{weights} does not match the sha256 in {weights.with_suffix('.json').name}: "
                           f"the file is corrupt or was replaced. {RESTORE}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"Cannot read lite weights {weights}: {str(e).splitlines()[0]}. {RESTORE}") from None
    try:
        shape = LiteShape(**manifest.get("shape", {}))
    except TypeError as e:
        raise WeightsError(f"{weights.with_suffix('.json')} has an unknown lite shape ({e}). {RESTORE}") from None
    graph = LiteGraph(shape)
    try:
        graph.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as e:
        raise WeightsError(f"{weights} does not fit the lite network ({str(e).splitlines()[0]}). {RESTORE}") from None
    for name, tensor in graph.state_dict().items():
        if not bool(tensor.isfinite().all()):
            raise WeightsError(f"{weights}: tensor {name} holds NaN or inf. {RESTORE}")
    graph.manifest = manifest
    return graph.eval()


def is_provisional(graph: LiteGraph) -> bool:
    return bool(getattr(graph, "manifest", {}).get("provisional", False))


__all__ = ["DEFAULT_LITE", "load_lite", "is_provisional"]
