"""What a running stream reports: --stats (rolling fps and latency, one JSON line per second on stdout, and
one at the end) and, for files, a progress bar on stderr."""

from __future__ import annotations

import json
import sys
import time
from collections import deque

from engines.progress import progress_bar
from streamer.frame import StreamInfo


class StatsPrinter:
    """Fed by the loop's sink thread (`tick` per frame written); `loop` is read for the counters
    (result.frames_out, result.dropped, stylize_ms, source.dropped)."""

    def __init__(self, enabled: bool, loop):
        self.enabled = enabled
        self.loop = loop
        self.window: deque[tuple[float, float]] = deque()
        self.last_print = time.monotonic()
        self.printed_frames = 0

    def tick(self, latency_ms: float) -> None:
        now = time.monotonic()
        self.window.append((now, latency_ms))
        while self.window and now - self.window[0][0] > 1.0:
            self.window.popleft()
        if self.enabled and now - self.last_print >= 1.0:
            self._print(now)

    def close(self) -> None:
        """The frames since the last line (so that a run shorter than a second prints one too)."""
        if self.enabled and self.loop.result.frames_out != self.printed_frames:
            self._print(time.monotonic())

    def _print(self, now: float) -> None:
        self.last_print = now
        self.printed_frames = self.loop.result.frames_out
        lat = sorted(v for _, v in self.window)
        ms = list(self.loop.stylize_ms)
        line = {
            "time": round(time.time(), 3),
            "frames": self.loop.result.frames_out,
            "fps": round(len(self.window) / 1.0, 2),
            "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
            "latency_ms_max": round(lat[-1], 1) if lat else None,
            "stylize_ms": round(sorted(ms)[len(ms) // 2], 1) if ms else None,
            "dropped": getattr(self.loop.source, "dropped", 0) + self.loop.result.dropped,
            "model": self.loop.step.engine.model,
        }
        if self.loop.governor is not None:  # live: the network's working size now
            line["working_size"] = self.loop.governor.label
        if self.loop.times is not None:  # ms per frame in each stage so far (streamer.timing)
            line["stages_ms"] = self.loop.times.summary(self.printed_frames)["ms_per_frame"]
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()


class FileProgress:
    """Frames, fps and time left for file conversions, on stderr (stdout is for --stats lines)."""

    def __init__(self, info: StreamInfo):
        self.bar = progress_bar("{task.fields[fps]} fps", stderr=True)
        self.start = time.monotonic()
        self.done = 0
        self.task = self.bar.add_task(info.name or "frames", total=info.frame_count, fps="-")
        self.bar.start()

    def advance(self) -> None:
        self.done += 1
        fps = self.done / max(1e-6, time.monotonic() - self.start)
        self.bar.update(self.task, advance=1, fps=f"{fps:.1f}")

    def close(self) -> None:
        self.bar.stop()
