"""The working size of a live stream: the network's input size, lowered when the machine cannot keep up.

`live`, `serve` and the virtual camera keep their output size (the sinks were opened at it) and hold the
source's frame rate by running the network smaller. The governor watches what each frame cost on the
busiest thread (the network's, or the host blending's beside it) and moves along a ladder of sizes:

- down, as soon as the median cost of the last frames is over the frame budget (1000 / fps), to the
  largest size whose cost, scaled by its pixel count, fits in `FIT` of the budget;
- up one rung, when the rung above would still fit in `HEADROOM` of the budget (scaled the same way)
  and the stream has stayed there long enough: `patience_s`, doubled each time the stream had to leave
  that rung (at most MAX_PATIENCE_S), so that the size does not swing between two rungs.

The cost grows with the pixel count but not quite in proportion (each frame has fixed work too), so the
prediction overestimates larger rungs (a step up is cautious) and underestimates smaller ones (a step down
may take a second step, after new measurements). `--size` fixes the size (`Governor(..., fixed=True)`).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque

from engines.images import MIN_SIDE

RUNG = 0.85          # each rung's shorter side is this much of the one above
FLOOR = 128          # the smallest shorter side it goes down to (faces stay recognisable at 128)
FIT = 0.85           # a step down aims at this share of the frame budget
SLOW = 1.0           # over this share of the budget (the median of the window), it steps down
HEADROOM = 0.70      # a step up needs the rung above to fit in this share
WINDOW = 12          # frames in the median
MAX_PATIENCE_S = 30.0  # the longest a rung that proved too slow waits before it is tried again
SETTLE = 4           # frames after a change before the new size is judged (the first ones cost more)


def ladder(width: int, height: int, floor: int = FLOOR) -> list[tuple[int, int]]:
    """(w, h) sizes from (width, height) down, the aspect kept, even sides, shorter side >= `floor`."""
    short = min(width, height)
    floor = max(MIN_SIDE, min(floor, short))
    sizes = [(width, height)]
    side = short * RUNG
    while side >= floor:
        k = side / short
        size = (max(2, round(width * k / 2) * 2), max(2, round(height * k / 2) * 2))
        if size != sizes[-1]:
            sizes.append(size)
        side *= RUNG
    return sizes


class Governor:
    """Picks the working size for the next frame from what the last frames cost.

    `observe(ms)` may be called from any thread (the network's and the blending's each report their own
    cost per frame); `size` is read by the thread that starts the next frame.
    """

    def __init__(self, out_size: tuple[int, int], fps: float, *, fixed: bool = False, floor: int = FLOOR,
                 patience_s: float = 2.0, clock=time.monotonic):
        self.out_size = out_size
        self.fps = fps
        self.fixed = fixed or not fps or fps <= 0
        self.sizes = ladder(*out_size, floor) if not self.fixed else [out_size]
        self.level = 0
        self.patience_s = patience_s
        self.clock = clock
        self.changes = 0
        self._lock = threading.Lock()
        self._costs: dict[str, deque[float]] = {}  # per thread, at the current size
        self._seen: dict[str, int] = {}
        self._fits_since: float | None = None
        self._too_slow: dict[int, float] = {}   # level -> patience after it proved too slow

    @property
    def size(self) -> tuple[int, int]:
        return self.sizes[self.level]

    @property
    def budget_ms(self) -> float:
        return 1000.0 / self.fps if self.fps else float("inf")

    @property
    def label(self) -> str:
        """The working size as '426x240' (the `--stats` line)."""
        return "{}x{}".format(*self.size)

    def describe(self) -> str:
        """For the HUD and the studio: '426x240 of 640x360' while lowered, '640x360' at full size."""
        if self.size == self.out_size:
            return self.label
        return "{} of {}x{}".format(self.label, *self.out_size)

    def observe(self, ms: float, lane: str = "network", size: tuple[int, int] | None = None) -> None:
        """What one frame cost (ms) on one thread (`lane`), made at `size` (None: the current size).
        Frames made at another size than the current one (started before a change) are not counted."""
        if self.fixed:
            return
        with self._lock:
            if size is not None and tuple(size) != self.size:
                return
            seen = self._seen[lane] = self._seen.get(lane, 0) + 1
            if seen <= SETTLE:
                return
            self._costs.setdefault(lane, deque(maxlen=WINDOW)).append(ms)
            ready = [statistics.median(c) for c in self._costs.values() if len(c) >= WINDOW // 2]
            if ready:
                self._decide(max(ready))  # the busiest thread sets the pace

    def _decide(self, cost: float) -> None:
        budget = self.budget_ms
        if cost > SLOW * budget and self.level + 1 < len(self.sizes):
            target = self.level + 1
            while target + 1 < len(self.sizes) and cost * self._ratio(target) > FIT * budget:
                target += 1
            self._too_slow[self.level] = min(MAX_PATIENCE_S, 2 * self._too_slow.get(self.level, self.patience_s))
            self._move(target)
        elif self.level > 0 and cost * self._ratio(self.level - 1) < HEADROOM * budget:
            now = self.clock()
            if self._fits_since is None:
                self._fits_since = now
            elif now - self._fits_since >= self._too_slow.get(self.level - 1, self.patience_s):
                self._move(self.level - 1)
        else:
            self._fits_since = None

    def _ratio(self, level: int) -> float:
        """Pixels at `level` over pixels now."""
        (w, h), (cw, ch) = self.sizes[level], self.size
        return (w * h) / (cw * ch)

    def _move(self, level: int) -> None:
        self.level = level
        self.changes += 1
        self._costs.clear()
        self._seen.clear()
        self._fits_since = None
