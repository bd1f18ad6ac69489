"""Shared fixtures: small real video/audio files written with PyAV, and a private X server.

`make_video(path, frames=30, fps=25, size=(128, 96), audio=True)` writes H.264 (+ a 440 Hz sine AAC
track) and returns the path. Every frame carries its index as 8 binary blocks along the top edge (robust to
lossy coding and resizing), so tests can check order after a round trip: `frame_marker(image) -> index`.
`xvfb_display` is the DISPLAY of an Xvfb started once per session (skips without Xvfb).

PyAV is imported inside the functions that use it: OpenCV must load first (see streamer/__init__.py).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2  # noqa: F401 - before any PyAV import in the tests: conftest is imported first
import numpy as np
import pytest

MARKER_BITS = 8      # indices wrap after 2**8 frames

# `auto` on a CPU measures the backends once per machine (engines.backends.calibrate); the suite uses
# the fixed order instead, so that every module's private cache does not pay for a calibration and the
# choice does not depend on the machine's load. tests/test_select.py turns it on to test it.
os.environ.setdefault("STYLESTREAM_CALIBRATE", "off")


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """A stream built on a CPU non-torch engine sets torch to one thread (streamer.pipeline.build_engine);
    in one test process that would carry over to every later test."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def frame_marker(image: np.ndarray) -> int:
    """The index (mod 256) a `draw_frame` frame was drawn with, read back from its (decoded) image."""
    h, w = image.shape[:2]
    band = image[: max(2, h // 8)].astype(np.float32).mean(axis=(0, 2))
    bits = [band[int((b + 0.25) * w / MARKER_BITS): int((b + 0.75) * w / MARKER_BITS)].mean() > 128
            for b in range(MARKER_BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def draw_frame(index: int, width: int, height: int) -> np.ndarray:
    """A BGR test frame: a moving gradient under a band of 8 black/white blocks holding the index."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 2 + index * 4) % 200
    img[..., 1] = (y * 2 + index * 3) % 200
    img[..., 2] = ((x + y) + index * 5) % 200
    band = max(2, height // 8)
    for b in range(MARKER_BITS):
        on = (index % (1 << MARKER_BITS)) >> b & 1
        img[:band, b * width // MARKER_BITS: (b + 1) * width // MARKER_BITS] = 230 if on else 20
    return img


def write_video(path: Path, frames: int = 30, fps: float = 25, size: tuple[int, int] = (128, 96),
                audio: bool = True, video: bool = True, codec: str = "libx264",
                audio_codec: str = "aac", sample_rate: int = 48000, faststart: bool = False,
                gop: int | None = None) -> Path:
    """Write a small test clip; `frames / fps` seconds of audio when `audio`; a keyframe every `gop` frames."""
    import av

    path = Path(path)
    width, height = size
    rate = Fraction(fps).limit_denominator(1001)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        vs = None
        if video:
            vs = out.add_stream(codec, rate=rate)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"crf": "18", "preset": "ultrafast"} if codec in ("libx264", "libx265") else {}
            if gop:
                vs.options = {**vs.options, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        aus = None
        if audio:
            aus = out.add_stream(audio_codec, rate=sample_rate)
            aus.layout = "stereo"
        out.start_encoding()  # writes the header even when no packet follows (a zero-frame file)
        if vs is not None:
            for i in range(frames):
                vf = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="bgr24")
                vf.pts = i
                vf.time_base = 1 / rate
                out.mux(vs.encode(vf))
            out.mux(vs.encode(None))
        if aus is not None:
            _write_sine(out, aus, seconds=frames / fps, sample_rate=sample_rate)
    return path


def _write_sine(out, stream, seconds: float, sample_rate: int) -> None:
    import av

    total = int(round(seconds * sample_rate))
    chunk = 1024
    fmt = "s16" if stream.codec_context.name.startswith("pcm_s16") else "fltp"
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / sample_rate).astype(np.float32)
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)
        if fmt == "s16":  # packed: 1 x (n * channels)
            data = np.repeat((wave * 32767).astype(np.int16), 2)[None, :]
        else:
            data = np.stack([wave, wave]).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


@pytest.fixture
def make_video(tmp_path) -> Callable[..., Path]:
    """`make_video(name_or_path, **write_video options)`; a bare name goes into tmp_path."""

    def make(path: str | Path = "clip.mp4", **kwargs) -> Path:
        p = Path(path)
        return write_video(p if p.is_absolute() else tmp_path / p, **kwargs)

    return make


@pytest.fixture(name="frame_marker")
def frame_marker_fixture() -> Callable[[np.ndarray], int]:
    """`frame_marker(image) -> index` (mod 256) of a frame drawn by `draw_frame` / `make_video`."""
    return frame_marker


@pytest.fixture(name="draw_frame")
def draw_frame_fixture() -> Callable[[int, int, int], np.ndarray]:
    """`draw_frame(index, width, height) -> BGR uint8` test pattern carrying its index."""
    return draw_frame


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """The suite's own cache (ONNX exports, calibrations, style codes): never the user's ~/.cache, and
    nothing carried over from an earlier run."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLESTREAM_CACHE", str(tmp_path_factory.mktemp("session-cache")))
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private ONNX/engine cache (STYLESTREAM_CACHE) per test module, so tests never touch ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("STYLESTREAM_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def xvfb_display():
    """A private Xvfb on a display number it picks itself (-displayfd); skips where there is none."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Xvfb tests are Linux only")
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    r, w = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(w)
    try:  # Xvfb writes the number, then a newline: closing the pipe before that kills it (EPIPE)
        text, deadline = b"", time.monotonic() + 10
        while not text.endswith(b"\n") and select.select([r], [], [], max(0.0, deadline - time.monotonic()))[0]:
            chunk = os.read(r, 32)
            if not chunk:
                break
            text += chunk
        number = text.decode().strip()
    finally:
        os.close(r)
    if not number.isdigit():
        proc.kill()
        err = proc.communicate(timeout=5)[1].decode(errors="replace").strip().splitlines()
        pytest.skip(f"Xvfb did not start: {err[-1] if err else 'no display number within 10 s'}")
    yield f":{number}"
    stop_process(proc, timeout=5)


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within `timeout` seconds; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the command line ---------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "streamer.app.cli"]


def stylestream(*args, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """`stylestream ARGS` in a subprocess, as a user runs it; output as text."""
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def stylestream_popen(*args, **kwargs) -> subprocess.Popen:
    """`stylestream ARGS` started in a subprocess (stdout and stderr piped, text)."""
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


@pytest.fixture
def run_cli(monkeypatch, capsys) -> Callable[..., tuple[int, str, str]]:
    """`run_cli(*args) -> (exit code, stdout, stderr)`: `stylestream ARGS` in this process (no start-up cost)."""
    from streamer.app import cli

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["stylestream", *map(str, args)])
        capsys.readouterr()
        try:
            cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def error_lines(stderr: str) -> list[str]:
    """The CLI's error lines ("error: ..."): a user error is exactly one, and never a traceback."""
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]
