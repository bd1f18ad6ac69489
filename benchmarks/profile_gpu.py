"""Where one frame's time goes: torch.profiler over the full (and lite) model, grouped by what the kernels do.

    python -m benchmarks.profile_gpu [--models full,lite] [--size 1280x720] [--device auto] [--variant default]

Profiles `--iters` calls of engine.stylize (eager, no CUDA graphs: a replayed graph hides its kernels) after
warm-up, then reports per frame: every kernel (CUDA) or op (CPU) by self time, and the groups the issue asks
for: convolutions, reflection padding, memory-format conversions, nearest upsampling, ReLU/clamp,
normalisation statistics, inductor's fused kernels, other. Writes JSON and a markdown table (kernel, ms,
share) to --out. Runs on a CPU too (ops instead of kernels), which is how it is tested.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# First match wins; matched against lower-cased kernel / op names.
GROUPS: tuple[tuple[str, str], ...] = (
    ("reflection padding", r"reflection_pad|reflect"),
    ("nearest upsampling", r"upsample_nearest|upsample"),
    ("memory-format conversion", r"nchwtonhwc|nhwctonchw|copy_|to_copy|contiguous|clone|transpose|permute"),
    ("fused (inductor/triton)", r"triton_"),
    ("convolution", r"conv|cudnn|xmma|implicit_gemm|sm90_|sm80_|gemm|winograd|mkldnn|onednn|wgrad|dgrad"),
    ("relu / clamp", r"relu|threshold|clamp"),
    ("statistics (mean/std, AdaIN)", r"mean|std|var|reduce|sum|sqrt|mul|add|sub|div"),
    ("pooling", r"max_pool|pool"),
)


def group_of(name: str) -> str:
    low = name.lower()
    return next((g for g, pattern in GROUPS if re.search(pattern, low)), "other")


def profile_engine(engine, hw: tuple[int, int], iters: int, warmup: int) -> list[tuple[str, float, int]]:
    """(kernel or op name, total self ms over `iters` frames, calls) for one engine at one size."""
    from torch.profiler import ProfilerActivity, profile

    from engines.bench import random_style

    style = random_style()
    x = torch.rand(1, 3, *hw, device=engine.device)
    for _ in range(warmup):
        engine.stylize(x, style, 1.0)
    cuda = engine.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(iters):
            engine.stylize(x, style, 1.0)
        if cuda:
            torch.cuda.synchronize()
    rows = []
    for evt in prof.key_averages():
        if cuda:  # kernels: events that ran on the device
            ms = getattr(evt, "self_device_time_total", 0) / 1000
            if evt.device_type != torch.autograd.DeviceType.CUDA or ms <= 0:
                continue
        else:  # CPU ops with their own time (aten:: ops; not the Python-level wrappers)
            ms = evt.self_cpu_time_total / 1000
            if not evt.key.startswith("aten::") or ms <= 0:
                continue
        rows.append((evt.key, ms, evt.count))
    return rows


def summarise(rows: list[tuple[str, float, int]], iters: int, top: int = 15) -> dict:
    total = sum(ms for _, ms, _ in rows)
    kernels = sorted(rows, key=lambda r: -r[1])
    groups: dict[str, float] = {}
    for name, ms, _ in rows:
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + ms

    def share(ms: float) -> float:
        return round(ms / total, 4) if total else 0.0

    return {
        "total_ms_per_frame": round(total / iters, 3),
        "groups": [{"group": g, "ms": round(ms / iters, 3), "share": share(ms)}
                   for g, ms in sorted(groups.items(), key=lambda kv: -kv[1])],
        "kernels": [{"kernel": name[:160], "group": group_of(name), "ms": round(ms / iters, 3), "share": share(ms),
                     "calls_per_frame": round(calls / iters, 1)} for name, ms, calls in kernels[:top]],
    }


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Profile of one {result['size']} frame ({m.get('gpu') or m.get('cpu')}, torch {m.get('torch')})", ""]
    for p in result["profiles"]:
        lines += [f"## {p['model']} model, {p['engine']}, variant {p['variant']}: "
                  f"{p['total_ms_per_frame']} ms of {'kernels' if p['cuda'] else 'ops'} per frame", "",
                  "| group | ms | share |", "|---|---:|---:|"]
        lines += [f"| {g['group']} | {g['ms']} | {g['share']:.1%} |" for g in p["groups"]]
        lines += ["", "| kernel | group | ms | share | calls |", "|---|---|---:|---:|---:|"]
        lines += [f"| `{k['kernel'][:90]}` | {k['group']} | {k['ms']} | {k['share']:.1%} | {k['calls_per_frame']} |"
                  for k in p["kernels"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from engines.backends.select import create_engine
    from engines.backends.tensorrt_profile import parse_resolution
    from engines.bench import VARIANTS, _graph, _lite_graph, collect_machine, host_kind

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="full,lite")
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--variant", default="default", choices=sorted(VARIANTS), help="engine options (engines.bench)")
    ap.add_argument("--decoder", default=None, help="decoder weights (default: random, same speed)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--top", type=int, default=15, help="kernels listed")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args(argv)
    hw = parse_resolution(a.size)
    machine = collect_machine()
    result = {"benchmark": "profile", "size": a.size, "machine": machine, "iters": a.iters, "profiles": []}
    for model in [m.strip() for m in a.models.split(",") if m.strip()]:
        graph, notes = _graph(a.decoder) if model == "full" else _lite_graph()
        options = {**VARIANTS[a.variant], "cuda_graphs": False}
        engine = create_engine("torch", device=a.device, precision=a.precision, graph=graph, **options)
        rows = profile_engine(engine, hw, a.iters, a.warmup)
        summary = summarise(rows, a.iters, a.top)
        result["profiles"].append({"model": model, "engine": engine.describe(), "variant": a.variant,
                                   "cuda": engine.device.type == "cuda", "weights": notes, **summary})
        print(f"{model}: {summary['total_ms_per_frame']} ms/frame; "
              + ", ".join(f"{g['group']} {g['share']:.0%}" for g in summary["groups"][:6]))
    a.out.mkdir(parents=True, exist_ok=True)
    stem = f"profile-{host_kind(machine)}-{a.size}-{a.variant}"
    (a.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / f"{stem}.md").write_text(markdown(result))
    print(f"wrote {a.out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
