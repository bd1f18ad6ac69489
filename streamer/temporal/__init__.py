"""Temporal smoothing: stylized video that does not flicker, without washing out the style.

    settings.py  TemporalSettings: every setting and its default, once (also the config's `temporal:`)
    filters.py   warp, blur, local mean (numpy and torch twins), the thumbnail
    cuts.py      SceneCutDetector: where to forget the past
    stats.py     (a) StatSmoother: noise-gated EMA of the content statistics
    flow.py      (b) FlowBlender: flow-guided blending with contrast restoration
    smoother.py  TemporalSmoother: the three, in the order the stylize step calls them

How it works and how the defaults were measured: docs/temporal.md.
"""

from streamer.temporal.cuts import SceneCutDetector
from streamer.temporal.filters import (
    blur_numpy,
    blur_torch,
    local_mean_numpy,
    local_mean_torch,
    thumbnail,
    warp_numpy,
    warp_torch,
)
from streamer.temporal.flow import FlowBlender, FlowEstimate
from streamer.temporal.settings import TemporalSettings
from streamer.temporal.smoother import TemporalSmoother, needs_reset
from streamer.temporal.stats import StatSmoother

__all__ = ["FlowBlender", "FlowEstimate", "SceneCutDetector", "StatSmoother", "TemporalSettings",
           "TemporalSmoother", "blur_numpy", "blur_torch", "local_mean_numpy", "local_mean_torch", "needs_reset",
           "thumbnail", "warp_numpy", "warp_torch"]
