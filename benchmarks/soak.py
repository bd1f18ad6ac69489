"""Soak benchmark: `live` on a looping file for N stylized frames, sampling memory (RSS) and threads.

The same pieces `stylestream live --source FILE` builds (engine, styles, smoother, PacedSource looping
in real time, the stream loop), with an MJPEG sink on a free loopback port (JPEG encoding, like a real
output) and a counting sink that samples the process's RSS and thread count and stops the run after
`--frames` frames. Memory is "flat" when the median RSS of the last tenth of the samples is within
`--tolerance` of the median after warm-up (the first tenth is warm-up: allocator pools, caches).

    nice -n 10 python -m benchmarks.soak [--frames 100000] [--size 64] [--model auto] [--fps 120]
                                         [--device cpu] [--max-seconds S] [--json PATH]

The clip is generated (the demo clip, 2 s) at `--fps` so that the source never paces slower than the
network; `live` drops frames the network cannot take (latest wins), and only stylized frames count.
Not a unit test: it prints measured numbers with the machine they ran on and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from engines.lite.weights import DEFAULT_LITE
from engines.machine import machine_info
from streamer.config import StreamConfig
from streamer.democlip import write_demo_clip
from streamer.pipeline import build_engine, build_loop, build_smoother, build_styles
from streamer.sinks import Sink
from streamer.sinks.mjpeg import MjpegSink
from streamer.sources import open_source
from streamer.stylize import output_size

ROOT = Path(__file__).resolve().parents[1]


def proc_status() -> dict[str, int]:
    """RSS (KiB) and OS thread count of this process, from /proc (Linux)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            out["rss_kib"] = int(value.split()[0])
        elif key == "Threads":
            out["threads"] = int(value)
    return out


class SamplingSink(Sink):
    """Counts frames, samples RSS/threads every `every` frames, and stops the loop after `frames`."""

    name = "soak sampler"

    def __init__(self, frames: int, every: int, max_seconds: float | None = None):
        self.frames = frames
        self.max_seconds = max_seconds
        self.every = every
        self.count = 0
        self.samples: list[dict] = []
        self.start = time.monotonic()
        self.stop_run = lambda: None

    def open(self, info) -> None:
        self.start = time.monotonic()

    def write(self, frame) -> None:
        self.count += 1
        if self.count % self.every == 0 or self.count == 1:
            self.samples.append({"frame": self.count, "t": round(time.monotonic() - self.start, 2),
                                 "py_threads": threading.active_count(), **proc_status()})
            if len(self.samples) % 20 == 0:
                s = self.samples[-1]
                print(f"{s['frame']:>7} frames  {s['t']:>8.1f} s  rss {s['rss_kib'] / 1024:.1f} MiB  "
                      f"threads {s['threads']}", flush=True)
        if self.count >= self.frames or (self.max_seconds and time.monotonic() - self.start > self.max_seconds):
            self.stop_run()

    def close(self) -> None:
        pass


def flatness(samples: list[dict], tolerance: float) -> dict:
    """Median RSS after warm-up (the second tenth of the samples) against the last tenth's median."""
    n = len(samples)
    tenth = max(1, n // 10)
    base = statistics.median(s["rss_kib"] for s in samples[tenth:2 * tenth] or samples)
    end = statistics.median(s["rss_kib"] for s in samples[-tenth:])
    peak = max(s["rss_kib"] for s in samples[tenth:] or samples)
    growth = (end - base) / base
    threads = sorted({s["threads"] for s in samples[tenth:] or samples})
    return {"rss_after_warmup_mib": round(base / 1024, 1), "rss_end_mib": round(end / 1024, 1),
            "rss_peak_mib": round(peak / 1024, 1), "growth": round(growth, 4), "tolerance": tolerance,
            "flat": abs(growth) <= tolerance, "threads_seen_after_warmup": threads}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--model", default="auto", help="full | lite | auto (lite when its weights exist)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fps", type=int, default=120, help="frame rate of the generated looping clip")
    ap.add_argument("--every", type=int, default=100, help="sample every N frames")
    ap.add_argument("--max-seconds", type=float, default=None, help="also stop after this long (a deadline)")
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    model = args.model if args.model != "auto" else ("lite" if DEFAULT_LITE.is_file() else "full")

    cfg = StreamConfig(size=args.size, engine={"model": model, "device": args.device, "backend": "torch"})
    with tempfile.TemporaryDirectory(prefix="stylestream-soak-") as tmp:
        clip = write_demo_clip(Path(tmp) / "loop.mp4", seconds=2.0, fps=args.fps, width=192, height=108,
                               audio=False)
        source = open_source(str(clip), live=True, loop=True)
        with source:
            w, h = output_size(source.info.width, source.info.height, cfg.size)
            engine = build_engine(cfg.engine, "live", w * h)
            styles = build_styles(cfg, engine)
            sampler = SamplingSink(args.frames, args.every, args.max_seconds)
            sinks = [MjpegSink(host="127.0.0.1", port=0, quality=80), sampler]
            loop = build_loop(cfg, engine, styles, source, sinks, build_smoother(cfg))
            sampler.stop_run = loop.request_stop
            result = loop.run()
    flat = flatness(sampler.samples, args.tolerance)
    report = {"benchmark": "soak", "date": datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info(), "model": model, "size": [w, h], "clip_fps": args.fps,
              "frames_asked": args.frames, "max_seconds": args.max_seconds,
              "stopped_by": "frames" if sampler.count >= args.frames else "time",
              "frames_stylized": sampler.count, "frames_dropped": result.dropped,
              "seconds": round(result.seconds, 1), "fps": round(result.fps, 2), "memory": flat,
              "samples": sampler.samples}
    print(json.dumps({k: v for k, v in report.items() if k not in ("samples", "machine")}, indent=1))
    out = args.json or ROOT / "benchmarks" / "results" / f"soak-cpu-{model}-{datetime.now():%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0 if flat["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
