"""Live frame rate: `stylestream live` on a dev clip played as a camera, to MJPEG with a client attached.

Runs `stylestream live --source CLIP --mjpeg PORT --no-window --stats` (smoothing on, as by default) in a
subprocess, reads the stream over HTTP on 127.0.0.1 as a browser would, and collects the --stats lines
(one per second). After the warm-up it reports the median and worst fps of the stats lines, the frames
the HTTP client received, the stylize time and the working sizes the stream ran at, for each model and
sizing given, one after the other in one run. Sizing `fixed` passes --size (the network always works at
it); `adaptive` gives the size in a config file, so the network's working size may go lower to hold the
source's frame rate (streamer.working_size) while the output keeps the size.

    python -m benchmarks.live_fps [--models lite,full] [--sizing fixed,adaptive] [--size 360] [--source-fps 30]
                                  [--source ../shared/data/dev/video/davis_camel] [--seconds 30]
                                  [--warmup 5] [--tag NAME] [--out benchmarks/results] [-- LIVE OPTIONS]

The clip (854x480 JPEG frames) is played at --source-fps (30), looping; --size 360 makes the network see 640x360.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

from engines.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MjpegClient(threading.Thread):
    """Reads the multipart stream and counts the JPEG frames that arrive (by their end-of-image marker)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.frames, self.stop = url, 0, threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    while not self.stop.is_set():
                        chunk = r.read(65536)
                        if not chunk:
                            break
                        self.frames += chunk.count(b"\xff\xd9")
            except OSError:
                time.sleep(0.5)  # the server is not up yet


def run_one(model: str, sizing: str, args, config_dir: Path) -> dict:
    port = free_port()
    cfg = config_dir / f"{sizing}-{args.size}.yaml"
    text = f"live:\n  camera_fps: {args.source_fps:g}\n"  # the folder's playback rate
    size = ["-c", str(cfg)]
    if sizing == "fixed":
        size += ["--size", str(args.size)]
    else:  # the size from the config file: the output's, the working size free to go lower
        text += f"size: {args.size}\n"
    cfg.write_text(text)
    cmd = [sys.executable, "-m", "streamer.app.cli", "live", "--source", str(args.source), *size,
           "--mjpeg", str(port), "--no-window", "--stats", "--model", model, *args.extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    client = MjpegClient(f"http://127.0.0.1:{port}/stream")
    client.start()
    lines, started = [], time.monotonic()
    counted_from = None
    try:
        for raw in proc.stdout:
            line = json.loads(raw)
            lines.append(line)
            elapsed = time.monotonic() - started
            if counted_from is None and elapsed >= args.warmup and client.frames:
                counted_from = (len(lines), client.frames, time.monotonic())
            if counted_from and time.monotonic() - counted_from[2] >= args.seconds:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        client.stop.set()
    if counted_from is None:
        raise SystemExit(f"live did not start streaming ({model}): {err[-2000:]}")
    measured = lines[counted_from[0]:]
    client_seconds = time.monotonic() - counted_from[2]
    fps = [x["fps"] for x in measured]
    sizes = Counter(x.get("working_size") or "fixed" for x in measured)
    return {"model": model, "sizing": sizing, "command": " ".join(cmd[2:]), "stats_lines": len(measured),
            "working_sizes": dict(sizes.most_common()),
            "fps_median": statistics.median(fps), "fps_min": min(fps),
            "client_frames": client.frames - counted_from[1], "client_fps": round((client.frames - counted_from[1])
                                                                                  / client_seconds, 2),
            "stylize_ms_median": statistics.median(x["stylize_ms"] for x in measured if x["stylize_ms"]),
            "latency_ms_p50_median": statistics.median(x["latency_ms_p50"] for x in measured if x["latency_ms_p50"]),
            "dropped_at_end": measured[-1]["dropped"], "engine_model": measured[-1].get("model"),
            "engine_log": [ln for ln in err.splitlines() if "engine:" in ln or "model auto" in ln][:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="lite,full")
    ap.add_argument("--source", type=Path, default=ROOT / "../shared/data/dev/video/davis_camel")
    ap.add_argument("--size", type=int, default=360)
    ap.add_argument("--source-fps", type=float, default=30, help="the clip's playback rate (a camera's)")
    ap.add_argument("--sizing", default="fixed,adaptive", help="fixed, adaptive or both (comma-separated)")
    ap.add_argument("--tag", default="", help="added to the result file's name (e.g. avx2cap)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("extra", nargs="*", help="more `stylestream live` options (after --)")
    args = ap.parse_args()
    if not args.source.exists():
        sys.exit(f"no clip at {args.source}; nothing to measure")
    with tempfile.TemporaryDirectory() as config_dir:
        results = [run_one(m.strip(), z.strip(), args, Path(config_dir)) for m in args.models.split(",") if m.strip()
                   for z in args.sizing.split(",") if z.strip()]
    for r in results:
        print(f"{r['model']:5} {r['sizing']:8} {r['working_sizes']}: fps median {r['fps_median']:.1f} "
              f"(min {r['fps_min']:.1f}), HTTP client "
              f"{r['client_fps']:.1f} fps, stylize {r['stylize_ms_median']:.1f} ms, latency p50 "
              f"{r['latency_ms_p50_median']:.0f} ms")
    info = machine_info()
    args.out.mkdir(parents=True, exist_ok=True)
    kind = "gpu" if info.get("gpu") else "cpu"
    tag = f"-{args.tag}" if args.tag else ""
    path = args.out / f"live-fps-{kind}{tag}-{datetime.now().strftime('%Y-%m-%d')}.json"
    path.write_text(json.dumps({"machine": info, "source": str(args.source), "source_fps": args.source_fps,
                                "size": args.size,
                                "seconds": args.seconds, "warmup": args.warmup, "results": results}, indent=1))
    print(f"json: {path}")


if __name__ == "__main__":
    main()
