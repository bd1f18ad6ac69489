"""One progress bar for a whole cluster conversion, and `--stats` JSON lines with per-worker fps.

Counts come from the ProgressBoard (what workers report while they work) and from finished units
(what they returned). A unit run again after its worker died counts from its new attempt only.
"""

from __future__ import annotations

import json
import sys
import time

from engines.progress import progress_bar


class ClusterProgress:
    def __init__(self, total: int, stats: bool, bar: bool = True):
        self.total = total
        self.stats = stats
        self.start = self.last_print = time.monotonic()
        self.last_frames: dict[str, int] = {}
        self.current: dict[str, str] = {}          # unit -> its latest attempt id
        self.finished: dict[str, tuple[str, int]] = {}  # attempt id -> (worker, frames) from the result
        self.bar = self._bar() if bar else None

    def _bar(self):
        bar = progress_bar("{task.fields[fps]} fps", "{task.fields[workers]}", stderr=True)
        self.task = bar.add_task("ray", total=self.total, fps="-", workers="")
        bar.start()
        return bar

    def attempt(self, unit: str, attempt: str) -> None:
        """`unit` now runs as `attempt`: what an earlier attempt wrote no longer counts."""
        self.current[unit] = attempt

    def finish(self, attempt: str, worker: str, frames: int) -> None:
        self.finished[attempt] = (worker, frames)

    def per_worker(self, board: dict[str, tuple[str, int]]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.current.values():
            worker, frames = self.finished.get(attempt) or board.get(attempt) or ("", 0)
            if worker:
                counts[worker] = counts.get(worker, 0) + frames
        return counts

    def update(self, board: dict[str, tuple[str, int]], final: bool = False) -> None:
        counts = self.per_worker(board)
        done = sum(counts.values())
        now = time.monotonic()
        fps = done / max(1e-6, now - self.start)
        if self.bar is not None:
            self.bar.update(self.task, completed=done, fps=f"{fps:.1f}",
                            workers=" ".join(f"{w}:{n}" for w, n in sorted(counts.items())))
        if self.stats and (final or now - self.last_print >= 1.0):
            self._print(now, done, counts)

    def _print(self, now: float, done: int, counts: dict[str, int]) -> None:
        dt = max(1e-6, now - self.last_print)
        workers = {w: {"frames": n, "fps": round(max(0, n - self.last_frames.get(w, 0)) / dt, 2)}
                   for w, n in sorted(counts.items())}
        line = {"time": round(time.time(), 3), "frames": done, "total": self.total,
                "fps": round(sum(v["fps"] for v in workers.values()), 2), "workers": workers}
        self.last_print, self.last_frames = now, counts
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
