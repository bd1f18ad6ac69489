"""x264 presets side by side: CPU time per frame, size and quality, on the frames of one video.

Decodes the video once, then encodes its frames with libx264 at crf 18 (the sink's default), or each of
--crfs, with each preset, one thread, timed in CPU time (a busy machine does not inflate it); decodes each result and
reports its PSNR against the frames it was made from, and its bytes per frame. `convert`'s default
preset (streamer.config.VideoOutputConfig) is chosen from this.

    python -m benchmarks.encoder_presets VIDEO [--presets medium,faster,veryfast] [--crfs 18] [--out DIR]

Give it a stylized clip (a `convert` output): painted frames compress differently from photos.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from engines.machine import cpu_class, machine_info

ROOT = Path(__file__).resolve().parents[1]


def encode(frames: list[np.ndarray], preset: str, crf: int = 18, fps: int = 25) -> tuple[bytes, float]:
    """-> the MP4's bytes and the CPU seconds its encoding took."""
    import av

    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}
        t0 = time.process_time()
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        seconds = time.process_time() - t0
    return buf.getvalue(), seconds


def main() -> None:
    import av

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("--presets", default="medium,faster,veryfast")
    ap.add_argument("--crfs", default="18", help="comma-separated crf values (equal quality: compare sizes)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    if not args.video.is_file():
        sys.exit(f"error: no video at {args.video}")
    with av.open(str(args.video)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    rows = []
    crfs = [int(c) for c in args.crfs.split(",") if c.strip()]
    for preset, crf in [(p.strip(), c) for p in args.presets.split(",") if p.strip() for c in crfs]:
        data, seconds = encode(frames, preset, crf)
        with av.open(io.BytesIO(data)) as c:
            back = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        row = {"preset": preset, "crf": crf, "cpu_ms_per_frame": round(seconds / len(frames) * 1000, 2),
               "kib_per_frame": round(len(data) / len(frames) / 1024, 2),
               "psnr_db": round(float(np.mean([cv2.PSNR(a, b) for a, b in zip(frames, back, strict=True)])), 2)}
        rows.append(row)
        print(f"{preset:10s} crf {crf:2d} {row['cpu_ms_per_frame']:6.1f} ms per frame (one thread), "
              f"{row['kib_per_frame']:6.1f} KiB per frame, PSNR {row['psnr_db']:.2f} dB", flush=True)
    print(f"CPU: {cpu_class()}")
    args.out.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    path = args.out / f"encoder-presets-cpu-{datetime.now():%Y-%m-%d-%H%M}.json"
    path.write_text(json.dumps({"benchmark": "encoder_presets", "machine": machine_info(),
                                "video": f"{args.video.name} {w}x{h}, {len(frames)} frames", "crfs": crfs,
                                "results": rows}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
