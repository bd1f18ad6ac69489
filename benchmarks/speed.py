"""Speed of every available backend at 256x256, 640x360, 1280x720 and 1920x1080.

    python -m benchmarks.speed                      # all backends, default iterations
    python -m benchmarks.speed --skip-1080p --iters 3 --warmup 1
    python -m benchmarks.speed --backends onnxruntime,torch --resolutions 640x360 --out /tmp/s.json

Prints a table and writes JSON (default benchmarks/results/speed-<host-kind>-<date>.json) with the
machine beside the numbers. Thin on purpose: the work is engines.bench.run_bench, which imports
only torch, numpy and engines.* (rich if present), so this runs on a bare GPU box too.
`stylestream bench` takes the same options and adds the end-to-end `convert` fps on a generated
clip (that part needs the streamer package: PyAV, OpenCV, pydantic).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from engines.bench import BenchSettings, bench_options, parse_resolutions, run_bench
from engines.bench_output import print_table, write_result
from engines.errors import StylestreamError

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", help="comma-separated (default: every available one)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16, bf16 (torch only)")
    p.add_argument("--resolutions", default="256x256,640x360,1280x720,1920x1080", help="WIDTHxHEIGHT,...")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, help="untimed runs first (default 3 on CUDA, 1 on the CPU)")
    p.add_argument("--iters", type=int, help="timed runs (default 20 on CUDA, 3 on the CPU)")
    p.add_argument("--skip-1080p", action="store_true", help="leave out 1920x1080 (slow on a CPU)")
    p.add_argument("--decoder", help="decoder weights to time (default: a random decoder, same speed)")
    p.add_argument("--no-cuda-graphs", action="store_true", help="torch backend: plain launches")
    p.add_argument("--threads", type=int, help="CPU threads (torch and onnxruntime; default: physical cores)")
    p.add_argument("--out", help="JSON path (default benchmarks/results/speed-<host>-<date>.json)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING, format="%(message)s")
    try:
        settings = BenchSettings(
            backends=[b.strip() for b in a.backends.split(",")] if a.backends else None,
            device=a.device, precision=a.precision, resolutions=parse_resolutions(a.resolutions),
            batch=a.batch, warmup=a.warmup, iters=a.iters, skip_1080p=a.skip_1080p, decoder=a.decoder,
            options=bench_options(a.no_cuda_graphs, a.threads),
        )
        result = run_bench(settings)
        print_table(result)
        path = write_result(result, a.out, folder=ROOT / "benchmarks" / "results")
    except StylestreamError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
