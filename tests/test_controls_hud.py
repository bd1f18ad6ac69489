"""LiveControls (hotkeys, clamping, thread safety) and the HUD helpers (box, side-by-side, rolling stats)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from streamer.controls import ESC, LiveControls
from streamer.side_by_side import side_by_side
from streamer.sinks.hud import HudStats, draw_hud

STYLES = ["starry-night", "the-scream", "udnie"]


def key(ch: str) -> int:
    return ord(ch)


def test_style_keys_cycle_both_ways():
    c = LiveControls(STYLES)
    assert (c.style_index, c.style_name) == (0, "starry-night")
    assert c.handle_key(key("n")) == "style the-scream (2/3)"
    assert c.handle_key(key("]")) == "style udnie (3/3)"
    assert c.handle_key(key("n")) == "style starry-night (1/3)"  # wraps
    assert c.handle_key(key("p")) == "style udnie (3/3)"         # wraps back
    assert c.handle_key(key("[")) == "style the-scream (2/3)"
    assert c.style_name == "the-scream"
    assert c.handle_key(key("3")) == "style udnie (3/3)"
    assert c.handle_key(key("9")) is None and c.style_index == 2  # no ninth style: nothing changes


def test_alpha_steps_and_clamps():
    c = LiveControls(STYLES, alpha=0.75)
    assert c.handle_key(key("-")) == "alpha 0.7"
    assert c.alpha == pytest.approx(0.65)
    for _ in range(20):
        c.handle_key(key("-"))
    assert c.alpha == 0.0
    for _ in range(10):
        c.handle_key(key("+"))
    assert c.alpha == 1.0          # exactly: rounding keeps ten 0.1 steps from drifting
    assert c.handle_key(key("=")) == "alpha 1.0"
    assert c.alpha == 1.0
    assert LiveControls(STYLES, alpha=7).alpha == 1.0


def test_toggles_screenshot_and_quit():
    c = LiveControls(STYLES, smoothing=True)
    assert c.handle_key(key("t")) == "smoothing off" and c.smoothing is False
    assert c.handle_key(key("t")) == "smoothing on" and c.smoothing is True
    assert c.handle_key(key("s")) == "side-by-side on" and c.side_by_side is True
    assert c.handle_key(key("h")) == "HUD off" and c.hud is False
    assert not c.take_screenshot_request()
    assert c.handle_key(key("c")) == "screenshot"
    assert c.screenshot_requested
    assert c.take_screenshot_request() is True
    assert c.take_screenshot_request() is False  # consumed once
    assert not c.quit
    assert c.handle_key(ESC) == "quit" and c.quit
    c2 = LiveControls(STYLES)
    assert c2.handle_key(key("q")) == "quit" and c2.quit


def test_unknown_and_no_key_change_nothing():
    c = LiveControls(STYLES)
    before = c.snapshot()
    for k in (-1, 0, key("x"), key("Q"), 0x1000012, 65361):  # no key, NUL, unmapped, arrow codes
        assert c.handle_key(k) is None
    assert c.snapshot() == before


def test_no_styles_is_harmless():
    c = LiveControls([])
    assert c.style_name == ""
    assert c.handle_key(key("n")) == "no styles"
    assert c.handle_key(key("1")) is None


def test_concurrent_changes_are_not_lost():
    c = LiveControls([str(i) for i in range(7)])
    n_threads, n_steps = 4, 500

    def spin():
        for _ in range(n_steps):
            c.next_style()
            c.toggle_side_by_side()

    threads = [threading.Thread(target=spin) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.style_index == (n_threads * n_steps) % 7
    assert c.side_by_side is False  # an even number of toggles


# -- HUD -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fill", [0, 255])
def test_draw_hud_box_is_readable_and_input_untouched(fill):
    img = np.full((240, 320, 3), fill, np.uint8)
    keep = img.copy()
    out = draw_hud(img, ["30.0 fps  latency 40 ms", "style udnie"])
    assert np.array_equal(img, keep)              # drawn on a copy: other sinks share the frame
    assert out.shape == img.shape and out.dtype == np.uint8
    changed = np.any(out != img, axis=2)
    ys, xs = np.nonzero(changed)
    assert xs.min() < 20 and ys.min() < 20         # top left
    assert xs.max() < 250 and ys.max() < 80        # a box, not the whole frame
    assert not changed[-5:, -5:].any()             # bottom right untouched
    box = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(int)
    # both light text and a dark background inside the box, on white and on black frames
    assert (box.min(axis=2) > 200).sum() > 20
    assert (box.max(axis=2) < 110).sum() > 20


def test_draw_hud_scales_with_image():
    small = draw_hud(np.zeros((240, 320, 3), np.uint8), ["style udnie"])
    big = draw_hud(np.zeros((960, 1280, 3), np.uint8), ["style udnie"])

    def text_height(img):
        rows = np.nonzero((img.max(axis=2) > 200).any(axis=1))[0]
        return rows.max() - rows.min()

    assert text_height(big) > 3 * text_height(small) > 0


def test_draw_hud_tiny_image_and_no_lines():
    tiny = np.full((8, 10, 3), 128, np.uint8)
    out = draw_hud(tiny, ["a very long line that does not fit anywhere at all"])
    assert out.shape == tiny.shape
    assert np.array_equal(draw_hud(tiny, []), tiny)


def test_side_by_side_resizes_original_to_stylized_height():
    original = np.zeros((200, 300, 3), np.uint8)
    original[:, :150] = (255, 0, 0)
    stylized = np.full((100, 120, 3), 77, np.uint8)
    out = side_by_side(original, stylized)
    assert out.shape == (100, 150 + 120, 3)
    assert np.array_equal(out[:, 150:], stylized)
    assert tuple(out[50, 10]) == (255, 0, 0) and tuple(out[50, 140]) == (0, 0, 0)
    assert side_by_side(None, stylized) is stylized


def test_hud_stats_fps_and_latency():
    s = HudStats(window=1.0)
    assert s.fps == 0.0 and s.latency_ms == 0.0
    t = 100.0
    for i in range(31):                          # 30 intervals of 1/30 s, each frame 50 ms old
        now = t + i / 30
        s.tick(captured=now - 0.05, now=now)
    assert s.fps == pytest.approx(30.0, rel=0.05)
    assert s.latency_ms == pytest.approx(50.0, abs=0.5)
    s.tick(captured=t + 2.5 - 0.2, now=t + 2.5)   # a long pause: the old frames leave the window
    assert s.latency_ms == pytest.approx(200.0, abs=0.5)
    assert s.fps == 0.0
    assert "fps" in s.line() and "ms" in s.line()
