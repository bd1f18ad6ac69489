"""Where stylized frames go. Several sinks can run on one stream; the loop calls them in order.

Life cycle (all calls from one thread, the loop's sink thread):

    open(info) -> write(frame)* -> close()     normal end, and also Ctrl-C/SIGTERM: keep what was written
    open(info) -> write(frame)* -> abort()     an error: clean up (a file sink removes its partial file)

`frame.image` is the stylized BGR uint8 image, `frame.original` the input frame.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from streamer.frame import Frame, StreamInfo


class Sink(ABC):
    name: str = "sink"  # short, for logs and the HUD

    @abstractmethod
    def open(self, info: StreamInfo) -> None:
        """Prepare for frames of `info.width` x `info.height`; raise OutputError if that cannot work."""

    @abstractmethod
    def write(self, frame: Frame) -> None:
        """Take one frame. Called in stream order."""

    @abstractmethod
    def close(self) -> None:
        """Finish normally: flush, finalise and release. Safe to call twice."""

    def abort(self) -> None:
        """Finish after a failure; by default the same as close()."""
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
