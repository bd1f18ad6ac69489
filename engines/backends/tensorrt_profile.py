"""The TensorRT backend's logic that needs neither TensorRT nor a GPU (tested on any machine).

- `make_profile`: one optimisation profile (min, opt, max shapes) covering the configured resolutions
  and batch sizes, per exported part;
- `engine_cache_key`: the file name of a serialised engine, which changes whenever it would have to be
  rebuilt (GPU, compute capability, TensorRT version, precision, profile, ONNX hash);
- `precision_plan`: strongly typed network or BuilderFlag.FP16, per TensorRT major version;
- the profile `stylestream build-engine` last built for (`save_profile_settings`), which later runs use.

The calls into TensorRT itself are in engines.backends.tensorrt_backend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from engines.errors import ConfigError
from engines.export import FEAT_CHANNELS, INPUTS, STYLE_CHANNELS, cache_dir, feat_hw
from engines.files import atomic_write

log = logging.getLogger(__name__)

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]
# (height, width); the first is the optimisation target (the stream config's default size, 16:9).
DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((480, 854), (128, 128), (1080, 1920))
DEFAULT_MAX_BATCH = 4
MIN_SIDE = 8  # three 2x poolings: below this the features would be empty


# -- pure logic (tested without TensorRT) ---------------------------------------------------------


def trt_major(version: str) -> int:
    """'10.3.0.26' -> 10; 0 when the string has no leading number."""
    m = re.match(r"\s*(\d+)", str(version))
    return int(m.group(1)) if m else 0


def parse_resolution(text: str) -> tuple[int, int]:
    """'1280x720' (width x height, as displays are named) -> (720, 1280), tensor order (H, W)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m:
        raise ConfigError(f"Bad resolution {text!r}: write WIDTHxHEIGHT, e.g. 1280x720")
    w, h = int(m.group(1)), int(m.group(2))
    if min(w, h) < MIN_SIDE or max(w, h) > 16384:
        raise ConfigError(f"Resolution {text} out of range: sides must be {MIN_SIDE}..16384")
    return h, w


def _round_down8(x: int) -> int:
    return max(MIN_SIDE, x // 8 * 8)


def _round_up8(x: int) -> int:
    return -(-x // 8) * 8


def make_profile(resolutions: Sequence[tuple[int, int]], max_batch: int = DEFAULT_MAX_BATCH,
                 part: str = "full", opt_batch: int | None = None, feat_channels: int = FEAT_CHANNELS,
                 halvings: int = 3, style_channels: int = STYLE_CHANNELS) -> Profile:
    """(min, opt, max) shape per input of `part` covering every (height, width) in `resolutions`.

    Heights and widths: min = smallest rounded down to a multiple of 8, max = largest rounded up to
    one (a little slack costs nothing and frames a few pixels off still fit), opt = the first
    resolution as it is (TensorRT tunes its kernels there). Batch: 1 .. max_batch, opt = opt_batch
    (default max_batch: batching is for throughput). The decode part's feature input follows from
    the image sizes by the encoder's three ceil-mode poolings.
    """
    if not resolutions:
        raise ConfigError("No resolution given for the TensorRT profile")
    if part not in INPUTS:
        raise ConfigError(f"Unknown part {part!r}: use full, encode or decode")
    if max_batch < 1:
        raise ConfigError(f"max batch must be at least 1, not {max_batch}")
    opt_batch = max_batch if opt_batch is None else opt_batch
    if not 1 <= opt_batch <= max_batch:
        raise ConfigError(f"opt batch {opt_batch} must be between 1 and max batch {max_batch}")
    for h, w in resolutions:
        if min(h, w) < MIN_SIDE:
            raise ConfigError(f"Resolution {w}x{h} too small for the network (sides >= {MIN_SIDE})")
    hs, ws = [r[0] for r in resolutions], [r[1] for r in resolutions]
    images = {
        "min": (_round_down8(min(hs)), _round_down8(min(ws))),
        "opt": tuple(resolutions[0]),
        "max": (_round_up8(max(hs)), _round_up8(max(ws))),
    }
    batches = {"min": 1, "opt": opt_batch, "max": max_batch}

    def shape(name: str, which: str) -> Shape:
        n, (h, w) = batches[which], images[which]
        if name == "content":
            return (n, 3, h, w)
        if name == "feat":
            return (n, feat_channels, *feat_hw(h, w, halvings))
        if name == "alpha":
            return (n,)
        if name.startswith("style_"):
            return (n, style_channels)  # the style code
        return (n, feat_channels)  # the content statistics

    return {name: (shape(name, "min"), shape(name, "opt"), shape(name, "max")) for name in INPUTS[part]}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def engine_cache_key(gpu_name: str, compute_capability: str | tuple[int, int], trt_version: str,
                     precision: str, profile: Profile, onnx_digest: str, part: str = "full") -> str:
    """A file name that changes whenever the engine would have to be rebuilt.

    Readable parts first (part, GPU, sm, TensorRT version, precision), then a hash over all of it,
    the profile and the ONNX hash included.
    """
    if isinstance(compute_capability, tuple):
        compute_capability = f"{compute_capability[0]}.{compute_capability[1]}"
    canon = json.dumps({
        "gpu": gpu_name, "cc": str(compute_capability), "trt": str(trt_version), "precision": precision,
        "profile": {k: [list(s) for s in v] for k, v in sorted(profile.items())}, "onnx": onnx_digest,
        "part": part,
    }, sort_keys=True)
    digest = hashlib.sha256(canon.encode()).hexdigest()[:16]
    sm = str(compute_capability).replace(".", "")
    return f"{part}-{slug(gpu_name)}-sm{sm}-trt{slug(str(trt_version))}-{precision}-{digest}"


def precision_plan(major: int, has_strongly_typed: bool, precision: str) -> tuple[bool, bool]:
    """(create the network STRONGLY_TYPED, set BuilderFlag.FP16) for a TensorRT major version.

    TensorRT 11 removed the precision flags: types come from the graph (the flag is set if the
    enum still has it). 9.x/10.x: strongly typed, so the fp16 graph's explicit casts are obeyed
    (BuilderFlag.FP16 is an error then). Older: weakly typed with the FP16 flag as a fallback.
    """
    if major >= 11:
        return has_strongly_typed, False
    if has_strongly_typed:
        return True, False
    return False, precision == "fp16"


def profile_fits(profile: Profile, name: str, shape: Sequence[int]) -> bool:
    """Whether a tensor of `shape` can be fed to input `name` of an engine built for `profile`."""
    lo, _, hi = profile[name]
    return len(shape) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True))


PROFILE_FILE = "profile.json"


def save_profile_settings(resolutions: Sequence[tuple[int, int]], max_batch: int) -> Path:
    """Remember what `stylestream build-engine` built for; TensorRTEngine uses it by default."""
    make_profile(resolutions, max_batch)  # refuse settings that cannot make a profile
    path = cache_dir("tensorrt") / PROFILE_FILE
    data = {"resolutions": [[int(h), int(w)] for h, w in resolutions], "max_batch": int(max_batch)}
    atomic_write(path, (json.dumps(data) + "\n").encode())
    return path


def load_profile_settings() -> tuple[tuple[tuple[int, int], ...], int]:
    """(resolutions, max batch) saved by the last build-engine, else the defaults."""
    path = cache_dir("tensorrt") / PROFILE_FILE
    if not path.is_file():
        return DEFAULT_RESOLUTIONS, DEFAULT_MAX_BATCH
    try:
        data = json.loads(path.read_text())
        resolutions = tuple((int(h), int(w)) for h, w in data["resolutions"])
        max_batch = int(data["max_batch"])
        make_profile(resolutions, max_batch)
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        log.warning("ignoring %s (%s); using the default TensorRT profile", path, e)
        return DEFAULT_RESOLUTIONS, DEFAULT_MAX_BATCH
    return resolutions, max_batch
