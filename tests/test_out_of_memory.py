"""Out of device memory: the stylize step halves the frames per network call and goes on; at one frame it
stops with one error that says what to lower. No GPU here: a real torch engine (the shipped network, on the
CPU) whose network calls raise torch.cuda.OutOfMemoryError above a batch size, as CUDA's allocator does.
The same step on CUDA with torch.cuda.set_per_process_memory_fraction is the GPU check (skipped here).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from engines.backends.torch_backend import TorchEngine
from engines.errors import OutOfMemory
from engines.presets import load_preset
from streamer.config import StreamConfig
from streamer.pipeline import build_loop
from streamer.sinks.video_file import VideoFileSink
from streamer.sources.video_file import VideoFileSource
from streamer.stylize import StylizeStep
from streamer.temporal import TemporalSmoother
from streamer.temporal.settings import TemporalSettings


class SmallMemoryEngine(TorchEngine):
    """The real torch engine, with a device that holds at most `fits` frames per network call."""

    def __init__(self, fits: int):
        super().__init__(device="cpu", precision="fp32")
        self.fits = fits
        self.calls: list[int] = []

    def _check(self, n: int) -> None:
        self.calls.append(n)
        if n > self.fits:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {n * 100} MiB")

    def stylize(self, batch, style, alpha):
        self._check(batch.shape[0])
        return super().stylize(batch, style, alpha)

    def encode(self, batch):
        self._check(batch.shape[0])
        return super().encode(batch)

    def decode(self, feat, mean, std, style, alpha, out_hw):
        self._check(feat.shape[0])
        return super().decode(feat, mean, std, style, alpha, out_hw)


STYLE = load_preset("udnie")


def frames(n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("smoothing", [False, True])
def test_out_of_memory_halves_the_batch_and_gives_the_same_frames(caplog, smoothing):
    def smoother():
        return TemporalSmoother(TemporalSettings(mechanism="stats")) if smoothing else None

    small = SmallMemoryEngine(fits=1)
    step = StylizeStep(small, smoother())
    with caplog.at_level(logging.WARNING):
        got = step(frames(), STYLE, 1.0, [True, False, False, False])
    assert step.max_chunk == 1 and small.calls[:3] == [4, 2, 1]
    assert "ran out of memory at 4 frames per call; going on with 2" in caplog.text
    want = StylizeStep(TorchEngine(device="cpu", precision="fp32"), smoother())(frames(), STYLE, 1.0,
                                                                               [True, False, False, False])
    for g, w in zip(got, want, strict=True):
        assert np.abs(g.astype(int) - w).max() <= 2
    small.calls.clear()
    step(frames(), STYLE, 1.0)  # the next batch starts at the size that worked
    assert set(small.calls) == {1}


def test_out_of_memory_at_one_frame_is_one_error_saying_what_to_lower():
    step = StylizeStep(SmallMemoryEngine(fits=0), None)
    with pytest.raises(OutOfMemory, match=r"single frame of 64x48 .*lower --size, use --model lite"):
        step(frames(2), STYLE, 1.0)


def test_a_conversion_that_runs_out_of_memory_leaves_no_file(make_video, tmp_path):
    src = make_video("in.mp4", frames=6, size=(64, 48), audio=False)
    out = tmp_path / "out.mp4"
    cfg = StreamConfig(size=0, engine={"batch": 4})
    engine = SmallMemoryEngine(fits=0)
    with VideoFileSource(src, strict=True) as source:
        loop = build_loop(cfg, engine, [_named()], source, [VideoFileSink(out)], None)
        with pytest.raises(OutOfMemory):
            loop.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def _named():
    from streamer.stylize import NamedStyle

    return NamedStyle("udnie", STYLE)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_out_of_memory_falls_back_then_says_what_to_lower():
    torch.cuda.set_per_process_memory_fraction(0.003)  # ~0.4 GiB on an H200: a 4K frame does not fit
    try:
        step = StylizeStep(TorchEngine(device="cuda", cuda_graphs=False), None)
        big = [np.zeros((2160, 3840, 3), np.uint8)] * 8
        with pytest.raises(OutOfMemory, match="lower --size"):
            step(big, STYLE, 1.0)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
