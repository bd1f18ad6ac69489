"""A built-in clip for `stylestream demo` and the tests: made by code, so nothing is downloaded.

A small landscape with parallax (sky, sun, three ranges of hills, a lake with ripples), a ball that
bounces through it and a boat that sails across, and a stereo audio track (a short tune), so a
conversion shows style, motion, occlusion and audio passthrough.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def _hills(width: int, phase: float, base: float, amp: float, freqs: tuple[float, ...], seed: int) -> np.ndarray:
    """A ridge line; x in pixels of a 384 px wide frame, so every size shows the same landscape."""
    x = np.arange(width, dtype=np.float32) * (384 / width) + phase
    rng = np.random.default_rng(seed)
    y = np.full(width, base, np.float32)
    for f in freqs:
        y += amp / (1 + f * 20) * np.sin(x * f + rng.uniform(0, 6.28))
    return y


def render_frame(t: float, width: int = 384, height: int = 216) -> np.ndarray:
    """One frame at time `t` seconds, H x W x 3 uint8 BGR."""
    h, w = height, width
    sky = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = ((1 - sky) * np.array([235, 170, 90], np.float32) + sky * np.array([250, 225, 200], np.float32))
    img = np.repeat(img, w, axis=1)
    sun = (int(w * 0.75), int(h * 0.25))
    cv2.circle(img, sun, int(h * 0.11), (120, 220, 255), -1, cv2.LINE_AA)
    cv2.circle(img, sun, int(h * 0.08), (170, 245, 255), -1, cv2.LINE_AA)
    rows = np.arange(h, dtype=np.float32)[:, None]
    layers = [  # (speed px/s, base height, amplitude, colour BGR, seed): far to near, faster when nearer
        (8, 0.52, 0.25, (150, 130, 110), 1),
        (20, 0.62, 0.2, (80, 120, 70), 2),
        (45, 0.74, 0.15, (40, 90, 40), 3),
    ]
    for speed, base, amp, colour, seed in layers:
        ridge = _hills(w, speed * t, base * h, amp * h, (0.01, 0.023, 0.05, 0.11), seed)
        mask = rows >= ridge[None, :]
        shade = np.clip(1.0 - (rows - ridge[None, :]) / (0.6 * h), 0.55, 1.0)[..., None]
        img = np.where(mask[..., None], np.array(colour, np.float32) * shade, img)
    lake_top = int(h * 0.84)
    ripple = 6 * np.sin(np.arange(w)[None, :] * 0.15 + rows[lake_top:] * 0.9 - t * 6)
    img[lake_top:] = np.array([150, 110, 60], np.float32) + ripple[..., None] * np.array([1.5, 1.2, 0.6])
    img = np.clip(img, 0, 255).astype(np.uint8)
    # A boat sails left to right on the lake, a ball bounces in front of the hills.
    bx = int((t * 0.18 % 1.2 - 0.1) * w)
    k = w / 384  # the boat scales with the frame
    hull = np.array([[bx - 22 * k, lake_top + 4 * k], [bx + 22 * k, lake_top + 4 * k], [bx + 14 * k, lake_top + 14 * k],
                     [bx - 14 * k, lake_top + 14 * k]]).round().astype(np.int32)
    sail = np.array([[bx, lake_top - 30 * k], [bx, lake_top + 2 * k], [bx + 18 * k, lake_top + 2 * k]])
    cv2.fillPoly(img, [hull], (30, 40, 110), cv2.LINE_AA)
    cv2.fillPoly(img, [sail.round().astype(np.int32)], (235, 240, 245), cv2.LINE_AA)
    period = 1.6
    phase = (t % period) / period
    cx = int(w * (0.15 + 0.5 * ((t / 6) % 1.0)))
    cy = int(h * (0.78 - 0.45 * 4 * phase * (1 - phase)))
    r = max(4, h // 16)
    cv2.circle(img, (cx, cy), r, (40, 60, 220), -1, cv2.LINE_AA)
    cv2.circle(img, (cx - r // 3, cy - r // 3), r // 3, (170, 190, 255), -1, cv2.LINE_AA)
    # Fine detail so textures have something to follow.
    noise = np.random.default_rng(int(t * 1000) % 7).normal(0, 2.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _tune(seconds: float, rate: int = 48000) -> np.ndarray:
    """A little arpeggio, stereo float32 (2 x n)."""
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63]
    n = int(seconds * rate)
    t = np.arange(n) / rate
    step = (t * 4).astype(int) % len(notes)
    freq = np.array(notes)[step]
    env = np.exp(-((t * 4) % 1.0) * 4)
    mono = 0.25 * env * np.sin(2 * np.pi * freq * t)
    return np.stack([mono, mono * 0.8]).astype(np.float32)


def write_demo_clip(path: str | Path, seconds: float = 4.0, fps: int = 24, width: int = 384,
                    height: int = 216, audio: bool = True, keyframe_seconds: float | None = None) -> Path:
    """Write the clip as H.264 + AAC MP4 and return its path; a keyframe every `keyframe_seconds` if given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        if keyframe_seconds:
            gop = str(max(1, round(keyframe_seconds * fps)))
            video.options = {**video.options, "g": gop, "keyint_min": gop, "sc_threshold": "0"}
        a_stream = None
        if audio:
            a_stream = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(render_frame(i / fps, width, height), format="bgr24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if a_stream is not None:
            samples = _tune(seconds)
            chunk = 1024
            for start in range(0, samples.shape[1], chunk):
                part = np.ascontiguousarray(samples[:, start:start + chunk])
                af = av.AudioFrame.from_ndarray(part, format="fltp", layout="stereo")
                af.sample_rate = 48000
                af.pts = start
                af.time_base = Fraction(1, 48000)
                for packet in a_stream.encode(af):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return path
