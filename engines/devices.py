"""Which torch device a name means: the one place "auto", "cpu", "cuda" and "cuda:N" are resolved."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engines.errors import BackendUnavailable, ConfigError


def resolve_device(device: str = "auto", *, kinds: Sequence[str] | None = None, auto_cuda: bool | None = None,
                   who: str = "", hint: str = "use --device cpu", check: bool = True) -> torch.device:
    """`device` as a torch.device.

    "auto" is CUDA when `auto_cuda` (default: torch sees a GPU) and CUDA is allowed, else the first of
    `kinds` (default: any kind torch knows, CPU for "auto"). A name torch does not know is a ConfigError;
    with `check`, a kind outside `kinds`, or CUDA without a GPU, is BackendUnavailable, its message
    naming `who` (e.g. "TensorRT") and ending in `hint`.
    """
    if device == "auto":
        cuda = torch.cuda.is_available() if auto_cuda is None else auto_cuda
        device = "cuda" if cuda and (kinds is None or "cuda" in kinds) else (kinds[0] if kinds else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"Unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if not check:
        return dev
    if kinds is not None and dev.type not in kinds:
        where = " or ".join(k.upper() for k in kinds)
        raise BackendUnavailable(f"{who or 'This backend'} runs on {where} devices only, not {device!r}; {hint}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"CUDA was asked for{f' ({who})' if who else ''} but torch sees no NVIDIA GPU; "
                                 f"{hint}")
    return dev
