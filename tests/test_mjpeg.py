"""MjpegSink with real HTTP clients on 127.0.0.1: the multipart stream, many clients, snapshot, errors."""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

import streamer.sinks.mjpeg as mjpeg
from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.sinks.mjpeg import MjpegSink

W, H = 64, 48
INFO = StreamInfo(W, H, 30.0, live=True, name="test")
BITS = 8


def make_image(i: int, w: int = W, h: int = H, noise: bool = False) -> np.ndarray:
    """A frame whose index (mod 256) is written as 8 black/white blocks along the top; a gradient below."""
    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8) if noise else np.empty((h, w, 3), np.uint8)
    if not noise:
        img[...] = ((np.arange(w)[None, :, None] * 3 + np.arange(h)[:, None, None] * 2
                     + np.array([0, 60, 120]) + i * 7) % 200).astype(np.uint8)
    band = h // 4
    for b in range(BITS):
        img[:band, b * w // BITS:(b + 1) * w // BITS] = 235 if (i >> b) & 1 else 15
    return img


def read_index(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    band = img[2:h // 4 - 2].astype(np.float32).mean(axis=(0, 2))
    return sum(1 << b for b in range(BITS)
               if band[b * w // BITS + 2:(b + 1) * w // BITS - 2].mean() > 128)


def frame(i: int, **kw) -> Frame:
    img = make_image(i, **kw)
    return Frame(i, None, i / 30, time.monotonic(), img, img)


class Part:
    """Reads one multipart part at a time from an open HTTP response."""

    def __init__(self, resp):
        self.resp = resp

    def next(self) -> bytes | None:
        """The next JPEG, or None at the closing boundary / end of stream."""
        line = self.resp.readline()
        while line in (b"\r\n", b"\n"):
            line = self.resp.readline()
        if not line or line.strip() == b"--frame--":
            return None
        assert line.strip() == b"--frame", line
        headers = {}
        while (line := self.resp.readline().strip()):
            k, v = line.decode().split(":", 1)
            headers[k.lower()] = v.strip()
        assert headers["content-type"] == "image/jpeg"
        data = self.resp.read(int(headers["content-length"]))
        assert self.resp.read(2) == b"\r\n"
        return data

    def image(self) -> np.ndarray | None:
        data = self.next()
        return None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture
def sink():
    s = MjpegSink(port=0, quality=90)
    s.open(INFO)
    yield s
    s.close()


def connect(url: str):
    resp = urllib.request.urlopen(url, timeout=10)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
    return resp


def wait_clients(sink: MjpegSink, n: int) -> None:
    deadline = time.monotonic() + 5
    while sink.clients < n:
        assert time.monotonic() < deadline, "clients did not connect"
        time.sleep(0.005)


def assert_same(decoded: np.ndarray, i: int) -> None:
    assert decoded.shape == (H, W, 3)
    assert read_index(decoded) == i
    assert np.abs(decoded.astype(int) - make_image(i)).mean() < 6  # JPEG at quality 90: close, not exact


def test_url_picks_a_free_port(sink):
    assert sink.port > 0
    assert sink.url == f"http://127.0.0.1:{sink.port}/stream"


def test_stream_delivers_written_frames_in_order(sink):
    with connect(sink.url) as resp:
        parts = Part(resp)
        wait_clients(sink, 1)
        for i in range(5):
            sink.write(frame(i))
            assert_same(parts.image(), i)  # each part is the frame written just before it


def test_two_clients_share_one_encode_per_frame(sink, monkeypatch):
    encodes = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: encodes.append(1) or real(*a, **k))
    with connect(sink.url) as r1, connect(f"http://127.0.0.1:{sink.port}/") as r2:
        p1, p2 = Part(r1), Part(r2)
        wait_clients(sink, 2)
        for i in range(3):
            sink.write(frame(i))
            assert_same(p1.image(), i)
            assert_same(p2.image(), i)
    assert len(encodes) == 3


def test_slow_client_skips_frames_instead_of_a_backlog(sink):
    n = 120  # 640x480 noise is ~300 KB per JPEG: far more than the socket buffers hold
    with connect(sink.url) as resp:
        parts = Part(resp)
        wait_clients(sink, 1)
        for i in range(n):  # the client reads nothing meanwhile
            sink.write(frame(i, w=640, h=480, noise=True))
        seen = []
        deadline = time.monotonic() + 20
        while not seen or seen[-1] != (n - 1) % 256:
            assert time.monotonic() < deadline
            seen.append(read_index(parts.image()))
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # in order, no repeats
    assert len(seen) < n / 2, f"the slow client got {len(seen)} of {n} frames: a backlog"


def test_snapshot_index_and_404(sink, monkeypatch):
    monkeypatch.setattr(mjpeg, "_SNAPSHOT_WAIT", 0.05)
    base = f"http://127.0.0.1:{sink.port}"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/snapshot.jpg", timeout=5)
    assert e.value.code == 503  # no frame yet
    sink.write(frame(3))
    sink.write(frame(4))
    with urllib.request.urlopen(base + "/snapshot.jpg", timeout=5) as r:
        assert r.headers["Content-Type"] == "image/jpeg"
        assert_same(cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR), 4)
    with urllib.request.urlopen(base + "/index.html", timeout=5) as r:
        assert b'<img src="/stream"' in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/nope", timeout=5)
    assert e.value.code == 404


def test_close_ends_client_streams_cleanly():
    s = MjpegSink(port=0)
    s.open(INFO)
    with connect(s.url) as resp:
        parts = Part(resp)
        wait_clients(s, 1)
        s.write(frame(1))
        assert parts.next() is not None
        t0 = time.monotonic()
        s.close()
        assert time.monotonic() - t0 < 2
        assert parts.next() is None           # the closing boundary
        assert resp.read() == b""             # then the end of the response
    with pytest.raises(OSError):              # and nobody listens any more
        socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
    s.close()                                 # twice is fine


def test_port_in_use_is_a_one_line_output_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OutputError) as e:
            MjpegSink(port=port).open(INFO)
    msg = str(e.value)
    assert f"Port {port} is in use" in msg and "\n" not in msg


def test_bad_settings_and_all_interfaces_warning(caplog):
    with pytest.raises(OutputError):
        MjpegSink(quality=0)
    with pytest.raises(OutputError):
        MjpegSink(port=70000)
    with pytest.raises(OutputError, match="not an address of this machine"):
        MjpegSink(host="203.0.113.7", port=0).open(INFO)
    s = MjpegSink(host="0.0.0.0", port=0)
    with caplog.at_level(logging.WARNING, logger="streamer.sinks.mjpeg"):
        s.open(INFO)
    try:
        assert any("all interfaces" in r.getMessage() for r in caplog.records)
        assert s.url.startswith("http://127.0.0.1:")
        s.write(frame(9))
        with urllib.request.urlopen(s.url.replace("/stream", "/snapshot.jpg"), timeout=5) as r:
            assert r.status == 200
    finally:
        s.close()


def test_opencv_reads_the_stream(sink):
    """What OBS/VLC do: FFmpeg's mpjpeg demuxer, here through cv2.VideoCapture."""
    if not cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        pytest.skip("this OpenCV build has no FFmpeg backend")
    stop = threading.Event()

    def feed():
        i = 0
        while not stop.is_set():
            sink.write(frame(i % 256))
            i += 1
            time.sleep(1 / 50)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        cap = cv2.VideoCapture(sink.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000,
                                                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000])
        assert cap.isOpened(), "cv2.VideoCapture could not open the MJPEG stream"
        got = []
        for _ in range(3):
            ok, img = cap.read()
            assert ok
            got.append(img)
        cap.release()
    finally:
        stop.set()
        feeder.join()
    for img in got:
        assert img.shape == (H, W, 3)
        i = read_index(img)
        assert np.abs(img.astype(int) - make_image(i)).mean() < 8
