"""`stylestream serve` measured: round-trip latency and delivered fps over WebRTC on loopback.

A client sends a 640x360 stream at 30 fps to a real `stylestream serve` (a subprocess, on 127.0.0.1) and
receives the stylized stream back. Each frame carries its number in a band of 16 blocks along the top and
again along the bottom (8 bits, each a bright/dark pair, which survives stylization and VP8); the client
reads it from every frame that comes back (a frame counts only if both bands read clearly and agree), so the
latency is measured end to end per frame: drawn -> VP8 -> server (decode, the network, encode) -> decoded and
shown. The server skips frames while its engine is busy (newest frame wins), so the delivered fps is the
stylized frames that came back per second. Two clients:

- `--client chromium`: the studio page itself in Debian's chromium (Playwright), its Start button and its
  <video>; its camera is replaced by a canvas stream that draws the numbers (serve_latency_page.js), and each
  frame the video shows is read back from a canvas. What a person at the page sees.
- `--client aiortc` (the default; no browser, for GPU boxes): an aiortc peer. aiortc's jitter buffer hands
  on a frame only when the next frame's first packet arrives, so its numbers include up to one output frame
  interval that a browser does not wait for.

    python -m benchmarks.serve_latency [--client aiortc|chromium] [--size 360] [--seconds 30] [--device auto]
                                       [--backend auto] [--model auto] [--style starry-night]

Prints the numbers and writes benchmarks/results/serve-latency-<cpu|gpu>-<model>-<client>-size<N>-<date>.json with
the machine and its load average.
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

from engines.machine import machine_info
from streamer.democlip import render_frame
from streamer.serve.client import StudioClient

ROOT = Path(__file__).resolve().parents[1]

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


def _band_means(band: np.ndarray) -> list[float]:
    """Mean grey level of the middle of each block (the middle half of the band's rows and of each block)."""
    h, w = band.shape[:2]
    block = w // (2 * BITS)
    luma = band[h // 4: h * 3 // 4].astype(np.float32).mean(axis=(0, 2))
    return [float(luma[k * block + block // 4: (k + 1) * block - block // 4].mean()) for k in range(2 * BITS)]


def number_from_means(means: list[float]) -> int | None:
    """The number from both bands' block means (2 x 2*BITS), or None unless both read clearly and the same."""
    numbers = []
    for band in (means[: 2 * BITS], means[2 * BITS:]):
        number = 0
        for b in range(BITS):
            diff = band[2 * b] - band[2 * b + 1]
            if abs(diff) < MIN_CONTRAST:
                return None
            number |= (diff > 0) << b
        numbers.append(number)
    return numbers[0] if numbers[0] == numbers[1] else None


def read_marker(image: np.ndarray) -> int | None:
    """The number drawn by draw_marker, or None unless both bands read clearly and the same."""
    top, bottom = (_band_means(image[rows]) for rows in _bands(image.shape[0]))
    return number_from_means(top + bottom)


def summarize(shown: list[tuple[float, int | None]], sent: list[tuple[int, float]]) -> dict:
    """Latency of each shown frame: its time minus when its number was last drawn before it (seconds in,
    ms out). A frame whose number was drawn more than 0.9 of a wrap-around ago is not timed."""
    wrap = (1 << BITS) / 30 * 0.9
    last_drawn: dict[int, float] = {}
    latencies, unreadable, wrapped = [], 0, 0
    events = sorted([(t, 0, n) for n, t in sent] + [(t, 1, n) for t, n in shown], key=lambda e: (e[0], e[1]))
    for t, kind, n in events:
        if kind == 0:
            last_drawn[n] = t
        elif n is None or n not in last_drawn:
            unreadable += 1
        elif t - last_drawn[n] > wrap:
            wrapped += 1
        else:
            latencies.append((t - last_drawn[n]) * 1000)
    times = [t for t, _ in shown]
    lat = np.array(latencies)
    pct = (lambda q: round(float(np.percentile(lat, q)), 1)) if len(lat) else (lambda q: None)
    return {
        "frames_received": len(times),
        "frames_timed": len(latencies),
        "unreadable_markers": unreadable,
        "wrapped_markers": wrapped,
        "delivered_fps": round((len(times) - 1) / (times[-1] - times[0]), 2) if len(times) > 1 else 0.0,
        "latency_ms_p50": pct(50),
        "latency_ms_p95": pct(95),
        "latency_ms_min": round(float(lat.min()), 1) if len(lat) else None,
    }


def make_track(width: int, height: int, sent: list[tuple[int, float]]):
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
            sent.append((self.number, time.monotonic()))
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    return MarkedFrames()


def start_server(args) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "streamer.app.cli", "serve", "--port", "0", "--size", str(args.size),
           "--device", args.device, "--backend", args.backend, "--model", args.model, "--style", args.style]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    line = proc.stdout.readline()
    if not re.match(r"https?://", line):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.strip()


async def measure_aiortc(url: str, args) -> dict:
    sent: list[tuple[int, float]] = []
    shown: list[tuple[float, int | None]] = []
    async with StudioClient(url) as client:
        await client.set(alpha=1.0, smooth=args.smooth, side_by_side=False)
        received = await client.start(make_track(args.width, args.height, sent))
        start = time.monotonic()
        while time.monotonic() - start < args.warmup + args.seconds:
            frame = await asyncio.wait_for(received.recv(), 30)
            now = time.monotonic()
            if now - start >= args.warmup:
                shown.append((now, read_marker(frame.to_ndarray(format="bgr24"))))
        server = dict(client.stats)
    return {**summarize(shown, sent), "server_ms_median": server.get("server_ms"), "engine": server.get("engine")}


def measure_chromium(url: str, args) -> dict:
    """The studio page itself in headless chromium: its Start button, its <video>; the camera is a canvas."""
    import base64
    import shutil

    from playwright.sync_api import sync_playwright

    png = cv2.imencode(".png", render_frame(2.0, args.width, args.height))[1].tobytes()
    bench = {"width": args.width, "height": args.height, "bits": BITS,
             "background": "data:image/png;base64," + base64.b64encode(png).decode()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--disable-features=WebRtcHideLocalIpsWithMdns"])
        page = browser.new_page()
        page.set_default_timeout(120_000)
        page.add_init_script(script=f"window.__bench = {json.dumps(bench)};")
        page.add_init_script(path=str(Path(__file__).with_name("serve_latency_page.js")))
        page.goto(url)
        page.wait_for_function("window.studio.session")
        page.evaluate(f"window.studio.ws.send(JSON.stringify({{type: 'set', alpha: 1, side_by_side: false, "
                      f"smooth: {json.dumps(args.smooth)}}}))")
        page.click("#start")
        page.wait_for_function("window.__bench.shown.length > 0")
        page.wait_for_timeout(args.warmup * 1000)
        start = page.evaluate("performance.now()")
        page.wait_for_timeout(args.seconds * 1000)
        data = page.evaluate("({sent: window.__bench.sent, shown: window.__bench.shown, stats: window.studio.stats})")
        browser.close()
    shown = [(f["t"] / 1000, number_from_means(f["means"])) for f in data["shown"] if f["t"] >= start]
    sent = [(n, t / 1000) for n, t in data["sent"]]
    stats = data["stats"] or {}
    return {**summarize(shown, sent), "server_ms_median": stats.get("server_ms"), "engine": stats.get("engine")}


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
    ap.add_argument("--client", choices=("aiortc", "chromium"), default="aiortc",
                    help="aiortc (no browser; GPU boxes) or the studio page in Debian's chromium (Playwright)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/results/...)")
    args = ap.parse_args()
    args.width, args.height = (int(v) for v in args.resolution.lower().split("x"))
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    proc, url = start_server(args)
    try:
        result = measure_chromium(url, args) if args.client == "chromium" else asyncio.run(measure_aiortc(url, args))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    info = machine_info()
    record = {"benchmark": "serve_latency", "date": datetime.now().isoformat(timespec="seconds"),
              "resolution": args.resolution, "network_size": args.size, "style": args.style,
              "smoothing": args.smooth, "client": f"{args.client} on the same machine (loopback)", "fps_sent": 30,
              "seconds": args.seconds, **result,
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "machine": info}
    kind = "gpu" if info.get("gpu") and args.device != "cpu" else "cpu"
    model = (result.get("engine") or args.model).split()[0]  # "lite model, torch on cpu (bfloat16)" -> lite
    name = f"serve-latency-{kind}-{model}-{args.client}-size{args.size}-{datetime.now():%Y-%m-%d}.json"
    out = args.out or ROOT / "benchmarks/results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "machine"}, indent=2))
    print(f"machine: {info['cpu']} ({info['cpu_cores']} cores), gpu: {info.get('gpu')}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
