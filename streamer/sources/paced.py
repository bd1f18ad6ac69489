"""A file source played "as a camera": in real time, looping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Self

from streamer.frame import Frame
from streamer.sources import Source


class PacedSource(Source):
    """Plays a file source in real time (sleeping to its clock) and, with `loop`, forever: a camera stand-in.

    Frame.index keeps increasing across loops, pts/time too; meta["loop"] = True marks the first frame of
    each new loop. If the consumer or the decoder falls behind by more than `max_lag` seconds, the clock
    jumps forward instead of delivering a burst of late frames.
    """

    def __init__(self, source: Source, loop: bool = True, max_lag: float = 0.5):
        super().__init__()
        self.source = source
        self.loop = loop
        self.max_lag = max_lag
        self.loops = 0
        inner = source.info
        self.info = replace(inner, live=True, name=f"{inner.name} (as a camera{', looping' if loop else ''})",
                            frame_count=None if loop else inner.frame_count,
                            duration=None if loop else inner.duration)
        self.status = "playing"

    def open(self) -> Self:
        self.source.open()
        return self

    def close(self) -> None:
        super().close()
        self.source.close()

    def __iter__(self) -> Iterator[Frame]:
        tb = self.info.time_base
        period = 1.0 / self.info.fps
        index, offset = 0, 0.0
        clock: float | None = None  # monotonic time of presentation time 0
        while not self.stopped:
            first_time = last_time = None
            for f in self.source:
                if self.stopped:
                    return
                if first_time is None:
                    first_time = f.time
                last_time = f.time
                t = offset + (f.time - first_time)
                now = time.monotonic()
                if clock is None:
                    clock = now - t
                wait = clock + t - now
                if wait < -self.max_lag:
                    clock -= wait  # fell behind: resynchronise rather than burst
                elif wait > 0 and self._stop.wait(wait):
                    return
                meta = dict(f.meta)
                if self.loops and f.time == first_time:
                    meta["loop"] = True
                yield Frame(index=index, pts=round(t / tb) if tb else None, time=t, captured=time.monotonic(),
                            image=f.image, meta=meta)
                index += 1
            if first_time is None or not self.loop:
                return  # nothing to loop over, or a single play
            offset += (last_time - first_time) + period
            self.loops += 1
            self.status = f"loop {self.loops + 1}"
