"""What `convert --ray` costs against plain `convert` on one machine, for the same files.

Clips made here (the demo landscape, a keyframe every second): three short ones and a long one that
is cut into segments. Each mode converts them all, in this process, timed end to end:

- plain: build the engine, then `convert_one` each file in turn (what `stylestream convert` does);
- ray WxT: `run_ray_convert` on a local Ray (ray.init(num_cpus=cores)) with W workers of T threads.

Start-up is reported apart: plain, the engine load; ray, ray.init plus the time until the first
worker has its engine. overhead = (ray total - ray start-up) / (plain total - plain start-up) - 1,
in wall time and in CPU time (plain: this process; ray: what the workers report for their units and joins, without Ray's
own processes), since on a shared machine the wall time also measures the neighbours.
The warm-up frames (stylized, not written) are part of that overhead: warmup / segment frames.

    python -m benchmarks.ray_overhead [--size 64x36] [--long 75] [--segment 30] [--warmup 16] [--fps 12] [--threads 2,1]

The defaults keep the share of warm-up frames of `convert --ray`'s defaults (32 frames before each
30 s segment at 24 fps: 4.4%) at half the frame rate, so that it runs in minutes on a small CPU.

Writes benchmarks/results/ray-overhead-<date>.json with the machine and the load average, since a
shared machine's other work shows in these timings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

# Ray sets OMP_NUM_THREADS in its workers; plain convert gets the same, or the comparison is unfair (on the
# 2-core machine of the committed results, plain convert ran 3.5x slower without it).
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

from engines.machine import machine_info
from streamer.cluster.driver import run_ray_convert
from streamer.cluster.plan import plan_file
from streamer.config import StreamConfig
from streamer.convert import convert_one, plan_conversions
from streamer.democlip import write_demo_clip
from streamer.pipeline import build_engine, build_styles

ROOT = Path(__file__).resolve().parents[1]


def plain(cfg: StreamConfig, inputs: Path, out: Path) -> dict:
    t0 = time.monotonic()
    engine = build_engine(cfg.engine)
    styles = build_styles(cfg, engine)
    t1, cpu = time.monotonic(), time.process_time()
    frames = sum(convert_one(cfg, engine, styles, src, dst).frames_out for src, dst in plan_conversions([inputs], out))
    cpu = time.process_time() - cpu
    total = time.monotonic() - t0
    return {"frames": frames, "total_s": round(total, 2), "startup_s": round(t1 - t0, 2),
            "work_s": round(total - (t1 - t0), 2), "cpu_s": round(cpu, 2)}


def on_ray(ray, cfg: StreamConfig, inputs: Path, out: Path, cores: int) -> dict:
    t0 = time.monotonic()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
    init = time.monotonic() - t0
    try:
        summary = run_ray_convert(cfg, [inputs], out, bar=False)
    finally:
        ray.shutdown()
    total = time.monotonic() - t0
    startup = init + summary.startup
    assert not summary.failed, summary.failed
    return {"frames": summary.frames, "workers": len(summary.workers), "total_s": round(total, 2),
            "ray_init_s": round(init, 2), "startup_s": round(startup, 2), "work_s": round(total - startup, 2),
            "cpu_s": round(summary.cpu_seconds, 2),
            "per_worker_frames": {k: v["frames"] for k, v in summary.workers.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="64x36", help="clip size WxH (converted at its own size)")
    ap.add_argument("--fps", type=int, default=12)
    ap.add_argument("--short", type=float, default=3.0, help="seconds of each of the three short clips")
    ap.add_argument("--long", type=float, default=75.0, help="seconds of the long clip")
    ap.add_argument("--segment", type=float, default=30.0, help="ray.segment_seconds")
    ap.add_argument("--warmup", type=int, default=16, help="ray.warmup_frames")
    ap.add_argument("--threads", default="", help="cpus_per_worker values to run, e.g. 2,1 (default: all cores, 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    import ray

    width, height = map(int, args.size.lower().split("x"))
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="stylestream-ray-bench-"))
    inputs = work / "in"
    for i in range(3):
        write_demo_clip(inputs / f"short-{i}.mp4", seconds=args.short, fps=args.fps, width=width, height=height,
                        keyframe_seconds=1.0)
    write_demo_clip(inputs / "long.mp4", seconds=args.long, fps=args.fps, width=width, height=height,
                    keyframe_seconds=1.0)
    segments = plan_file(inputs / "long.mp4", work / "x.mp4", args.segment, args.warmup).segments
    base = {"size": 0, "video": {"overwrite": True}}
    load_before = os.getloadavg()
    result = {"machine": machine_info(), "omp_num_threads": os.environ["OMP_NUM_THREADS"],
              "load_average_before": [round(x, 2) for x in load_before],
              "clips": {"size": args.size, "fps": args.fps, "short_s": [args.short] * 3, "long_s": args.long,
                        "long_segments": [s.frames for s in segments],
                        "warm_frames": sum(s.warm_frames for s in segments)},
              "settings": {"segment_seconds": args.segment, "warmup_frames": args.warmup}, "modes": {}}
    try:
        result["modes"]["plain"] = plain(StreamConfig.model_validate(base), inputs, work / "plain")
        print("plain", result["modes"]["plain"], flush=True)
        for per in [int(t) for t in args.threads.split(",")] if args.threads else sorted({cores, 1}, reverse=True):
            cfg = StreamConfig.model_validate({**base, "ray": {"cpus_per_worker": per, "segment_seconds": args.segment,
                                                               "warmup_frames": args.warmup}})
            name = f"ray {cores // per}x{per}"
            result["modes"][name] = on_ray(ray, cfg, inputs, work / name.replace(" ", "-"), cores)
            print(name, result["modes"][name], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain_work, plain_cpu = result["modes"]["plain"]["work_s"], result["modes"]["plain"]["cpu_s"]
    for name, mode in result["modes"].items():
        if name != "plain":
            mode["overhead_wall"] = round(mode["work_s"] / plain_work - 1, 3)
            mode["overhead_cpu"] = round(mode["cpu_s"] / plain_cpu - 1, 3)
            print(f"{name}: overhead {mode['overhead_wall']:+.1%} wall, {mode['overhead_cpu']:+.1%} CPU time, after "
                  f"a start-up of {mode['startup_s']:.1f} s (plain: {plain_work:.1f} s, {plain_cpu:.1f} CPU s of "
                  f"work, {result['modes']['plain']['startup_s']:.1f} s start-up)")
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ray-overhead-cpu-{datetime.now():%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
