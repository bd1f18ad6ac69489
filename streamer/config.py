"""Configuration: pydantic models that YAML files in configs/ load into.

Precedence: built-in defaults < the YAML file (-c) < command-line options. Unknown keys and bad
values are a one-line ConfigError naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engines.errors import ConfigError
from engines.images import MIN_SIDE
from streamer.alpha import ALPHA_MAX, ALPHA_MIN
from streamer.temporal.settings import TemporalSettings


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


M = TypeVar("M", bound=Strict)


class EngineConfig(Strict):
    model: Literal["auto", "full", "lite"] = "auto"  # which network; auto: engines.models.pick_model
    backend: Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"] = "auto"
    device: str = "auto"                         # auto | cpu | cuda | cuda:1
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    decoder: Path | None = None                  # the model's weights; default: the shipped ones
    batch: int = Field(default=0, ge=0, le=64)   # frames per engine call for files; 0 = pick for the device
    cuda_graphs: bool = True
    compile: bool = False
    threads: int = Field(default=0, ge=0, le=256)  # CPU threads for the network; 0 = the backend's default (every core)


class VideoOutputConfig(Strict):
    codec: str = "libx264"
    # x264 veryfast at crf 17: the PSNR of faster at crf 18 for 0.6x its CPU, files 6% larger (models.md)
    crf: int = Field(default=17, ge=0, le=63)
    preset: str = "veryfast"
    audio: bool = True
    overwrite: bool = False


class MjpegConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    quality: int = Field(default=85, ge=10, le=100)


class VcamConfig(Strict):
    device: str | None = None
    fps: float | None = None


class LiveConfig(Strict):
    source: str = "0"                  # camera index, URL, video file (played as a camera) or image folder
    loop: bool = True                  # files/folders: loop forever
    camera_width: int | None = None
    camera_height: int | None = None
    camera_fps: float | None = None
    window: bool = True
    vcam: VcamConfig | None = None
    mjpeg: MjpegConfig | None = None
    record: Path | None = None         # also write the stylized stream to a video file
    fps: float | None = Field(default=None, gt=0, le=240)  # the frame rate to hold; None: the source's
    adaptive_size: bool = True         # lower the network's working size to hold it (--size fixes the size)


class RayConfig(Strict):
    """`convert` on a Ray cluster (streamer.cluster): present = on. See the README's cluster section."""

    address: str | None = None         # None: RAY_ADDRESS when set, else a local Ray; "host:6379", "ray://host:10001"
    cpus_per_worker: int = Field(default=2, ge=1)        # CPU-only nodes: one worker per this many cores
    segment_seconds: float = Field(default=30.0, gt=0)   # long files are cut at keyframes about this often
    warmup_frames: int = Field(default=32, ge=0)         # frames before a segment that warm the smoother up
    retries: int = Field(default=2, ge=0)                # a unit whose worker died is run again this often


class StreamConfig(Strict):
    styles: list[str] = Field(default_factory=lambda: ["starry-night"])
    style_weights: list[float] | None = None
    alpha: float = Field(default=1.0, ge=ALPHA_MIN, le=ALPHA_MAX)
    preserve_color: bool = False
    size: int = Field(default=480, ge=0, le=4320)  # shorter side the network sees (downscale only); 0 = native
    style_size: int = Field(default=512, ge=64, le=4096)
    max_pixels: int = Field(default=50_000_000, gt=0)
    stats: bool = False                # one JSON line per second on stdout
    engine: EngineConfig = Field(default_factory=EngineConfig)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)  # its defaults: streamer.temporal.settings
    video: VideoOutputConfig = Field(default_factory=VideoOutputConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    ray: RayConfig | None = None       # convert on a Ray cluster

    @field_validator("size", mode="before")
    @classmethod
    def _size_is_a_number(cls, v: Any) -> Any:
        if isinstance(v, bool):  # YAML `size: true` would otherwise read as 1
            raise ValueError("size is a number of pixels (0 = native), not true/false")
        return v

    @field_validator("size")
    @classmethod
    def _size_the_network_takes(cls, v: int) -> int:
        if 0 < v < MIN_SIDE:
            raise ValueError(f"the network needs at least {MIN_SIDE} px; use 0 (native) or at least {MIN_SIDE}")
        return v

    @field_validator("styles")
    @classmethod
    def _some_style(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one style")
        return v


def _describe(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}'"
    msg = e["msg"].removeprefix("Value error, ")
    return f"{source}: bad value for '{key}': {msg} (got {e.get('input')!r})"


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> StreamConfig:
    """Defaults, then the YAML file, then `overrides` (nested dict of CLI options that were given)."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"Cannot read config {path}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start} is 0x{e.object[e.start]:02x}); "
                              f"save it as UTF-8 YAML") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ConfigError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        data = loaded
    if overrides:
        data = deep_merge(data, overrides)
        source = f"{source} + command line" if path else "command line"
    return validated(StreamConfig, data, source)


def validated(model: type[M], data: dict[str, Any], source: str = "command line") -> M:
    """`model` made from `data`; a bad value is a one-line ConfigError naming the key."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(e, source)) from None
