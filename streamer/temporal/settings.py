"""The smoother's settings: the one place their defaults and limits are written.

`TemporalSettings` is also the `temporal:` section of the YAML config (streamer.config), so the
config, the command line, the benchmarks and the smoother share these defaults. How they were chosen
(measured with benchmarks/flicker.py): docs/temporal.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engines.errors import ConfigError

Mechanism = Literal["auto", "both", "stats", "flow", "off"]


class TemporalSettings(BaseModel):
    """How the smoother works.

    mechanism:     auto (the default) is both where the network runs on a GPU and flow alone on a CPU:
                   the statistics EMA needs the network in two halves, which on a CPU cost about twice
                   the whole graph, and it removed no measured flicker (docs/temporal.md).
    stat_momentum: weight of the past in the EMA of the content statistics (0 = off).
    stat_noise:    the EMA's noise gate: a mean relative change of the statistics of this size
                   lowers the momentum to 1/e of it (0 = a plain EMA).
    flow_blend:    weight b of the warped previous output's fine texture where the flow is
                   reliable (0 = flow blending off).
    flow_blend_coarse: the same weight for structure coarser than flow.COARSE_SIGMA (colour, shading).
    detail_sigma:  scale (px of the output) below which the blend's detail is restored to the
                   current output's local contrast (0 = off).
    contrast_sigma: the window (px of the output, Gaussian sigma) that local contrast is measured
                   over for that restoration.
    flow_size:     longer side (px) of the thumbnails the flow is computed on.
    flow_preset:   OpenCV DIS preset.
    flow_tolerance: constant term of the forward-backward check, in squared thumbnail pixels.
    photo_threshold: largest grey-level difference (0..1) between the current input and the
                   warped previous input for the flow to count as explaining the pixel.
    cut_threshold: Bhattacharyya distance of H-S histograms above which a frame starts a new scene.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = True
    mechanism: Mechanism = "auto"
    stat_momentum: float = Field(default=0.8, ge=0, lt=1)
    stat_noise: float = Field(default=0.02, ge=0)
    flow_blend: float = Field(default=0.6, ge=0, le=1)
    flow_blend_coarse: float = Field(default=0.9, ge=0, le=1)
    detail_sigma: float = Field(default=1.5, ge=0, le=16)
    contrast_sigma: float = Field(default=12.0, ge=1, le=64)
    flow_size: int = Field(default=240, ge=32, le=4096)
    flow_preset: Literal["ultrafast", "fast", "medium"] = "fast"
    flow_tolerance: float = Field(default=8.0, gt=0)
    photo_threshold: float = Field(default=0.08, gt=0, le=1)
    cut_threshold: float = Field(default=0.35, gt=0)

    @classmethod
    def checked(cls, **values) -> TemporalSettings:
        """Settings from keyword values outside a config file (benchmarks, tests): a bad value is a
        one-line ConfigError naming the key, its limits and its default. (In a config file the same
        checks run, and load_config names the file.)"""
        try:
            return cls(**values)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            field = cls.model_fields.get(key)
            default = f"; the default is {field.default!r}" if field is not None else ""
            raise ConfigError(f"temporal.{key}: {err['msg']} (got {err.get('input')!r}){default}") from None

    def on_device(self, device_type: str) -> TemporalSettings:
        """These settings with `auto` resolved for the device the network runs on."""
        if self.mechanism != "auto":
            return self
        return self.model_copy(update={"mechanism": "both" if device_type == "cuda" else "flow"})

    @property
    def active(self) -> bool:
        return self.enabled and self.mechanism != "off"

    @property
    def use_stats(self) -> bool:
        return self.mechanism in ("auto", "both", "stats") and self.stat_momentum > 0  # auto: as on a GPU

    @property
    def use_flow(self) -> bool:
        return self.mechanism in ("auto", "both", "flow") and max(self.flow_blend, self.flow_blend_coarse) > 0
