"""The AdaIN decoder: a mirror of the encoder up to relu4_1.

Nearest-neighbour upsampling and reflection padding (both avoid checkerboard artefacts and
dead borders), no normalisation layers. The `nn.Sequential` layout is the one of the public
PyTorch AdaIN port, so its `decoder.pth` loads as it is.

Our own weights live in `engines/weights/decoder.safetensors` with a JSON manifest beside it
that records how they were trained and their sha256, which is checked on load.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from engines.errors import WeightsError
from engines.files import file_sha256

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_DECODER = WEIGHTS_DIR / "decoder.safetensors"


def build_decoder() -> nn.Sequential:
    def block(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
        return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)] + ([nn.ReLU()] if relu else [])

    up = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(
        *block(512, 256), up,
        *block(256, 256), *block(256, 256), *block(256, 256), *block(256, 128), up,
        *block(128, 128), *block(128, 64), up,
        *block(64, 64), *block(64, 3, relu=False),
    )


def manifest_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def read_manifest(weights: Path) -> dict:
    path = manifest_path(weights)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise WeightsError(f"Unreadable weights manifest {path}: {e}") from None


def load_sequential_state(path: Path, keep: Callable[[str], bool] = lambda k: True) -> dict[str, torch.Tensor]:
    """A flat state dict from .safetensors or a .pth/.pt state dict, never unpickling objects."""
    if not path.is_file():
        raise WeightsError(f"Weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower():  # not a pickle at all (text, random bytes)
            raise WeightsError(f"Cannot read weights {path}: not a .safetensors or PyTorch state dict file "
                               f"({str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
        raise WeightsError(f"{path} holds pickled objects, not only tensors; refusing to load it "
                           "(save a state_dict, or convert it to .safetensors)") from None
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file can fail in any of the parsers' ways
        reason = (str(e).splitlines() or [e.__class__.__name__])[0]
        raise WeightsError(f"Cannot read weights {path}: not a .safetensors or PyTorch state dict file "
                           f"({e.__class__.__name__}: {reason})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} is not a state dict of tensors (nn.Sequential layout expected)")
    return {k: v.float() for k, v in state.items() if keep(k)}


def load_decoder(path: str | Path | None = None, verify: bool = True) -> nn.Sequential:
    """The shipped decoder (default) or a given .safetensors / AdaIN-port `decoder.pth`."""
    weights = Path(path) if path is not None else DEFAULT_DECODER
    if not weights.is_file():
        if path is None:
            raise WeightsError(
                f"No trained decoder weights at {weights}. Train one with `stylestream train` "
                "or pass a decoder file (--decoder PATH)."
            )
        raise WeightsError(f"Decoder weights not found: {weights}")
    manifest = read_manifest(weights)
    if verify:
        check_sha256(weights, manifest, "Restore it (git checkout) or retrain.")
    decoder = build_decoder()
    try:
        decoder.load_state_dict(load_sequential_state(weights))
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise WeightsError(f"{weights} does not fit the AdaIN decoder ({first})") from None
    check_finite(decoder.state_dict(), weights)
    return decoder.eval()


def check_sha256(weights: Path, manifest: dict, what_to_do: str) -> None:
    """WeightsError when the manifest records a sha256 and the file's is another (corrupt or replaced)."""
    if manifest.get("sha256") and file_sha256(weights) != manifest["sha256"]:
        raise WeightsError(f"{weights} does not match the sha256 in {manifest_path(weights).name}: "
                           f"the file is corrupt or was replaced. {what_to_do}")


def check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    """WeightsError naming the first tensor that holds NaN or inf (it would make every output black)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise WeightsError(f"{path}: tensor {name} holds NaN or inf; the weights are corrupt (restore or "
                               f"retrain them)")


def random_decoder(seed: int = 0) -> nn.Sequential:
    """An untrained decoder (tests, and the starting point of training)."""
    gen = torch.Generator().manual_seed(seed)
    dec = build_decoder()
    with torch.no_grad():
        for m in dec.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * 9
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                m.bias.zero_()
    return dec.eval()
