"""`stylestream serve` measured without a browser: round-trip latency and delivered fps over WebRTC on loopback.

An aiortc client sends a 640x360 stream at 30 fps to a real `stylestream serve` (a subprocess, on 127.0.0.1)
and receives the stylized stream back. Each frame carries its number in a band of 16 blocks along the top and
again along the bottom (8 bits, each a bright/dark pair, which survives stylization and VP8); the client reads
it from every frame that comes back (a frame counts only if both bands read clearly and agree), so the latency
is measured end to end per frame: capture -> VP8 -> server (decode, the
network, encode) -> client decode. The server skips frames while its engine is busy (newest frame wins), so
the delivered fps is the stylized frames that came back per second.

    python benchmarks/serve_latency.py [--seconds 30] [--device auto] [--backend auto] [--model auto]
                                       [--size 360] [--style starry-night]

Prints the numbers and writes benchmarks/results/serve-latency-<cpu|gpu>-<date>.json with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import cv2  # noqa: F401 - before PyAV (see streamer/__init__.py)
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.machine import machine_info  # noqa: E402
from streamer.democlip import render_frame  # noqa: E402
from streamer.serve.client import StudioClient  # noqa: E402

BITS = 8
MIN_CONTRAST = 8.0  # grey levels between the two blocks of a bit for it to count as read


def _bands(h: int) -> tuple[slice, slice]:
    return slice(0, h // 8), slice(h - h // 8, h)


def draw_marker(image: np.ndarray, number: int) -> None:
    """The number in a band at the top and again at the bottom. Bit b is blocks 2b, 2b+1 of a band:
    (bright, dark) for 1, (dark, bright) for 0."""
    h, w = image.shape[:2]
    block = w // (2 * BITS)
    for rows in _bands(h):
        for b in range(BITS):
            one = number >> b & 1
            for k, bright in ((2 * b, one), (2 * b + 1, 1 - one)):
                image[rows, k * block:(k + 1) * block] = 235 if bright else 20


def _read_band(band: np.ndarray) -> int | None:
    h, w = band.shape[:2]
    block = w // (2 * BITS)
    luma = band[h // 4: h * 3 // 4].astype(np.float32).mean(axis=(0, 2))
    means = [luma[k * block + block // 4: (k + 1) * block - block // 4].mean() for k in range(2 * BITS)]
    number = 0
    for b in range(BITS):
        diff = means[2 * b] - means[2 * b + 1]
        if abs(diff) < MIN_CONTRAST:
            return None
        number |= (diff > 0) << b
    return number


def read_marker(image: np.ndarray) -> int | None:
    """The number drawn by draw_marker, or None unless both bands read clearly and the same."""
    top, bottom = (_read_band(image[rows]) for rows in _bands(image.shape[0]))
    return top if top is not None and top == bottom else None


def make_track(width: int, height: int, sent: dict[int, float]):
    import av
    from aiortc import VideoStreamTrack

    background = render_frame(2.0, width, height)

    class MarkedFrames(VideoStreamTrack):
        """The demo landscape at 30 fps, each frame numbered (mod 256) in its top band."""

        number = 0

        async def recv(self) -> av.VideoFrame:
            pts, time_base = await self.next_timestamp()
            self.number = (self.number + 1) % (1 << BITS)
            image = background.copy()
            draw_marker(image, self.number)
            sent[self.number] = time.monotonic()
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    return MarkedFrames()


def start_server(args) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "streamer.cli", "serve", "--port", "0", "--size", str(args.size),
           "--device", args.device, "--backend", args.backend, "--model", args.model, "--style", args.style]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = proc.stdout.readline()
    if not re.match(r"https?://", line):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.strip()


async def measure(url: str, args) -> dict:
    width, height = args.width, args.height
    sent: dict[int, float] = {}
    async with StudioClient(url) as client:
        await client.set(alpha=1.0, smooth=args.smooth, side_by_side=False)
        received = await client.start(make_track(width, height, sent))
        latencies, arrivals, unreadable, stale = [], [], 0, 0
        start = time.monotonic()
        while time.monotonic() - start < args.warmup + args.seconds:
            frame = await asyncio.wait_for(received.recv(), 30)
            now = time.monotonic()
            if now - start < args.warmup:
                continue
            arrivals.append(now)
            number = read_marker(frame.to_ndarray(format="bgr24"))
            if number is None or number not in sent:
                unreadable += 1
                continue
            latency = now - sent[number]
            if latency > 256 / 30 * 0.9:  # the number wrapped: cannot tell which frame it was
                stale += 1
                continue
            latencies.append(latency * 1000)
        server = dict(client.stats)
    lat = np.array(latencies)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "frames_received": len(arrivals),
        "frames_timed": len(latencies),
        "unreadable_markers": unreadable,
        "wrapped_markers": stale,
        "delivered_fps": round((len(arrivals) - 1) / span, 2) if len(arrivals) > 1 else 0.0,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
        "latency_ms_min": round(float(lat.min()), 1) if len(lat) else None,
        "server_ms_median": server.get("server_ms"),
        "engine": server.get("engine"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", default="640x360", help="WIDTHxHEIGHT the client sends")
    ap.add_argument("--size", type=int, default=360, help="shorter side the network sees (serve --size)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds not counted (first frames, warm-up)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--model", default="auto", help="full | lite | auto (serve's default: lite on a CPU)")
    ap.add_argument("--style", default="starry-night")
    ap.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                    help="temporal smoothing (the studio's default: on)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/...)")
    args = ap.parse_args()
    args.width, args.height = (int(v) for v in args.resolution.lower().split("x"))
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    proc, url = start_server(args)
    try:
        result = asyncio.run(measure(url, args))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    info = machine_info()
    record = {"benchmark": "serve_latency", "date": datetime.now().isoformat(timespec="seconds"),
              "resolution": args.resolution, "network_size": args.size, "style": args.style,
              "smoothing": args.smooth, "client": "aiortc on the same machine (loopback)", "fps_sent": 30,
              "seconds": args.seconds, **result,
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "machine": info}
    kind = "gpu" if info.get("gpu") and args.device != "cpu" else "cpu"
    out = args.out or ROOT / "benchmarks/results" / f"serve-latency-{kind}-{datetime.now():%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}, indent=2))
    print(f"machine: {info['cpu']} ({info['cpu_cores']} cores), gpu: {info.get('gpu')}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
