"""Training checkpoints and the shipped weights file, all safetensors (nothing is ever unpickled).

A checkpoint is one file: the decoder's parameters (`decoder.<name>`), Adam's moments
(`adam.<i>.exp_avg`, `adam.<i>.exp_avg_sq`, `adam.<i>.step`), the data generator's state (`rng`), and
JSON metadata (step, options, recent losses). It is written to a temporary file and renamed into
place, so a run killed mid-write keeps the previous checkpoint.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from engines.decoder import manifest_path
from engines.errors import WeightsError
from engines.files import file_sha256


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(path: Path, decoder: nn.Module, optimizer: torch.optim.Optimizer,
                    gen: torch.Generator, step: int, info: dict) -> None:
    tensors = {f"decoder.{k}": v.float() for k, v in decoder.state_dict().items()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, p in enumerate(params):
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"adam.{i}.{key}"] = torch.as_tensor(value).float().reshape(-1) if key == "step" else value
    tensors["rng"] = gen.get_state()
    _atomic_save(tensors, path, {"step": str(step), "info": json.dumps(info)})


def load_checkpoint(path: Path, decoder: nn.Module, optimizer: torch.optim.Optimizer | None,
                    gen: torch.Generator | None) -> tuple[int, dict]:
    """Restore what save_checkpoint wrote -> (step, info)."""
    if not path.is_file():
        raise WeightsError(f"No checkpoint to resume from at {path}. Start without --resume.")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"Cannot read checkpoint {path}: {e}") from None
    state = {k.removeprefix("decoder."): v for k, v in tensors.items() if k.startswith("decoder.")}
    try:
        decoder.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path} does not fit the decoder: {str(e).splitlines()[0]}") from None
    if optimizer is not None:
        saved = {}
        for i in range(len(optimizer.state_dict()["param_groups"][0]["params"])):
            if f"adam.{i}.exp_avg" in tensors:
                saved[i] = {"step": tensors[f"adam.{i}.step"].reshape(()),
                            "exp_avg": tensors[f"adam.{i}.exp_avg"],
                            "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"]}
        # load_state_dict moves the moments to each parameter's device (and `step` where fused needs it).
        optimizer.load_state_dict({"state": saved, "param_groups": optimizer.state_dict()["param_groups"]})
    if gen is not None and "rng" in tensors:
        gen.set_state(tensors["rng"])
    return int(meta.get("step", 0)), json.loads(meta.get("info", "{}"))


def export_weights(decoder: nn.Module, path: Path, manifest: dict, dtype: torch.dtype = torch.float16) -> dict:
    """The decoder as shipped: safetensors (fp16 by default) + a JSON manifest with its sha256."""
    path = Path(path)
    tensors = {k: v.to(dtype) for k, v in decoder.state_dict().items()}
    _atomic_save(tensors, path, {"format": manifest.get("format", "stylestream-decoder"),
                                 "dtype": str(dtype).removeprefix("torch.")})
    manifest = {
        **manifest,
        "file": path.name,
        "dtype": str(dtype).removeprefix("torch."),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "sha256": file_sha256(path),
    }
    manifest_path(path).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
