"""What the temporal smoothing costs per 640x360 frame on one CPU core, by phase, optionally beside the
same code at another commit, in one run.

The lite network stylizes a dev video's frames once (so every variant smooths the same frames); then each
variant runs in its own process, pinned to one core with OpenCV on one thread, as the smoother thread
does in a stream: the thumbnail and cut detection (`see`), the flow estimate (`estimate_flow`) and the
blend (`smooth`), median ms per frame over the clip, repeated `--rounds` times.

    python -m benchmarks.smoothing_cost [--video ../shared/data/dev/video/davis_camel] [--frames 60]
                                        [--baseline REF] [--rounds 3] [--out DIR]

`--baseline REF` also measures the smoothing of git commit REF (its streamer/ and engines/, from
`git archive`), alternating with the working tree's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "dev"
SIZE = (640, 360)

MEASURE = """
import json, sys, time
import cv2, numpy as np
from engines.machine import keep_freed_buffers
from streamer.temporal import TemporalSmoother
keep_freed_buffers()
cv2.setNumThreads(1)
data = np.load(sys.argv[1])
frames, styl = data["frames"], data["stylized"]
sm = TemporalSmoother()
sm.settle("cpu")
def clip():
    sm.reset()
    times = {"see": [], "estimate": [], "blend": []}
    for f, s in zip(frames, styl):
        t0 = time.perf_counter(); seen = sm.see([f]); t1 = time.perf_counter()
        sm.estimate_flow(seen); t2 = time.perf_counter()
        sm.smooth(f, s, seen[0]); t3 = time.perf_counter()
        for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[k].append(v * 1000)
    return {k: float(np.median(v[1:])) for k, v in times.items()}
clip()  # first use: compiles and caches
print(json.dumps(clip()))
"""


def stylized_clip(video: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n frames of a dev video at 640x360 (BGR uint8), and the lite network's output for them."""
    import torch

    from engines.backends.torch_backend import TorchEngine
    from engines.graph import load_graph
    from engines.images import load_image, to_tensor

    files = sorted(video.glob("*.jpg"))[:n]
    if not files:
        sys.exit(f"error: no .jpg frames in {video}")
    frames = np.stack([cv2.resize(cv2.imread(str(f)), SIZE, interpolation=cv2.INTER_AREA) for f in files])
    engine = TorchEngine(load_graph(model="lite"))
    style = engine.encode_style(to_tensor(load_image(SHARED / "style" / "ds_0000_100024.jpg")))
    with torch.inference_mode():
        out = [engine.download(engine.stylize(engine.upload([f]), style, 1.0))[0] for f in frames]
    return frames, np.stack(out)


def tree_at(ref: str, dest: Path) -> Path:
    """streamer/ and engines/ of commit `ref`, unpacked under dest."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "streamer", "engines"], capture_output=True)
    if tar.returncode != 0:
        sys.exit(f"error: git archive {ref}: {tar.stderr.decode().strip()}")
    with tarfile.open(fileobj=BytesIO(tar.stdout)) as t:
        t.extractall(dest, filter="data")
    return dest


def measure(tree: Path, data: Path, core: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["taskset", "-c", str(core), sys.executable, "-c", MEASURE, str(data)],
                       capture_output=True, text=True, env=env, cwd=tree)
    if r.returncode != 0:
        sys.exit(f"error: measuring {tree} failed: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    from engines.machine import cpu_class, cpu_result_tag, machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=SHARED / "video" / "davis_camel")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--baseline", help="also measure this git commit's smoothing")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", type=int, default=0, help="the CPU core to pin to")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        frames, stylized = stylized_clip(args.video, args.frames)
        data = tmp / "clip.npz"
        np.savez(data, frames=frames, stylized=stylized)
        trees = {"working tree": ROOT}
        if args.baseline:
            trees[args.baseline] = tree_at(args.baseline, tmp / "baseline")
        rounds: dict[str, list[dict]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                rounds[name].append(measure(tree, data, args.core))
    results = []
    for name, runs in rounds.items():
        row = {"variant": name, **{k: round(float(np.median([r[k] for r in runs])), 2) for k in runs[0]}}
        row["total"] = round(row["see"] + row["estimate"] + row["blend"], 2)
        results.append(row)
        print(f"{name:16s} see {row['see']:5.2f}  flow estimate {row['estimate']:5.2f}  blend {row['blend']:5.2f}"
              f"  total {row['total']:5.2f} ms per frame", flush=True)
    print(f"CPU: {cpu_class()}, one core")
    args.out.mkdir(parents=True, exist_ok=True)
    tag = cpu_result_tag()
    path = args.out / f"smoothing-cost-cpu-{tag}-{datetime.now():%Y-%m-%d}.json"
    path.write_text(json.dumps({"benchmark": "smoothing_cost", "created": datetime.now().astimezone().isoformat(),
                                "machine": machine_info(), "clip": f"{args.video.name} {SIZE[0]}x{SIZE[1]}",
                                "frames": args.frames, "rounds": args.rounds, "baseline": args.baseline,
                                "results": results}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
