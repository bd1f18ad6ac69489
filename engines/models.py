"""Which network runs: `full` (VGG-19 + the AdaIN decoder) or `lite` (engines.lite), and what `auto` means.

The rule for `--model auto` (numbers in docs/models.md, measured with `stylestream bench` and
benchmarks/live_fps.py):
- `image` and `convert`: the full model, which gives the best quality; they are not real time.
- `live` (and `serve`) on a CPU: the lite model. On 2 AMD EPYC cores at 640x360 the full model takes 321 ms
  per frame and `live` runs at 3 fps; the lite model takes 22 ms and `live` runs at 20 fps with smoothing.
- `live` on an NVIDIA GPU: the full model up to 1920x1080 (31 ms per frame on an H200, so 30 fps), the lite
  model above that (4K).
The choice is logged with how to override it. Where the lite weights cannot be loaded, `auto` falls
back to the full model with a warning; an explicit `--model lite` is an error instead.
"""

from __future__ import annotations

import logging

from engines.errors import ConfigError

log = logging.getLogger(__name__)

MODELS = ("full", "lite")
CHOICES = ("auto",) + MODELS
REALTIME_JOBS = ("live", "serve")
FULL_LIVE_MAX_PIXELS_GPU = 1920 * 1080


def check_model(model: str) -> str:
    if model not in CHOICES:
        raise ConfigError(f"Unknown model {model!r}: use {', '.join(CHOICES)}")
    return model


def pick_model(model: str, job: str, device_type: str, frame_pixels: int | None = None) -> str:
    """`model` as given, or for "auto" the network that suits `job` on `device_type` (logged)."""
    if check_model(model) != "auto":
        return model
    if job not in REALTIME_JOBS:
        chosen, why = "full", f"best quality for {job}"
    elif device_type == "cpu":
        chosen, why = "lite", "real time on a CPU (the full model runs live at about 3 fps at 640x360 on 2 cores)"
    elif frame_pixels is not None and frame_pixels > FULL_LIVE_MAX_PIXELS_GPU:
        chosen, why = "lite", "real time above 1920x1080 on a GPU"
    else:
        chosen, why = "full", "real time on this GPU up to 1920x1080"
    other = "lite" if chosen == "full" else "full"
    log.info("model auto -> %s (%s); override with --model %s", chosen, why, other)
    return chosen
