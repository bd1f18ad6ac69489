"""The "latest frame wins" policy, in one place: a holder of the newest item, which each newer one replaces.

A reader that is slower than the writer skips items instead of building up a backlog, so what it works on
is never staler than one item. Writers and readers may be threads or asyncio tasks, in any mix (a capture
thread feeding the stylizer, a sink thread feeding an aiohttp server, a WebRTC track feeding the engine).

- One consumer: `take` (or `take_async`) returns the newest item no take has returned yet; `dropped` counts
  the items replaced before any take got them.
- Several readers, each at its own pace (MJPEG viewers): `after(seq)` (or `after_async`) returns the newest
  item past the sequence number the reader saw last, with its own number.
- `close()` ends it: readers get what is left, then `Closed`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """The holder was closed and holds nothing newer for this reader."""


class Latest(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0                 # of the newest item; 0 before the first
        self._taken = 0               # the newest sequence number `take` has returned
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self.closed = False
        self.dropped = 0

    @property
    def seq(self) -> int:
        return self._seq

    def put(self, item: T) -> None:
        with self._cond:
            if self._seq > self._taken:
                self.dropped += 1  # nobody took the one before
            self._item, self._seq = item, self._seq + 1
            self._wake()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._wake()

    def peek(self) -> tuple[int, T] | None:
        """(sequence number, item) of the newest item without waiting; None before the first."""
        with self._cond:
            return (self._seq, self._item) if self._seq else None

    # -- waiting in a thread ------------------------------------------------------------------

    def after(self, seq: int, timeout: float | None = None) -> tuple[int, T] | None:
        """(sequence number, item) of the newest item past `seq`; None if none came within `timeout` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self.closed, timeout)
            return self._newer(seq)

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item no take has returned yet; None if none came within `timeout` s."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > self._taken or self.closed, timeout)
            return self._take_now()

    # -- waiting in an asyncio task -----------------------------------------------------------

    async def after_async(self, seq: int) -> tuple[int, T]:
        while True:
            with self._cond:
                found = self._newer(seq)
                if found is not None:
                    return found
                future = self._future()
            await future

    async def take_async(self) -> T:
        while True:
            with self._cond:
                item = self._take_now()
                if item is not None:
                    return item
                future = self._future()
            await future

    # -- under the lock -----------------------------------------------------------------------

    def _newer(self, seq: int) -> tuple[int, T] | None:
        if self._seq > seq:
            return self._seq, self._item
        if self.closed:
            raise Closed
        return None

    def _take_now(self) -> T | None:
        found = self._newer(self._taken)
        if found is None:
            return None
        self._taken = found[0]
        return found[1]

    def _future(self) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiters.append((loop, future))
        return future

    def _wake(self) -> None:
        self._cond.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():  # a reader that was cancelled meanwhile
        future.set_result(None)
