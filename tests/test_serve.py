"""`stylestream serve` without a browser: a real server (subprocess, loopback) driven over HTTP, WebSocket and
WebRTC by aiohttp and aiortc clients. The browser tests are in test_serve_browser.py."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="serve extra not installed: pip install -e '.[serve]'")
pytest.importorskip("aiortc", reason="serve extra not installed: pip install -e '.[serve]'")

from serve_util import ROOT, serve  # noqa: E402

from streamer.serve.client import StudioClient  # noqa: E402
from streamer.serve.security import exposure_warning, is_loopback  # noqa: E402


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.fixture(scope="module")
def server():
    with serve("--size", "90", "--max-sessions", "2", "--style", "mondrian") as url:
        yield url


def _base(url: str) -> str:
    return url.split("/?")[0]


def _token(url: str) -> str:
    return url.split("token=")[1]


def test_loopback_and_warning():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert exposure_warning("127.0.0.1") is None
    assert "--cert/--key" in exposure_warning("0.0.0.0")


@pytest.mark.slow
def test_every_http_request_needs_the_token(server):
    base, token = _base(server), _token(server)
    status, body, headers = _get(server)
    assert status == 200 and b"stylestream studio" in body
    cookie = headers["Set-Cookie"].split(";")[0]
    assert token in cookie and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    for path in ("/", "/static/studio.js", "/api/status", "/api/presets/mondrian.jpg"):
        assert _get(base + path)[0] == 403, path
        assert _get(base + path + "?token=wrong" + token[5:])[0] == 403, path
    # the page's own requests carry the cookie; scripts may use a header instead
    assert _get(base + "/static/studio.js", {"Cookie": cookie})[0] == 200
    assert _get(base + "/api/status", {"Authorization": f"token {token}"})[0] == 200
    status, jpeg, _ = _get(base + "/api/presets/mondrian.jpg", {"Cookie": cookie})
    assert status == 200 and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (108, 192, 3)


@pytest.mark.slow
def test_other_origins_are_refused(server):
    base = _base(server)
    assert _get(server, {"Origin": "http://evil.example"})[0] == 403
    assert _get(server, {"Origin": base})[0] == 200

    async def ws(origin):
        async with StudioClient(server, origin=origin):
            pass

    with pytest.raises(Exception, match="403"):
        asyncio.run(ws("http://evil.example"))
    asyncio.run(ws(base))


@pytest.mark.slow
def test_stylized_round_trip_uploads_and_limits(server):
    """Frames go through over WebRTC and come back stylized; uploads are validated; the session limit holds."""
    import av
    from aiortc import VideoStreamTrack

    from streamer.democlip import render_frame

    source = render_frame(1.0, 160, 90)

    class Still(VideoStreamTrack):
        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(source, format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    async def frames(track, n):
        return [(await asyncio.wait_for(track.recv(), 60)).to_ndarray(format="bgr24") for _ in range(n)]

    async def run():
        async with StudioClient(server) as a, StudioClient(server) as b:
            with pytest.raises(RuntimeError, match="full.*limit is 2"):
                async with StudioClient(server):
                    pass
            await a.ws.send_json({"type": "offer", "sdp": "v=0 nonsense", "sdp_type": "offer"})
            with pytest.raises(RuntimeError):  # a bad offer: a message; the tab can still connect afterwards
                await a._reply()
            received = await a.start(Still())
            await a.set(alpha=1.0, smooth=False)
            stylized = (await frames(received, 4))[-1]
            assert stylized.shape == source.shape
            assert np.abs(stylized.astype(float) - source).mean() > 20  # not the input passed through
            # a bad file: one clear message, the style unchanged
            status, reply = await a.upload(b"not an image at all", "fake.png", "image/png")
            assert status == 400 and reply["error"].startswith("Cannot read image fake.png")
            status, reply = await a.upload(b"#!/bin/sh\n", "run.sh", "text/x-sh")
            assert status == 400 and "not an image" in reply["error"]
            status, reply = await a.upload(b"\x89PNG" + bytes(11 * 2**20), "huge.png", "image/png")
            assert status == 413 and reply["error"].startswith("huge.png is over 10 MB")
            stripes = np.zeros((256, 256, 3), np.uint8)
            stripes[::16] = (0, 0, 255)
            status, reply = await a.upload(cv2.imencode(".png", stripes)[1].tobytes(), "red-lines.png", "image/png")
            assert status == 200 and reply["state"]["style"] == "upload:red-lines"
            assert reply["state"]["working_size"] == "160x90"  # the network's size, shown in the studio
            # frames made before the upload may still be queued on this side: the new style must show within 60
            change = 0.0
            for _ in range(60):
                change = np.abs((await frames(received, 1))[0].astype(float) - stylized).mean()
                if change > 10:
                    break
            assert change > 10
            # b never chose anything: still the server's default
            assert b.hello["state"]["style"] == "mondrian"

    asyncio.run(run())


@pytest.mark.slow
def test_survives_a_client_that_leaves_mid_negotiation(server):
    import av
    from aiortc import VideoStreamTrack

    class Grey(VideoStreamTrack):
        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(np.full((90, 160, 3), 128, np.uint8), format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    async def run():
        for _ in range(2):  # the offer is sent, then the tab is gone before the answer
            gone = StudioClient(server)
            await gone.connect()
            await gone.offer(Grey())
            await gone.close()
        await asyncio.sleep(1.0)
        status = await _status(server)
        assert status["sessions"] == []
        async with StudioClient(server) as c:
            track = await c.start(Grey())
            frame = await asyncio.wait_for(track.recv(), 60)
            assert frame.width == 160

    asyncio.run(run())


async def _status(url: str) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(_base(url) + "/api/status", params={"token": _token(url)}) as r:
            return await r.json()


@pytest.mark.slow
def test_server_source_and_mjpeg_for_obs(tmp_path):
    """A tab may watch the server's own source (here a video file played as a camera); its stylized stream is
    also a plain MJPEG URL (OBS media or browser source)."""
    import aiohttp
    from conftest import write_video

    clip = write_video(tmp_path / "clip.mp4", frames=20, fps=10, size=(160, 96), audio=False)

    async def run(url):
        async with StudioClient(url) as c:
            assert c.hello["server_source"].startswith("clip.mp4")
            track = await c.start(source="server")
            first = await asyncio.wait_for(track.recv(), 60)
            assert (first.width, first.height) == (160, 96)
            mjpeg = f"{_base(url)}/api/sessions/{c.hello['session']}/mjpeg"
            async with aiohttp.ClientSession() as http:
                async with http.get(mjpeg, params={"token": _token(url)}) as r:
                    assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
                    data = b""
                    while data.count(b"\xff\xd9") < 2:  # two whole JPEGs
                        data += await asyncio.wait_for(r.content.readany(), 60)
            jpeg = data[data.index(b"\xff\xd8"):data.index(b"\xff\xd9") + 2]
            assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (96, 160, 3)
        async with aiohttp.ClientSession() as http:  # the tab is gone: so is its feed
            async with http.get(mjpeg, params={"token": _token(url)}) as r:
                assert r.status == 404

    with serve("--size", "96", "--source", str(clip)) as url:
        asyncio.run(run(url))


@pytest.mark.slow
def test_https_with_cert_and_key(tmp_path):
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with serve("--size", "64", "--cert", str(cert), "--key", str(key)) as url:
        assert url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        with urllib.request.urlopen(url, context=ctx, timeout=30) as r:
            assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer.app.cli", "serve", *args], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), [
    (("--cert", "nowhere.pem"), "HTTPS needs both --cert FILE and --key FILE"),
    (("--cert", "nowhere.pem", "--key", "nowhere.key"), "Not found: nowhere.pem"),
    (("--style", "no-such-style"), "No style preset named 'no-such-style'"),
])
def test_bad_options_are_one_error_line(args, message):
    r = _cli("--port", "0", *args)
    assert r.returncode == 2, r.stderr
    assert "error:" in r.stderr and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_taken_port_is_one_error_line(server):
    port = _base(server).rsplit(":", 1)[1]
    r = _cli("--port", port)
    assert r.returncode == 2 and f"Cannot listen on 127.0.0.1:{port}" in r.stderr


def test_latency_benchmark_markers_and_matching():
    """benchmarks/serve_latency.py: a frame number survives lossy coding, noise reads as nothing, and each
    shown frame is matched with the latest drawing of its number (never one a wrap-around ago)."""
    import importlib.util

    from streamer.democlip import render_frame

    spec = importlib.util.spec_from_file_location("serve_latency", ROOT / "benchmarks/serve_latency.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    image = render_frame(2.0, 640, 360)
    bench.draw_marker(image, 173)
    lossy = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    assert bench.read_marker(lossy) == 173
    assert bench.read_marker(np.random.default_rng(0).integers(0, 255, (360, 640, 3), np.uint8)) is None
    assert bench.read_marker(render_frame(2.0, 640, 360)) is None
    sent = [(5, 0.0), (6, 0.1), (5, 8.6)]
    result = bench.summarize([(0.5, 5), (0.6, None), (0.7, 6), (8.0, 6), (9.0, 5)], sent)
    assert result["frames_timed"] == 3 and result["unreadable_markers"] == 1 and result["wrapped_markers"] == 1
    assert result["latency_ms_min"] == 400.0 and result["latency_ms_p50"] == 500.0
