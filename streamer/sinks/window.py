"""The preview window (OpenCV highgui): the stylized frame, a HUD, and the hotkeys of LiveControls.

Threading: every highgui call in the process goes through one long-lived thread, `highgui`. Qt, which
opencv-python uses on Linux, binds its GUI to the first thread that touches it: a call from any other
thread after that one has ended deadlocks (measured: a second `stylestream live` in one process hung).
Owning that thread here also means:
- `open()`, `write()` and `close()` may be called from any thread (the loop calls them from its sink
  thread); `write()` never waits for the screen: it hands over the newest frame (latest wins), so a slow
  display (X over SSH) costs preview frames, not throughput of the other sinks;
- the window keeps answering keys and the close button while no frames come (camera reconnecting).
macOS wants its GUI on the main thread, which a stream loop's sink thread is not: use --mjpeg there.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.errors import OutputError
from engines.images import save_image
from streamer.controls import HELP, LiveControls
from streamer.frame import Frame, StreamInfo
from streamer.side_by_side import side_by_side
from streamer.sinks import Sink
from streamer.sinks.display import NO_DISPLAY, check_display
from streamer.sinks.hud import HudStats, draw_hud

log = logging.getLogger(__name__)

_WINDOW_FLAGS = cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL  # follows the frame size (side-by-side too)
_MESSAGE_SECONDS = 2.0  # how long the last hotkey's effect stays in the HUD
_IDLE_POLL = 0.02       # seconds between key/close polls while no frame comes
_CALL_TIMEOUT = 10.0


def default_screenshot_dir() -> Path:
    pictures = Path.home() / "Pictures"
    return pictures / "stylestream" if pictures.is_dir() else Path.cwd()


class _Highgui:
    """The one thread that calls highgui in this process, started on the first window."""

    def __init__(self) -> None:
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.windows: list[WindowSink] = []  # open windows, polled for keys and closing (this thread only)
        self.thread = threading.Thread(target=self._run, name="highgui", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Any], timeout: float = _CALL_TIMEOUT) -> Any:
        """Run `fn` on the highgui thread and return its result (its exception is raised here)."""
        if threading.current_thread() is self.thread:
            return fn()
        fut: Future = Future()
        self.tasks.put((fn, fut))
        try:
            return fut.result(timeout)
        except FutureTimeout:
            raise OutputError("The preview window stopped responding: run with --no-window") from None

    def post(self, fn: Callable[[], None]) -> None:
        self.tasks.put((fn, None))

    def _run(self) -> None:
        while True:
            try:  # with no window open, sleep on the queue: no highgui call, no CPU
                task = self.tasks.get(timeout=_IDLE_POLL if self.windows else None)
            except queue.Empty:
                task = None
            while task is not None:  # everything queued, then one poll
                self._do(*task)
                try:
                    task = self.tasks.get_nowait()
                except queue.Empty:
                    task = None
            if self.windows:
                self._poll()

    @staticmethod
    def _do(fn: Callable[[], Any], fut: Future | None) -> None:
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller, or logged for posted work
            if fut is not None:
                fut.set_exception(e)
            else:
                log.error("preview window: %s", e)
        else:
            if fut is not None:
                fut.set_result(result)

    def _poll(self) -> None:
        key = cv2.waitKey(1)  # also lets the toolkit paint and handle events
        fed: set[int] = set()
        for window in list(self.windows):
            if key >= 0 and id(window.controls) not in fed:  # one key, one change, however many windows
                fed.add(id(window.controls))
                window._key(key)
            if not window._visible():
                log.info("preview window closed: stopping")
                self.windows.remove(window)
                window._user_closed = True
                window.controls.request_quit()


_gui: _Highgui | None = None
_gui_lock = threading.Lock()


def highgui_call(fn: Callable[[], Any], timeout: float = _CALL_TIMEOUT) -> Any:
    """Run `fn` (highgui calls) on the process's highgui thread; for tests and tools."""
    global _gui
    with _gui_lock:
        if _gui is None:
            _gui = _Highgui()
    return _gui.call(fn, timeout)


class WindowSink(Sink):
    """Shows each frame in a window; keys go to `controls`; closing the window asks the stream to quit.

    `hud_info()` returns what the HUD shows beside fps and latency: style, alpha, backend, smoothing,
    source (its status, e.g. "camera reconnecting") and size (the network's working size, while the
    stream runs it lower than the output); missing keys come from `controls`. It is called on
    the highgui thread, so it must be thread-safe (LiveControls is).
    """

    name = "window"

    def __init__(self, title: str = "stylestream", controls: LiveControls | None = None,
                 hud_info: Callable[[], dict] | None = None, screenshot_dir: str | Path | None = None):
        self.title = title
        self.controls = controls if controls is not None else LiveControls([])
        self.hud_info = hud_info
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir is not None else default_screenshot_dir()
        self.stats = HudStats()
        self.screenshots: list[Path] = []
        self.shown = 0                       # frames that reached the screen
        self._lock = threading.Lock()
        self._pending: Frame | None = None   # newest frame not yet shown
        self._open = False
        self._user_closed = False
        self._error: BaseException | None = None
        self._message = ("", 0.0)

    @property
    def user_closed(self) -> bool:
        return self._user_closed

    def open(self, info: StreamInfo) -> None:
        if self._open:
            return
        check_display()
        blank = np.zeros((max(info.height, 2), max(info.width, 2), 3), np.uint8)

        def create() -> None:
            try:
                cv2.namedWindow(self.title, _WINDOW_FLAGS)
                cv2.imshow(self.title, blank)
                cv2.waitKey(1)
            except cv2.error as e:  # e.g. opencv-python-headless: no GUI compiled in
                raise OutputError(f"{NO_DISPLAY} ({_last_line(e)})") from None
            assert _gui is not None
            _gui.windows.append(self)

        highgui_call(create)
        self._open, self._user_closed, self._error = True, False, None
        log.info("preview window open; keys: %s", HELP)

    def write(self, frame: Frame) -> None:
        """Hand over `frame` for display and return at once (any thread)."""
        if not self._open:
            raise RuntimeError("WindowSink.write() before open()")
        if self._error is not None:
            raise self._error
        if self._user_closed:
            return  # the user closed the window; showing again would reopen it
        with self._lock:
            notify = self._pending is None
            self._pending = frame
        if notify and _gui is not None:
            _gui.post(self._show)

    def sync(self, timeout: float = _CALL_TIMEOUT) -> None:
        """Wait until the frames written so far are on screen (tests; a screenshot before quitting)."""
        if self._open:
            highgui_call(lambda: None, timeout)

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        with self._lock:
            self._pending = None

        def destroy() -> None:
            if self in _gui.windows:
                _gui.windows.remove(self)
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the toolkit process the destroy event
            except cv2.error:
                pass  # already gone (closed with the mouse)

        highgui_call(destroy)

    def hud_lines(self, state: dict | None = None) -> list[str]:
        state = state if state is not None else self.controls.snapshot()
        info = {**state, **(self.hud_info() if self.hud_info else {})}
        smoothing = "on" if info.get("smoothing") else "off"
        stats = self.stats.line() + (f"  at {info['size']}" if info.get("size") else "")
        lines = [stats,
                 f"style {info.get('style') or '-'}  alpha {float(info.get('alpha', 1.0)):.1f}",
                 f"{info.get('backend') or 'backend ?'}  smoothing {smoothing}"]
        if info.get("source"):
            lines.append(f"source: {info['source']}")
        text, until = self._message
        lines.append(text if text and time.monotonic() < until else HELP)
        return lines

    # -- on the highgui thread ----------------------------------------------------------------------

    def _show(self) -> None:
        with self._lock:
            frame, self._pending = self._pending, None
        if frame is None or self._user_closed or not self._open:
            return
        try:
            self.stats.tick(frame.captured)
            state = self.controls.snapshot()
            view = side_by_side(frame.original, frame.image) if state["side_by_side"] else frame.image
            if self.controls.take_screenshot_request():
                self._screenshot(view, frame)
            cv2.imshow(self.title, draw_hud(view, self.hud_lines(state)) if state["hud"] else view)
            self.shown += 1
        except Exception as e:  # noqa: BLE001 - raised on the next write(), on the stream's thread
            self._error = e if isinstance(e, OutputError) else OutputError(f"Preview window failed: {e}")

    def _key(self, key: int) -> None:
        change = self.controls.handle_key(key)
        if change:
            log.info("key %r: %s", chr(key), change)
            self._message = (change, time.monotonic() + _MESSAGE_SECONDS)

    def _visible(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:  # Qt: the window is gone
            return False

    def _screenshot(self, view: np.ndarray, frame: Frame) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.screenshot_dir / f"stylestream-{stamp}-{frame.index:06d}.png"
        try:
            save_image(cv2.cvtColor(view, cv2.COLOR_BGR2RGB), path)
        except OutputError as e:  # a failed screenshot must not stop a live stream
            log.error("screenshot failed: %s", e)
            self._message = ("screenshot failed", time.monotonic() + _MESSAGE_SECONDS)
            return
        self.screenshots.append(path)
        log.info("screenshot saved: %s", path)
        self._message = (f"saved {path.name}", time.monotonic() + _MESSAGE_SECONDS)


def _last_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else e.__class__.__name__
