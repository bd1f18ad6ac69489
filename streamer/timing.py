"""Where a stream's time goes, stage by stage: decode, upload, network, smoothing, download, blend,
encode.

Off unless asked (`--stats`, the bench's convert run): the stages run on up to four threads (decode on
the reader, blend on the smoother, encode on the sink thread, the rest on the main one), so each
thread's stages add up to its own busy time, and the slowest thread sets the pace. On a GPU the work is
asynchronous, so a timed run waits for the device at the end of each device stage (`sync`): the
breakdown is honest, but that run loses the overlap of CPU and GPU work and is a little slower than
an untimed one.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext

import torch

STAGES = ("decode", "upload", "network", "smoothing", "download", "blend", "upscale", "encode")
# the others run on the main thread; "blend" (flow blending on the host) and "upscale" (a live stream's
# working size back to its output size) on the stream loop's smoother thread, or on the caller's where
# the step is called whole
THREAD_OF = {"decode": "reader", "blend": "smoother", "upscale": "smoother", "encode": "sinks"}


class StageTimes:
    def __init__(self, sync_device: torch.device | None = None):
        self.sync_device = sync_device if sync_device is not None and sync_device.type == "cuda" else None
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.sync_device is not None and name not in THREAD_OF:  # a device stage on the main thread
                torch.cuda.synchronize(self.sync_device)
            self.add(name, time.perf_counter() - t0)

    def summary(self, frames: int) -> dict:
        """{stage: ms per frame}, in pipeline order, plus each thread's busy ms per frame."""
        n = max(frames, 1)
        with self._lock:
            ms = {s: round(self.seconds[s] * 1000 / n, 3) for s in STAGES if s in self.seconds}
        threads: dict[str, float] = {}
        for s, v in ms.items():
            threads[THREAD_OF.get(s, "main")] = round(threads.get(THREAD_OF.get(s, "main"), 0.0) + v, 3)
        return {"ms_per_frame": ms, "thread_ms_per_frame": threads, "synchronised": self.sync_device is not None}


def stage(times: StageTimes | None, name: str):
    """times.stage(name), or nothing when timing is off."""
    return times.stage(name) if times is not None else nullcontext()
