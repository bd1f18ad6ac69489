"""Helpers for the `stylestream serve` tests: a real server in a subprocess, and a fake-camera clip."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from conftest import stop_process

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serve(*args: str, timeout: float = 120) -> Iterator[str]:
    """`stylestream serve --port 0 ARGS` on loopback (CPU, the full model unless ARGS say otherwise: the tests'
    thresholds were set with it); yields the URL it printed, stops it afterwards."""
    model = [] if "--model" in args else ["--model", "full"]
    cmd = [sys.executable, "-m", "streamer.app.cli", "serve", "--port", "0", "--device", "cpu", *model, *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    drain.start()
    try:
        line = _readline(proc, timeout)
        if not re.match(r"https?://127\.0\.0\.1:\d+/\?token=", line):
            proc.kill()
            drain.join(5)
            raise AssertionError(f"serve printed {line!r}; stderr:\n{''.join(stderr)}")
        yield line.strip()
        assert proc.poll() is None, f"the server died; stderr:\n{''.join(stderr)}"
    finally:
        stop_process(proc, timeout=20)


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not out:
        proc.kill()
        raise AssertionError(f"serve printed no URL within {timeout} s")
    return out[0]


def write_y4m(path: Path, frames: int = 30, width: int = 320, height: int = 180, fps: int = 15) -> Path:
    """A y4m of the generated demo clip (what Chromium's fake camera plays, looping)."""
    from streamer.democlip import render_frame

    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(render_frame(i / fps, width, height), cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def halves(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A side-by-side frame -> (original, stylized)."""
    w = image.shape[1] // 2
    return image[:, :w], image[:, w:2 * w]


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())
