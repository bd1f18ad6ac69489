"""What decoding and encoding cost per frame on one CPU core: the CPU side of a GPU node in `convert`.

Decodes H.264 (the demo clip, written here) and encodes libx264 at the sink's defaults (crf 18,
preset medium, yuv420p) with one thread each, at 1280x720 and 1920x1080, timed in CPU time (so a
busy shared machine does not inflate it). The README's cluster section uses these to say how many
cores a GPU node needs to keep its GPUs busy; bytes per frame in and out say what the storage carries.

    python -m benchmarks.codec_cost [--frames 48] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

from engines.machine import machine_info
from streamer.democlip import write_demo_clip

ROOT = Path(__file__).resolve().parents[1]


def decode_ms(path: Path) -> tuple[float, list]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_count = 1
        t = time.process_time()
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(stream)]
        return (time.process_time() - t) * 1000 / len(frames), frames


def encode_ms(images: list, path: Path) -> float:
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18", "preset": "medium", "threads": "1"}
        t = time.process_time()
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        return (time.process_time() - t) * 1000 / len(images)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "codec-cost-cpu-2026-11-29.json")
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in ((1280, 720), (1920, 1080)):
            clip = write_demo_clip(Path(tmp) / f"{w}.mp4", seconds=args.frames / 24, fps=24, width=w, height=h,
                                   audio=False)
            dec, images = decode_ms(clip)
            enc = encode_ms(images, Path(tmp) / f"{w}-out.mp4")
            rows[f"{w}x{h}"] = {"decode_ms": round(dec, 2), "encode_x264_medium_ms": round(enc, 2),
                                "frames": len(images),
                                "input_kb_per_frame": round(clip.stat().st_size / len(images) / 1024, 1),
                                "output_kb_per_frame": round((Path(tmp) / f"{w}-out.mp4").stat().st_size
                                                             / len(images) / 1024, 1)}
            print(f"{w}x{h}: decode {dec:.1f} ms/frame, encode (x264 medium, 1 thread) {enc:.1f} ms/frame")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine_info(), "one_thread": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
