"""The one signal guard: while a block runs, Ctrl-C (SIGINT) and SIGTERM call a handler instead of their
default (main thread only: Python runs signal handlers there; elsewhere the guard does nothing).

The stream loop's handler asks the loop to stop (a second signal stops it at once); the cluster scheduler's
raises KeyboardInterrupt for both, so that SIGTERM unwinds the way Ctrl-C does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class on_stop_signals:  # noqa: N801 - used as a `with` block, like contextlib's helpers
    """SIGINT/SIGTERM call `handler(signum)` while the block runs; `signum` is the last that came."""

    def __init__(self, handler: Callable[[int], None]):
        self.handler = handler
        self.signum: int | None = None
        self.previous: dict = {}

    def _handle(self, signum: int, _frame) -> None:
        self.signum = signum
        self.handler(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        self.previous.clear()


def raise_keyboard_interrupt(signum: int) -> None:
    """A handler for on_stop_signals: SIGTERM ends the block as Ctrl-C does."""
    raise KeyboardInterrupt
