"""Peak memory over a block of work, for the speed benchmark: the CUDA allocator's peak, or on a CPU the
process's peak resident set (VmHWM from /proc/self/status after resetting it; no psutil needed)."""

from __future__ import annotations

import torch


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class MemoryProbe:
    """Peak memory over a block: the CUDA allocator's peak, or the process's peak resident set on the CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "cuda_max_allocated" if device.type == "cuda" else "process_peak_rss"
        self.exact = True
        self.growth_mb: float | None = None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                self.exact = False  # VmHWM then includes earlier peaks: an upper bound
            self.rss0 = _proc_status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            hwm = _proc_status_kib("VmHWM")
            self.peak_mb = None if hwm is None else hwm / 1024
            if hwm is not None and self.rss0 is not None:
                self.growth_mb = max(0, hwm - self.rss0) / 1024
        return False
