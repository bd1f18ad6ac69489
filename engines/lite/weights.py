"""Loading the lite network's weights: `engines/weights/lite.safetensors` and its manifest.

The manifest (`lite.json`, written by `stylestream train --model lite`) records the network's widths,
how it was trained and the file's sha256, which is checked on load. Every problem is one WeightsError
that names the file and says what to do.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from engines.decoder import WEIGHTS_DIR, check_finite, check_sha256, read_manifest
from engines.errors import WeightsError
from engines.lite.network import LiteGraph, LiteShape, from_v1

DEFAULT_LITE = WEIGHTS_DIR / "lite.safetensors"
RESTORE = "Restore it (git checkout engines/weights/) or retrain with `stylestream train --model lite`."


def load_lite(path: str | Path | None = None, verify: bool = True) -> LiteGraph:
    """The shipped lite network (default) or a given lite .safetensors, on the CPU, in eval mode."""
    weights = Path(path) if path is not None else DEFAULT_LITE
    if not weights.is_file():
        raise WeightsError(f"Lite network weights not found: {weights}. {RESTORE} Or use --model full.")
    manifest = read_manifest(weights)
    if verify:
        check_sha256(weights, manifest, RESTORE)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"Cannot read lite weights {weights}: {str(e).splitlines()[0]}. {RESTORE}") from None
    try:
        shape = LiteShape(**manifest.get("shape", {}))
    except TypeError as e:
        raise WeightsError(f"{weights.with_suffix('.json')} has an unknown lite shape ({e}). {RESTORE}") from None
    graph = LiteGraph(shape)
    state = {k: v.float() for k, v in state.items()}
    try:
        if "head.mlp.0.weight" in state:  # the first lite network (AdaIN only): it runs as v2 with FiLM off
            state = from_v1(state, shape)
        graph.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise WeightsError(f"{weights} does not fit the lite network ({str(e).splitlines()[0]}). {RESTORE}") from None
    check_finite(graph.state_dict(), weights)
    return graph.eval()


def starting_state(path: str | Path, shape: LiteShape) -> dict:
    """The state a training run of `shape` starts from, from a lite file of this or the first version
    (whose widths it keeps; the head grows to `shape`'s with the new rows inert)."""
    graph = load_lite(path)
    state = graph.state_dict()
    if graph.shape == shape:
        return state
    fresh = LiteGraph(shape).state_dict()
    out = {}
    for key, value in fresh.items():
        old = state[key]
        if old.shape == value.shape:
            out[key] = old
        else:  # a wider head: the old rows and columns, the new ones as initialised (FiLM: zero)
            inert = key in ("head.target.weight", "head.film.weight")  # new hidden units must not move the output
            grown = torch.zeros_like(value) if inert else value.clone()
            grown[tuple(slice(0, n) for n in old.shape)] = old
            out[key] = grown
    return out
