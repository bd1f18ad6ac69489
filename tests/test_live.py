"""`stylestream live` end to end on the CPU with a file played as a camera: MJPEG read by a real HTTP client on
loopback, the preview window on Xvfb, and the errors a user meets (no camera, no output, no display, no
virtual camera device). Webcams, v4l2loopback and RTSP servers are not here: their code is tested to the
OpenCV / pyvirtualcam boundary in test_sources.py and test_vcam.py.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import error_lines, stylestream, stylestream_popen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int, proc, timeout: float = 120) -> http.client.HTTPResponse:
    """GET /stream once the server is up (the engine loads first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/stream")
            return conn.getresponse()
        except ConnectionRefusedError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no MJPEG server on port {port}: {proc.communicate()[1]}") from None
            time.sleep(0.2)


def read_part(resp: http.client.HTTPResponse) -> np.ndarray:
    """One part of a multipart/x-mixed-replace body: boundary, headers, JPEG."""
    line = resp.readline()
    while line in (b"\r\n", b"\n"):
        line = resp.readline()
    assert line.strip() == b"--frame", line
    headers = {}
    while (line := resp.readline().strip()):
        key, _, value = line.decode().partition(":")
        headers[key.lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    data = resp.read(int(headers["content-length"]))
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_a_file_played_as_a_camera_is_served_as_mjpeg_on_loopback(make_video):
    clip = make_video("clip.mp4", frames=50, fps=25, size=(64, 48))
    port = free_port()
    proc = stylestream_popen("live", "--source", clip, "--mjpeg", port, "--no-window", "--size", "0", "--no-smooth",
                             "--stats")
    try:
        resp = connect(port, proc)
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        frames = [read_part(resp) for _ in range(3)]
        resp.close()
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends a live stream normally
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(f is not None and f.shape == (48, 64, 3) for f in frames)
    assert proc.returncode == 0, err
    assert not error_lines(err)
    stats = [json.loads(line) for line in out.splitlines()]
    assert stats and stats[-1]["frames"] >= 3 and "dropped" in stats[-1]


def test_the_preview_window_shows_a_file_to_its_end_and_records_it(make_video, xvfb_display, tmp_path):
    clip = make_video("clip.mp4", frames=25, fps=25, size=(64, 48))
    record = tmp_path / "recorded.mp4"
    proc = stylestream("live", "--source", clip, "--no-loop", "--size", "0", "--no-smooth", "--record", record,
                       env={**os.environ, "DISPLAY": xvfb_display})
    assert proc.returncode == 0, proc.stderr
    assert "preview window open" in proc.stderr and not error_lines(proc.stderr)
    cap = cv2.VideoCapture(str(record))
    try:
        assert cap.read()[0]  # a real video of what the window showed (live: frames may be dropped)
    finally:
        cap.release()


@pytest.mark.skipif(Path("/dev/video7").exists(), reason="this machine has a camera at index 7")
def test_a_missing_camera_is_a_one_line_error():
    proc = stylestream("live", "--source", "7", "--no-window", "--mjpeg", "0")
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "No camera at index 7" in line


def test_live_without_any_output_or_display_is_a_one_line_error(make_video, run_cli, monkeypatch):
    clip = make_video("clip.mp4", frames=5, size=(64, 48))
    code, _, err = run_cli("live", "--source", clip, "--no-window")
    assert code == 2 and "live needs an output" in error_lines(err)[0]
    monkeypatch.delenv("DISPLAY", raising=False)
    code, _, err = run_cli("live", "--source", clip)
    assert code == 2 and "--no-window" in error_lines(err)[0]


def test_a_virtual_camera_without_a_device_says_how_to_get_one(make_video, run_cli):
    clip = make_video("clip.mp4", frames=5, size=(64, 48))
    code, _, err = run_cli("live", "--source", clip, "--no-loop", "--no-window", "--vcam", "--size", "0",
                           "--no-smooth")
    if code == 0:
        pytest.skip("this machine has a virtual camera device")
    (line,) = error_lines(err)
    assert code == 2
    assert "pip install" in line or "v4l2loopback" in line or "OBS" in line
