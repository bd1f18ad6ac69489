"""Holding a live stream's frame rate: the governor's ladder and decisions, the edge-aware upscale, and a
real `live` run whose source is faster than the machine."""

from __future__ import annotations

import json
import signal

import cv2
import numpy as np
import pytest
from conftest import error_lines, stylestream_popen
from test_live import connect, free_port, read_part

from streamer.upscale import guided_upscale
from streamer.working_size import FLOOR, SETTLE, WINDOW, Governor, ladder


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def feed(gov: Governor, ms_at_full: float, frames: int, clock: Clock, fps: float = 25.0) -> None:
    """Frames whose cost grows with the pixel count: `ms_at_full` at the output size."""
    full = gov.out_size[0] * gov.out_size[1]
    for _ in range(frames):
        w, h = gov.size
        gov.observe(ms_at_full * w * h / full, "network", (w, h))
        clock.t += 1 / fps


def test_the_ladder_keeps_the_aspect_and_even_sides_down_to_the_floor():
    sizes = ladder(640, 360)
    assert sizes[0] == (640, 360)
    assert all(w % 2 == 0 and h % 2 == 0 for w, h in sizes)
    assert all(abs(w / h - 16 / 9) < 0.05 for w, h in sizes)
    assert min(h for _, h in sizes) >= FLOOR and min(h for _, h in sizes) < FLOOR / 0.85
    assert [h for _, h in sizes] == sorted((h for _, h in sizes), reverse=True)
    assert ladder(160, 90) == [(160, 90)]  # already under the floor: nothing lower


def test_a_slow_machine_lowers_the_size_until_the_frame_fits():
    clock = Clock()
    gov = Governor((640, 360), 25.0, clock=clock)  # 40 ms a frame
    feed(gov, 80.0, 200, clock)                     # twice the budget at full size
    w, h = gov.size
    assert (w, h) != (640, 360)
    assert 80.0 * w * h / (640 * 360) <= 40.0       # what it settled on fits the budget
    assert "of 640x360" in gov.describe()


def test_headroom_brings_the_size_back_up_only_after_a_while():
    clock = Clock()
    gov = Governor((640, 360), 25.0, clock=clock, patience_s=2.0)
    feed(gov, 80.0, 120, clock)
    low = gov.level
    assert low > 0
    feed(gov, 10.0, SETTLE + WINDOW, clock)         # the machine got faster (another program ended)
    assert gov.level == low                         # not at once
    feed(gov, 10.0, 400, clock)
    assert gov.level == 0 and gov.describe() == "640x360"


def test_a_fast_machine_keeps_the_full_size():
    clock = Clock()
    gov = Governor((640, 360), 25.0, clock=clock)
    feed(gov, 20.0, 300, clock)
    assert gov.level == 0 and gov.changes == 0


def test_a_fixed_size_never_moves_and_stale_frames_do_not_count():
    clock = Clock()
    fixed = Governor((640, 360), 25.0, fixed=True, clock=clock)
    feed(fixed, 500.0, 100, clock)
    assert fixed.size == (640, 360)
    gov = Governor((640, 360), 25.0, clock=clock)
    for _ in range(100):  # frames reported at a size it is not at (started before a change)
        gov.observe(500.0, "host", (320, 180))
    assert gov.level == 0


def test_the_busiest_thread_sets_the_pace():
    clock = Clock()
    gov = Governor((640, 360), 25.0, clock=clock)
    for _ in range(60):
        gov.observe(10.0, "network", gov.size)   # the network has time to spare
        gov.observe(60.0, "host", gov.size)      # but the blending beside it has not
        clock.t += 0.04
    assert gov.level > 0


def edge_image(width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), 40, np.uint8)
    cv2.circle(img, (width // 2, height // 2), height // 3, (230, 200, 180), -1)
    img[:, width * 3 // 4:] = (20, 220, 60)
    return img


def test_the_upscale_follows_the_input_edges_where_the_painting_does():
    guide = edge_image(640, 360)
    small = cv2.resize(guide, (256, 144), interpolation=cv2.INTER_AREA)  # a "painting" that follows the photo
    guided = guided_upscale(small, guide)
    bilinear = cv2.resize(small, (640, 360), interpolation=cv2.INTER_LINEAR)
    assert guided.shape == guide.shape
    err = lambda a: np.abs(a.astype(np.float32) - guide).mean()  # noqa: E731
    assert err(guided) < 0.8 * err(bilinear)


def test_the_upscale_adds_nothing_where_the_painting_ignores_the_input():
    guide = edge_image(640, 360)
    flat = np.full((144, 256, 3), (90, 120, 150), np.uint8)
    out = guided_upscale(flat, guide)
    assert np.abs(out.astype(int) - (90, 120, 150)).max() <= 1
    assert guided_upscale(guide, guide) is guide  # already at the output size


@pytest.mark.usefixtures("cache")
def test_live_lowers_the_working_size_to_hold_a_rate_the_machine_cannot_and_keeps_its_output_size(make_video):
    clip = make_video("clip.mp4", frames=60, fps=25, size=(640, 360))
    port = free_port()
    # 240 fps is more than a CPU gives the lite network at 640x360: the governor must step down
    proc = stylestream_popen("live", "--source", clip, "--mjpeg", port, "--no-window", "--model", "lite",
                             "--fps", "240", "--stats")
    try:
        resp = connect(port, proc)
        frames = []
        for _ in range(150):
            frames.append(read_part(resp))
        resp.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert not error_lines(err)
    assert all(f.shape == (360, 640, 3) for f in frames)  # the sinks' size never changes
    stats_sizes = {json.loads(line).get("working_size") for line in out.splitlines()}
    assert any(s and s != "640x360" for s in stats_sizes), stats_sizes
