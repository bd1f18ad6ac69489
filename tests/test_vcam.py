"""VirtualCameraSink: everything up to pyvirtualcam.Camera (the real "no device" path where there is no
v4l2loopback), and the frame preparation as a pure function."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.sinks.vcam import INSTALL, VirtualCameraSink, how_to_get_a_device, prepare_frame

INFO = StreamInfo(64, 48, 30.0, live=True)


def loopback_devices() -> list[str]:
    """/dev/videoN of v4l2loopback devices (Linux), from sysfs."""
    root = Path("/sys/devices/virtual/video4linux")
    return sorted(f"/dev/{p.name}" for p in root.glob("video*")) if root.is_dir() else []


def test_missing_pyvirtualcam_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvirtualcam", None)  # makes `import pyvirtualcam` fail
    with pytest.raises(OutputError) as e:
        VirtualCameraSink().open(INFO)
    assert INSTALL in str(e.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the v4l2loopback path is Linux only")
def test_no_loopback_device_says_how_to_get_one():
    pytest.importorskip("pyvirtualcam")
    if loopback_devices():
        pytest.skip(f"a v4l2loopback device exists here ({loopback_devices()}): no error to test")
    sink = VirtualCameraSink()
    with pytest.raises(OutputError) as e:
        sink.open(INFO)
    msg = str(e.value)
    assert "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=stylestream" in msg
    assert "No v4l2 loopback device" in msg  # pyvirtualcam's own reason is kept
    assert "\n" not in msg
    with pytest.raises(RuntimeError):
        sink.write(Frame(0, None, 0.0, time.monotonic(), np.zeros((48, 64, 3), np.uint8)))
    sink.close()  # nothing open: harmless


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="v4l2loopback device paths are Linux only")
def test_named_device_that_does_not_exist():
    pytest.importorskip("pyvirtualcam")
    with pytest.raises(OutputError, match="/dev/video63"):
        VirtualCameraSink(device="/dev/video63").open(INFO)


def test_unknown_backend_lists_the_known_ones():
    pytest.importorskip("pyvirtualcam")
    with pytest.raises(OutputError, match="Unknown virtual camera backend 'nope'; available: "):
        VirtualCameraSink(backend="nope").open(INFO)


def test_instructions_per_platform():
    assert "modprobe v4l2loopback" in how_to_get_a_device("linux")
    for platform in ("win32", "darwin"):
        assert "OBS" in how_to_get_a_device(platform) and "virtual camera" in how_to_get_a_device(platform)


def test_prepare_frame_keeps_a_fitting_frame():
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = prepare_frame(img, 64, 48)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out, img)


def test_prepare_frame_resizes_and_converts():
    left_red = np.zeros((96, 128, 3), np.uint8)
    left_red[:, :64] = (0, 0, 255)  # BGR red on the left half
    down = prepare_frame(left_red, 64, 48)
    assert down.shape == (48, 64, 3)
    assert tuple(down[24, 10]) == (0, 0, 255) and tuple(down[24, 54]) == (0, 0, 0)  # colour order kept
    up = prepare_frame(left_red[:, ::-1], 256, 192)   # a non-contiguous view, mirrored
    assert up.shape == (192, 256, 3) and up.flags.c_contiguous
    assert tuple(up[96, 250]) == (0, 0, 255)
    gray = prepare_frame(np.full((48, 64), 100, np.uint8), 64, 48)
    assert gray.shape == (48, 64, 3) and (gray == 100).all()
    bgra = prepare_frame(np.full((48, 64, 4), 50, np.uint8), 32, 24)
    assert bgra.shape == (24, 32, 3)
    floats = prepare_frame(np.full((48, 64, 3), 300.0), 64, 48)
    assert floats.dtype == np.uint8 and (floats == 255).all()


@pytest.mark.skipif(not loopback_devices(), reason="no v4l2loopback device on this machine")
def test_sends_frames_to_a_real_loopback_device():
    sink = VirtualCameraSink(device=loopback_devices()[0], fps=30)
    sink.open(INFO)
    try:
        for i in range(3):
            img = np.full((96, 128, 3), i * 40, np.uint8)  # another size: resized on the way
            sink.write(Frame(i, None, i / 30, time.monotonic(), img))
    finally:
        sink.close()
