"""Sources on real files made with PyAV, a real OpenCV capture, and real servers on 127.0.0.1 (HTTP, live MPEG-TS)."""

from __future__ import annotations

import functools
import logging
import socket
import subprocess
import sys
import threading
import time
from fractions import Fraction
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import InputError
from streamer.sources import open_source
from streamer.sources.camera import CameraSource
from streamer.sources.capture import LiveCaptureSource
from streamer.sources.image_folder import ImageFolderSource
from streamer.sources.paced import PacedSource
from streamer.sources.url import UrlSource, redact_url
from streamer.sources.video_file import VideoFileSource


def one_line_input_error(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert message and "\n" not in message
    return message


# -- video files ------------------------------------------------------------------------------------


def test_file_source_gives_every_frame_in_order_with_timestamps(make_video, frame_marker):
    path = make_video("clip.mp4", frames=30, fps=25, size=(128, 96))
    with VideoFileSource(path) as src:
        info = src.info
        frames = list(src)
    assert (info.width, info.height, info.fps, info.frame_count) == (128, 96, 25.0, 30)
    assert info.duration == pytest.approx(1.2, abs=0.01)
    assert info.path == path and not info.live and info.time_base is not None
    assert len(frames) == 30
    assert [f.index for f in frames] == list(range(30))
    assert [frame_marker(f.image) for f in frames] == list(range(30))
    step = round(1 / (25 * info.time_base))  # pts units per frame
    assert [f.pts for f in frames] == [i * step for i in range(30)]
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(30)])
    assert all(f.image.shape == (96, 128, 3) and f.image.dtype == np.uint8 for f in frames)


def test_file_source_restarts_when_iterated_again_and_stops_on_request(make_video, frame_marker):
    src = VideoFileSource(make_video(frames=12, audio=False))
    assert [frame_marker(f.image) for f in src] == list(range(12))
    again = iter(src)
    assert frame_marker(next(again).image) == 0
    src.stop()
    assert list(again) == []
    src.close()


def test_seek_jumps_and_marks_the_next_frame(make_video, frame_marker):
    src = VideoFileSource(make_video(frames=30, fps=25, audio=False))
    it = iter(src)
    first = [next(it) for _ in range(3)]
    assert not any(f.meta.get("seek") for f in first)
    src.seek(0.6)
    after = next(it)
    assert after.meta.get("seek") is True
    assert after.time == pytest.approx(0.6, abs=0.021)
    assert frame_marker(after.image) == 15
    following = next(it)
    assert "seek" not in following.meta and frame_marker(following.image) == 16
    src.close()


@pytest.mark.parametrize("name, kwargs", [("cut.mp4", {"faststart": True}), ("cut.mkv", {})])
def test_truncated_file_yields_the_frames_it_has_then_ends_with_a_warning(make_video, caplog, name, kwargs):
    path = make_video(name, frames=30, **kwargs)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="streamer.sources"):
        frames = list(VideoFileSource(path))
    assert 0 < len(frames) < 30
    assert "truncated" in caplog.text


@pytest.mark.parametrize("name, kwargs", [("cut.mp4", {"faststart": True}), ("cut.mkv", {})])
def test_truncated_file_in_strict_mode_is_an_input_error_after_the_frames_it_has(make_video, name, kwargs):
    path = make_video(name, frames=30, **kwargs)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames = []
    with pytest.raises(InputError, match="truncated or corrupt") as e:
        frames.extend(VideoFileSource(path, strict=True))  # what `convert` uses
    assert 0 < len(frames) < 30 and "\n" not in str(e.value)
    assert len(list(VideoFileSource(make_video("whole" + name[3:], frames=30, **kwargs), strict=True))) == 30


def test_truncated_mp4_without_its_index_is_an_input_error(make_video):
    path = make_video("noindex.mp4", frames=30)  # moov at the end: cut off with the second half
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "corrupt" in one_line_input_error(VideoFileSource, path)


def test_file_with_a_video_stream_but_no_decodable_frame_is_an_input_error(make_video):
    path = make_video("header_only.mp4", frames=30, audio=False, faststart=True)
    data = path.read_bytes()
    path.write_bytes(data[: data.index(b"mdat") + 8])  # index intact, no frame data
    assert "no video frame" in one_line_input_error(VideoFileSource, path)


def test_bad_inputs_are_one_line_input_errors(tmp_path, make_video):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    audio_only = make_video("sound.m4a", video=False, audio=True)
    one_line_input_error(VideoFileSource, empty)
    one_line_input_error(VideoFileSource, text)
    assert "no video stream" in one_line_input_error(VideoFileSource, audio_only)
    assert "not found" in one_line_input_error(VideoFileSource, tmp_path / "missing.mp4")
    one_line_input_error(VideoFileSource, tmp_path)


# -- image folders ----------------------------------------------------------------------------------


def test_image_folder_in_natural_order_resized_to_the_first(tmp_path, caplog):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in (1, 2, 10):  # natural order 1, 2, 10 (a plain sort gives 1, 10, 2)
        img = np.full((48, 64, 3), i * 20, np.uint8) if i != 2 else np.full((30, 40, 3), 40, np.uint8)
        cv2.imwrite(str(folder / f"frame{i}.png"), img)
    (folder / "frame5.png").write_bytes(b"not an image")
    (folder / "readme.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING, logger="streamer.sources"):
        src = ImageFolderSource(folder, fps=10)
        frames = list(src)
    assert (src.info.width, src.info.height, src.info.fps) == (64, 48, 10.0)
    assert src.info.time_base == Fraction(1, 10) and src.info.frame_count == 4
    assert [f.meta["file"] for f in frames] == ["frame1.png", "frame2.png", "frame10.png"]
    assert [int(f.image.mean()) for f in frames] == [20, 40, 200]
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    assert [f.pts for f in frames] == [0, 1, 2] and [f.time for f in frames] == pytest.approx([0, 0.1, 0.2])
    assert "frame5.png" in caplog.text


def test_image_folder_without_images_is_an_input_error(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert "No images" in one_line_input_error(ImageFolderSource, tmp_path)


# -- paced ("as a camera") ----------------------------------------------------------------------------


def test_paced_source_plays_in_real_time_and_loops(make_video, frame_marker):
    src = PacedSource(VideoFileSource(make_video(frames=10, fps=25, audio=False)), loop=True)
    assert src.info.live and src.info.frame_count is None
    frames = []
    start = time.monotonic()
    with src:
        for f in src:
            frames.append((f, time.monotonic() - start))
            if len(frames) == 25:
                break
    elapsed = frames[-1][1]
    assert 0.8 < elapsed < 2.5, elapsed  # 24 frame periods at 25 fps = 0.96 s, loosely bounded
    assert frames[12][1] > 0.35          # paced all along, not a burst at the end
    assert [f.index for f, _ in frames] == list(range(25))
    assert [frame_marker(f.image) for f, _ in frames] == [i % 10 for i in range(25)]
    assert [i for i, (f, _) in enumerate(frames) if f.meta.get("loop")] == [10, 20]
    times = [f.time for f, _ in frames]
    assert times == pytest.approx([i / 25 for i in range(25)], abs=1e-6)
    assert np.all(np.diff([f.pts for f, _ in frames]) > 0)


def test_paced_source_without_loop_ends(make_video):
    src = PacedSource(VideoFileSource(make_video(frames=5, fps=50, audio=False)), loop=False)
    assert len(list(src)) == 5


def test_paced_source_stop_interrupts_the_wait(make_video):
    src = PacedSource(VideoFileSource(make_video(frames=4, fps=1, audio=False)), loop=True)
    it = iter(src)
    next(it)
    threading.Timer(0.2, src.stop).start()
    start = time.monotonic()
    assert list(it) == []
    assert time.monotonic() - start < 0.9  # the next frame was due 1 s later


# -- live capture ---------------------------------------------------------------------------------------


def test_missing_camera_is_a_quick_input_error():
    start = time.monotonic()
    message = one_line_input_error(CameraSource, 99)
    assert "No camera at index 99" in message
    assert time.monotonic() - start < 5


def test_latest_wins_reader_gives_the_newest_frame_and_counts_drops(make_video, frame_marker):
    n = 40
    path = make_video("live.mp4", frames=n, size=(64, 48), audio=False)
    src = LiveCaptureSource(lambda: cv2.VideoCapture(str(path)), name="file as capture", missing="no file",
                            backoff=(0.01, 0.02))  # end of file = "camera lost": reopens, plays again
    assert src.info.live and (src.info.width, src.info.height) == (64, 48)
    seen = []
    with src:
        it = iter(src)
        next(it)
        for _ in range(6):
            time.sleep(0.05)  # a slow consumer: the reader goes on without it
            newest_before = src.frames_read - 1
            frame = next(it)
            assert frame.index >= newest_before  # nothing older than what was read before we asked
            assert frame_marker(frame.image) == frame.index % n  # the image belongs to its index
            seen.append(frame.index)
    assert src.dropped > 0
    assert np.all(np.diff(seen) > 1)  # stale frames were skipped, not queued
    assert src.reconnects > 0 and src.status == "closed"


def test_lost_capture_is_retried_with_backoff_and_status(make_video):
    path = make_video("short.mp4", frames=3, size=(64, 48), audio=False)
    # back for good: long enough that the reader (ahead of a slow consumer) does not lose it again
    back = make_video("back.mp4", frames=120, size=(64, 48), audio=False)
    calls = []

    def factory():
        calls.append(time.monotonic())
        # the first open works; then the "device" is gone for three attempts, then back
        if len(calls) == 1:
            return cv2.VideoCapture(str(path))
        return cv2.VideoCapture(str(back) if len(calls) >= 5 else str(path) + ".gone")

    src = LiveCaptureSource(factory, name="flaky", missing="gone", backoff=(0.02, 0.08))
    frames = []
    with src:
        for f in src:
            frames.append(f)
            if f.index >= 5:  # past the 3 frames of the first "connection"
                break
            if time.monotonic() - calls[0] > 5:
                break
        status_after = src.status
    assert frames[-1].index >= 5
    assert len(calls) >= 5 and status_after == "live"
    # attempts 2, 3, 4 waited 0.04, 0.08 and 0.08 s (doubling, capped): lower bounds hold under any load
    gaps = np.diff(calls[1:5])
    assert all(gap >= bound for gap, bound in zip(gaps, [0.035, 0.075, 0.075], strict=True)), gaps


def test_capture_that_never_comes_back_keeps_reconnecting_until_stopped(make_video):
    path = make_video("once.mp4", frames=2, size=(64, 48), audio=False)
    calls = []

    def factory():
        calls.append(1)
        return cv2.VideoCapture(str(path) if len(calls) == 1 else "/nonexistent/x.mp4")

    src = LiveCaptureSource(factory, name="lost", missing="gone", backoff=(0.01, 0.03))
    got = []
    consumer = threading.Thread(target=lambda: got.extend(src), daemon=True)
    src.open()
    consumer.start()
    deadline = time.monotonic() + 3
    while not src.status.startswith("reconnecting (attempt 3") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert src.status.startswith("reconnecting (attempt")
    assert consumer.is_alive()  # the stream did not end
    src.close()
    consumer.join(timeout=2)
    assert not consumer.is_alive()
    assert got and got[-1].index == 1  # the newest of the two frames there were


@pytest.fixture
def http_server(tmp_path):
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_url_source_reads_over_http(make_video, http_server, frame_marker):
    make_video("served.mp4", frames=20, audio=False, faststart=True)  # plain HTTP: no range requests
    src = UrlSource(f"{http_server}/served.mp4", timeout=5)
    assert src.info.live and (src.info.width, src.info.height) == (128, 96)
    with src:
        it = iter(src)
        frame = next(it)
    assert frame.image.shape == (96, 128, 3)
    assert 0 <= frame_marker(frame.image) < 20


# An MPEG-TS encoder serving one client on 127.0.0.1 (as `ffmpeg -f mpegts tcp://...?listen=1` would):
# frames drawn with the index `first`, `first + 1`, ..., paced at 25 fps.
_TCP_SERVER = """
import sys, time
sys.path.insert(0, sys.argv[4])
import av
from conftest import draw_frame
port, first, count = (int(a) for a in sys.argv[1:4])
print("listening", flush=True)
with av.open(f"tcp://127.0.0.1:{port}?listen=1", "w", format="mpegts") as out:
    st = out.add_stream("mpeg4", rate=25, options={"qscale": "2"})
    st.width, st.height, st.pix_fmt = 128, 96, "yuv420p"
    for i in range(first, first + count):
        out.mux(st.encode(av.VideoFrame.from_ndarray(draw_frame(i, 128, 96), format="bgr24")))
        time.sleep(0.04)
    out.mux(st.encode(None))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_tcp(port: int, first: int, count: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-c", _TCP_SERVER, str(port), str(first), str(count),
                               str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "listening"
    return server


def test_url_source_follows_a_live_tcp_stream_and_reconnects_when_the_encoder_restarts(frame_marker):
    port = _free_port()
    first = _serve_tcp(port, 0, 40)
    servers = [first]

    def restart_when_it_ends() -> None:  # an encoder restarting on the same port
        first.wait()
        servers.append(_serve_tcp(port, 100, 40))

    threading.Thread(target=restart_when_it_ends, daemon=True).start()
    try:
        for _ in range(50):  # the encoder is about to listen; a refused connection costs nothing
            try:
                src = UrlSource(f"tcp://127.0.0.1:{port}", timeout=5, backoff=(0.1, 0.4))
                break
            except InputError:
                time.sleep(0.1)
        else:
            pytest.fail("the encoder never accepted a connection")
        assert src.info.live and (src.info.width, src.info.height) == (128, 96)
        watchdog = threading.Timer(30, src.stop)  # a hung stream fails the test instead of hanging it
        watchdog.start()
        with src:
            marks, status = [], None
            for frame in src:
                marks.append(frame_marker(frame.image))
                if marks[-1] >= 100:
                    status = src.status
                    break
        watchdog.cancel()
        before = [m for m in marks if m < 40]
        assert len(before) >= 10 and before == sorted(before)  # live frames, in order (latest wins may skip)
        assert marks[-1] >= 100, marks  # the restarted encoder's frames
        assert src.reconnects >= 1 and status == "live"
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_url_that_cannot_be_opened_is_an_input_error_without_the_password(http_server):
    message = one_line_input_error(UrlSource, f"{http_server}/missing.mp4", timeout=2)
    assert "Cannot open stream" in message
    secret = one_line_input_error(UrlSource, "rtsp://user:hunter2@127.0.0.1:1/cam", timeout=1)
    assert "hunter2" not in secret and "user:***@127.0.0.1:1" in secret
    assert redact_url("http://a.example/x") == "http://a.example/x"


# -- open_source ------------------------------------------------------------------------------------


def test_open_source_picks_the_kind(tmp_path, make_video, http_server):
    video = make_video("v.mp4", frames=5, audio=False, faststart=True)
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert type(open_source(str(video), live=False)) is VideoFileSource
    assert type(open_source(str(folder), live=False, fps=5)) is ImageFolderSource
    live = open_source(str(video), live=True)
    assert type(live) is PacedSource and live.loop and live.info.live
    assert open_source(str(folder), live=True, loop=False).loop is False
    url = open_source(f"{http_server}/v.mp4", live=True)
    assert type(url) is UrlSource
    url.close()
    assert "No camera at index 99" in one_line_input_error(open_source, "99", live=True)
    assert "Input not found" in one_line_input_error(open_source, str(tmp_path / "nope.mp4"), live=False)
