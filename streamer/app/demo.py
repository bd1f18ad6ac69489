"""`stylestream demo`: the built-in clip, converted with a built-in style. No camera, no user files."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np

from engines.errors import OutputError
from streamer.config import load_config
from streamer.democlip import write_demo_clip

log = logging.getLogger(__name__)
DEMO_STYLES = ["starry-night"]
# The network costs about 1 GFLOP per 1000 pixels: on a CPU the clip is short and small so that the demo
# takes seconds, not minutes (about 20 s on two cores); a GPU gets a longer, larger one.
DEMO_CLIP = {"cpu": {"seconds": 2.0, "fps": 12, "width": 256, "height": 144},
             "gpu": {"seconds": 4.0, "fps": 24, "width": 384, "height": 216}}


def run_demo(folder: Path, styles: list[str] | None = None, device: str | None = None,
             config: Path | None = None, model: str | None = None) -> Path:
    """The demo; a config (-c) may set the engine, style and smoothing, the clip stays built in."""
    from streamer.convert import convert_one, interrupted
    from streamer.pipeline import build_engine, build_styles

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot create the demo folder {folder}: {e.strerror}") from None
    overrides = {"size": 0, "video": {"overwrite": True, "preset": "veryfast"}}
    if styles or config is None:
        overrides["styles"] = styles or DEMO_STYLES
    if device or model:
        overrides["engine"] = {k: v for k, v in (("device", device), ("model", model)) if v}
    cfg = load_config(config, overrides)
    engine = build_engine(cfg.engine)
    named = build_styles(cfg, engine)
    clip = write_demo_clip(folder / "demo-input.mp4", **DEMO_CLIP["cpu" if engine.device.type == "cpu" else "gpu"])
    out = folder / "demo-stylized.mp4"
    result = convert_one(cfg, engine, named, clip, out)
    if result.interrupted:
        raise interrupted(result, out)
    preview = write_preview(clip, out, folder / "demo-preview.png")
    log.info("input:    %s", clip)
    log.info("stylized: %s  (style: %s, %s)", out, named[0].name, engine.describe_model())
    log.info("preview:  %s  (input above, stylized below, three moments)", preview)
    return out


def _frames(path: Path, picks: list[float]) -> list[np.ndarray]:
    """The frames at these fractions of the clip."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    return [frames[min(round(p * len(frames)), len(frames) - 1)] for p in picks]


def write_preview(original: Path, stylized: Path, dst: Path) -> Path:
    """Three moments of the clip: the input row above, the stylized row below."""
    picks = [0.1, 0.45, 0.8]
    top = np.hstack(_frames(original, picks))
    bottom = np.hstack(_frames(stylized, picks))
    if bottom.shape != top.shape:
        bottom = cv2.resize(bottom, (top.shape[1], top.shape[0]))
    cv2.imwrite(str(dst), np.vstack([top, bottom]))
    return dst
