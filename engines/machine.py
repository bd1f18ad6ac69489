"""What machine this is: written beside every benchmark number, and what `auto` choices depend on."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni")


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) under which it has no bf16 kernels.
BELOW_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"})


def cpu_flags() -> list[str]:
    """The CPU flags that decide which kernels run (named beside every CPU timing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in SPEED_FLAGS if f in have]
    except OSError:
        pass
    return []


def cpu_class() -> str:
    """One line for result tables: the flags, and the oneDNN cap when one is set (which imitates an
    older class for torch and OpenVINO, not for onnxruntime's own kernels)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return " ".join(cpu_flags()) + (f" (ONEDNN_MAX_CPU_ISA={cap})" if cap else "")


def cpu_result_tag() -> str:
    """The CPU class in a result file's name: "native", or "avx2cap" under a oneDNN cap (the cap the
    benchmarks use to imitate the AVX2 class)."""
    return "avx2cap" if os.environ.get("ONEDNN_MAX_CPU_ISA") else "native"


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_has_native_bf16() -> bool:
    """True where the CPU does bf16 arithmetic in hardware (AVX512-BF16 or AMX): there the torch
    backend in bf16 is faster than the best fp32 backend at the same quality (docs/models.md)."""
    import torch

    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in BELOW_BF16:
        return False  # oneDNN is capped below its bf16 kernels: bf16 would be emulated
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        try:
            if getattr(torch.cpu, probe)():
                return True
        except Exception:  # noqa: BLE001 - a private probe that this torch lacks: no claim
            continue
    return False


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT = {"done": False}


def keep_freed_buffers() -> bool:
    """Ask glibc to keep freed large blocks (up to 32 MiB) for reuse instead of handing them back to
    the OS. A stream allocates frame-sized temporaries of the same sizes every frame; by default each
    one is a fresh mmap whose pages fault in again on first touch, which doubled the flow blend's
    time (docs/temporal.md). Once per process; False where the C library is not glibc."""
    if _KEPT["done"]:
        return True
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 256 << 20))
    _KEPT["done"] = ok
    return ok


def machine_info() -> dict:
    import torch

    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    for mod in ("onnxruntime", "openvino", "tensorrt", "cv2", "av"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: just not listed
            info[mod] = None
    return info


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to `n` for a block (process-wide), then put back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
