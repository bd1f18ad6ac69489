"""WindowSink on a real X server (Xvfb) and without a display.

cv2 cannot inject key presses, so the keys are tested through LiveControls.handle_key (the same call the
window's key poll makes) and the window itself through cv2.getWindowProperty on the highgui thread.
Qt keeps the X connection it opened first for the life of the process, so there is one Xvfb per session
(the `xvfb_display` fixture in conftest.py).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from engines.errors import OutputError
from engines.images import load_image
from streamer.controls import LiveControls
from streamer.frame import Frame, StreamInfo
from streamer.sinks.display import NO_DISPLAY, x_display_reachable
from streamer.sinks.window import WindowSink, highgui_call

W, H = 160, 120  # Qt gives tiny windows a minimum size (64 x 48 shows as 68 x 51)
INFO = StreamInfo(W, H, 30.0, live=True, name="test")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display checks are Linux only")


def make_frame(i: int) -> Frame:
    rng = np.random.default_rng(i)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    original = np.full((H * 2, W * 2, 3), 200, np.uint8)  # a bigger input, as when the network downscales
    return Frame(i, None, i / 30, time.monotonic() - 0.04, image, original)


@pytest.fixture
def display(xvfb_display, monkeypatch):
    monkeypatch.setenv("DISPLAY", xvfb_display)
    return xvfb_display


def window_prop(title: str, prop: int) -> float:
    def get() -> float:
        try:
            return cv2.getWindowProperty(title, prop)
        except cv2.error:
            return -1.0
    return highgui_call(get)


def window_size(title: str) -> tuple[int, int]:
    return highgui_call(lambda: tuple(cv2.getWindowImageRect(title)[2:]))


def wait_for(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- without a display ------------------------------------------------------------------------------

@linux_only
def test_no_display_is_a_clear_output_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(OutputError) as e:
        WindowSink().open(INFO)
    assert str(e.value) == NO_DISPLAY


@linux_only
def test_unreachable_display_is_checked_before_qt_can_abort(monkeypatch):
    number = next(n for n in range(900, 1000) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    monkeypatch.setenv("DISPLAY", f":{number}")
    with pytest.raises(OutputError, match=f"run with --no-window.*DISPLAY=:{number}"):
        WindowSink().open(INFO)


def test_display_string_parsing():
    assert not x_display_reachable("not a display")
    assert not x_display_reachable(":x")
    assert not x_display_reachable("127.0.0.1:59.0", timeout=0.5)  # TCP 6059: nothing listens there


def test_write_before_open_raises():
    with pytest.raises(RuntimeError):
        WindowSink().write(make_frame(0))


def test_hud_lines_show_stream_state():
    controls = LiveControls(["udnie", "mondrian"], alpha=0.8, smoothing=True)
    info = {"backend": "torch cpu fp32", "source": "camera reconnecting"}
    sink = WindowSink(controls=controls, hud_info=lambda: dict(info))
    sink.stats.tick(time.monotonic() - 0.05)
    lines = sink.hud_lines()
    assert lines[0].endswith("ms") and "fps" in lines[0]
    assert "style udnie  alpha 0.8" in lines
    assert "torch cpu fp32  smoothing on" in lines
    assert "source: camera reconnecting" in lines
    assert "q quit" in lines[-1]  # the key help while nothing happened
    controls.handle_key(ord("n"))
    info["source"] = ""
    lines = sink.hud_lines()
    assert "style mondrian  alpha 0.8" in lines and not any(s.startswith("source") for s in lines)
    info["size"] = "426x240 of 640x360"  # the governor lowered the network's working size
    assert sink.hud_lines()[0].endswith("ms  at 426x240 of 640x360")


# -- on Xvfb ----------------------------------------------------------------------------------------

def test_window_shows_frames_from_the_loop_thread(display, tmp_path):
    controls = LiveControls(["udnie"])
    sink = WindowSink(title="stylestream-test-1", controls=controls, screenshot_dir=tmp_path / "shots")
    errors = []

    def sink_thread():  # the stream loop opens and writes on its own sink thread
        try:
            sink.open(INFO)
            for i in range(3):
                sink.write(make_frame(i))
            sink.sync()
        except BaseException as e:  # noqa: BLE001 - checked below
            errors.append(e)

    t = threading.Thread(target=sink_thread)
    t.start()
    t.join(30)
    assert not t.is_alive() and not errors, errors
    try:
        assert window_prop(sink.title, cv2.WND_PROP_VISIBLE) >= 1
        assert window_prop(sink.title, cv2.WND_PROP_AUTOSIZE) == 1
        assert sink.shown >= 1
        assert wait_for(lambda: window_size(sink.title) == (W, H)), window_size(sink.title)

        assert controls.handle_key(ord("s")) == "side-by-side on"
        sink.write(make_frame(3))
        sink.sync()
        assert wait_for(lambda: window_size(sink.title) == (2 * W, H))  # original (scaled) + stylized

        controls.handle_key(ord("s"))
        controls.handle_key(ord("h"))   # HUD off: the screenshot is the frame itself
        controls.handle_key(ord("c"))
        shot = make_frame(4)
        sink.write(shot)
        sink.sync()
        assert len(sink.screenshots) == 1 and sink.screenshots[0].parent == tmp_path / "shots"
        assert np.array_equal(load_image(sink.screenshots[0]), shot.image[..., ::-1])  # PNG of the BGR frame
        assert not controls.screenshot_requested
    finally:
        sink.close()
    assert window_prop(sink.title, cv2.WND_PROP_VISIBLE) < 1
    sink.close()  # twice is fine


def test_closing_the_window_quits_and_does_not_reopen_it(display):
    controls = LiveControls(["udnie"])
    sink = WindowSink(title="stylestream-test-2", controls=controls)
    sink.open(INFO)
    try:
        sink.write(make_frame(0))
        sink.sync()
        assert not controls.quit
        highgui_call(lambda: cv2.destroyWindow(sink.title))  # what the window manager's close button does
        assert wait_for(lambda: controls.quit, 3), "closing the window did not ask the stream to quit"
        assert sink.user_closed
        shown = sink.shown
        sink.write(make_frame(1))
        sink.sync()
        assert sink.shown == shown
        assert window_prop(sink.title, cv2.WND_PROP_VISIBLE) < 1
    finally:
        sink.close()


def test_a_second_run_from_another_thread_does_not_hang(display):
    """Qt deadlocks when a second thread uses highgui after the first ended; the highgui thread avoids it."""
    for run in range(2):
        sink = WindowSink(title=f"stylestream-test-run{run}")
        t = threading.Thread(target=lambda s=sink: (s.open(INFO), s.write(make_frame(0)), s.sync(), s.close()))
        t.start()
        t.join(15)
        assert not t.is_alive(), f"run {run} hung"
        assert sink.shown == 1
