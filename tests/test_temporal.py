"""Temporal smoothing (streamer.temporal) on small synthetic frames, with the real network (random decoder)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.adain import StyleCode
from engines.backends.torch_backend import TorchEngine
from engines.decoder import random_decoder
from engines.errors import ConfigError, StylestreamError
from engines.graph import StyleGraph
from engines.vgg import load_encoder
from streamer.temporal import (
    FlowBlender,
    SceneCutDetector,
    StatSmoother,
    TemporalSettings,
    TemporalSmoother,
    warp_numpy,
    warp_torch,
)

H, W = 96, 128
PRESET = Path(__file__).resolve().parents[1] / "engines/presets/starry-night.safetensors"


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return TorchEngine(StyleGraph(load_encoder(), random_decoder(0)), device="cpu")


@pytest.fixture(scope="module")
def style(engine) -> StyleCode:
    if PRESET.is_file():
        return StyleCode.load(PRESET)
    torch.manual_seed(0)
    return engine.encode_style(torch.rand(1, 3, 64, 64), size=None, source="noise")


def scene(seed: int, h: int = H, w: int = W, low=(30, 30, 30), high=(220, 220, 220)) -> np.ndarray:
    """A textured BGR image with structure at several scales (something optical flow can lock on to);
    the coarse colours are drawn per channel from [low, high] (its palette)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.uniform(low, high, (h // 16, w // 16, 3)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 40, (h, w, 3)).astype(np.float32), (0, 0), 1.2)
    img = np.clip(coarse + fine, 0, 255).astype(np.uint8)
    for _ in range(6):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(4, 14)), c, -1)
    return img


def noisy(img: np.ndarray, seed: int, sigma: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def per_frame(engine, style, frame: np.ndarray) -> np.ndarray:
    return engine.download(engine.stylize(engine.upload([frame]), style, 1.0))[0]


def run(smoother: TemporalSmoother, engine, style, frames: list[np.ndarray], batch: int = 1,
        resets: list[bool] | None = None) -> list[np.ndarray]:
    """What the stream loop does on the CPU: stylize a batch, download, smooth frame by frame."""
    out = []
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        r = resets[i:i + batch] if resets else None
        y = smoother.stylize(engine, chunk, engine.upload(chunk), style, 1.0, resets=r)
        images = engine.download(y)
        pairs = enumerate(zip(chunk, images, strict=True))
        out += [smoother.smooth(f, im, reset=bool(r and r[j])) for j, (f, im) in pairs]
    return out


def mean_step(frames: list[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames (grey levels)."""
    return float(np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(frames, frames[1:], strict=False)]))


# -- the whole smoother -------------------------------------------------------------------------------

def test_static_noisy_scene_is_stable(engine, style):
    base = scene(1)
    frames = [noisy(base, i) for i in range(8)]
    plain = [per_frame(engine, style, f) for f in frames]
    smooth = run(TemporalSmoother(), engine, style, frames, batch=4)
    before, after = mean_step(plain[3:]), mean_step(smooth[3:])
    assert before > 1.0  # the network does flicker on sensor noise
    assert after < 0.4 * before, (before, after)
    # stable, not washed out: the smoothed frame stays close to what the network makes of the scene
    assert np.abs(smooth[-1].astype(np.float32) - plain[-1]).mean() < 0.5 * np.abs(
        plain[-1].astype(np.float32) - scene(2)).mean()


def test_scene_cut_resets_to_the_per_frame_output(engine, style):
    a, b = scene(1), scene(7, low=(120, 60, 0), high=(255, 160, 90))
    frames = [noisy(a, i) for i in range(5)] + [noisy(b, 9), noisy(b, 10)]
    sm = TemporalSmoother()
    out = run(sm, engine, style, frames, batch=3)  # the cut falls inside a batch (frames 3, 4, 5)
    assert sm.cuts == 1
    expected = per_frame(engine, style, frames[5])
    assert np.abs(out[5].astype(np.int16) - expected).max() <= 1  # nothing of scene a left
    # and before the cut the smoother did change the output (so the check above means something)
    assert np.abs(out[4].astype(np.int16) - per_frame(engine, style, frames[4])).mean() > 1.0


def test_seek_and_loop_meta_reset(engine, style):
    assert TemporalSmoother.needs_reset({"seek": True}) and TemporalSmoother.needs_reset({"loop": 1})
    assert not TemporalSmoother.needs_reset({"style": "x"}) and not TemporalSmoother.needs_reset(None)
    base = scene(3)
    frames = [noisy(base, i) for i in range(6)]
    resets = [TemporalSmoother.needs_reset(m) for m in ({}, {}, {}, {}, {"seek": True}, {})]
    sm = TemporalSmoother()
    out = run(sm, engine, style, frames, batch=3, resets=resets)
    expected = [per_frame(engine, style, f) for f in frames]
    assert np.abs(out[4].astype(np.int16) - expected[4]).max() <= 1  # the seek frame: no past
    assert np.abs(out[3].astype(np.int16) - expected[3]).mean() > 0.5  # smoothed before it
    # the stream loop's own way: reset() before the frame
    sm.reset()
    again = run(sm, engine, style, [frames[1]])
    assert np.abs(again[0].astype(np.int16) - expected[1]).max() <= 1


def test_disabling_passes_through_and_reenabling_starts_fresh(engine, style):
    frames = [noisy(scene(4), i) for i in range(4)]
    sm = TemporalSmoother()
    run(sm, engine, style, frames[:3])
    sm.enabled = False
    x = engine.upload(frames[3:])
    assert torch.equal(sm.stylize(engine, frames[3:], x, style, 1.0), engine.stylize(x, style, 1.0))
    img = per_frame(engine, style, frames[3])
    assert sm.smooth(frames[3], img) is img
    sm.enabled = True  # the frames in between were not seen: start over
    out = run(sm, engine, style, [frames[0]])
    assert np.abs(out[0].astype(np.int16) - per_frame(engine, style, frames[0])).max() <= 1


def test_mechanisms_alone(engine, style):
    frames = [noisy(scene(5), i) for i in range(3)]
    x = engine.upload(frames)
    flow_only = TemporalSmoother(TemporalSettings(mechanism="flow"))
    assert torch.equal(flow_only.stylize(engine, frames, x, style, 1.0), engine.stylize(x, style, 1.0))
    stats_only = TemporalSmoother(TemporalSettings(mechanism="stats"))
    y = engine.download(stats_only.stylize(engine, frames, x, style, 1.0))
    assert all(stats_only.smooth(f, im) is im for f, im in zip(frames, y, strict=False))
    off = TemporalSmoother(TemporalSettings(mechanism="off"))
    assert not off.enabled
    off.enabled = True
    assert not off.enabled


# -- (a) statistics ------------------------------------------------------------------------------------

def test_stats_ema_converges_to_the_true_stats_of_a_static_input(engine):
    static = engine.upload([scene(6)])
    _, true_mean, true_std = engine.encode(static)
    _, other_mean, other_std = engine.encode(engine.upload([scene(8)]))
    ema = StatSmoother(0.8)
    ema.update(other_mean, other_std)  # start from another scene's statistics
    start = (ema.mean - true_mean[0]).abs().max().item()
    for _ in range(5):  # 5 batches of 4 frames of the static input
        m, s = ema.update(true_mean.expand(4, -1), true_std.expand(4, -1))
    assert start > 0.05
    assert (m[-1] - true_mean[0]).abs().max().item() <= 0.8 ** 20 * start + 1e-5
    assert torch.allclose(s[-1], true_std[0], atol=0.8 ** 20 * 10)


def test_stats_ema_averages_out_noise_and_runs_sequentially_over_a_batch():
    gen = torch.Generator().manual_seed(0)
    true_m, true_s = torch.rand(512, generator=gen), torch.rand(512, generator=gen) + 0.5
    meas_m = true_m + 0.1 * torch.randn(64, 512, generator=gen)
    meas_s = true_s + 0.1 * torch.randn(64, 512, generator=gen)
    batched = StatSmoother(0.8)
    out_m = torch.cat([batched.update(meas_m[i:i + 8], meas_s[i:i + 8])[0] for i in range(0, 64, 8)])
    single = StatSmoother(0.8)
    seq_m = torch.cat([single.update(meas_m[i:i + 1], meas_s[i:i + 1])[0] for i in range(64)])
    assert torch.allclose(out_m, seq_m)
    raw_err = (meas_m[32:] - true_m).pow(2).mean().sqrt()
    ema_err = (out_m[32:] - true_m).pow(2).mean().sqrt()
    assert ema_err < 0.45 * raw_err  # theory: sqrt((1 - k) / (1 + k)) = 0.33
    cuts = [False] * 8
    cuts[5] = True
    m, _ = StatSmoother(0.8).update(meas_m[:8], meas_s[:8], cuts)
    assert torch.equal(m[5], meas_m[5]) and not torch.equal(m[4], meas_m[4])


# -- (b) flow --------------------------------------------------------------------------------------------

def test_occluded_region_keeps_the_current_output():
    bg = scene(11)
    with_square = bg.copy()
    y0, x0, s = 32, 48, 32
    with_square[y0:y0 + s, x0:x0 + s] = scene(12, s, s)  # appears without moving: no flow sees it
    rng = np.random.default_rng(0)
    prev_out = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    cur_out = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    fb = FlowBlender(blend=0.7)
    fb(fb.thumbnail(bg), prev_out)
    out = fb(fb.thumbnail(with_square), cur_out)
    m = 3  # the soft edge of the mask
    inside = (slice(y0 + m, y0 + s - m), slice(x0 + m, x0 + s - m))
    assert np.array_equal(out[inside], cur_out[inside])
    # the static background around it is blended: out = 0.7 prev + 0.3 cur there
    far = np.ones((H, W), bool)
    far[y0 - 12:y0 + s + 12, x0 - 12:x0 + s + 12] = False
    far[:4], far[-4:], far[:, :4], far[:, -4:] = False, False, False, False
    blend = 0.7 * prev_out.astype(np.float32) + 0.3 * cur_out
    assert np.abs(out[far] - blend[far]).mean() < 3.0


def test_motion_is_compensated():
    """A panning scene, 'stylized' as itself: blending along the flow must not smear it."""
    big = scene(13, H + 40, W + 40)
    frames = [np.ascontiguousarray(big[20:20 + H, 20 - 3 * t:20 - 3 * t + W]) for t in range(5)]
    sm = TemporalSmoother(TemporalSettings(mechanism="flow", flow_blend=0.7))
    out = [sm.smooth(f, f.copy()) for f in frames]
    core = (slice(8, H - 8), slice(16, W - 8))
    err = np.abs(out[-1][core].astype(np.float32) - frames[-1][core]).mean()
    naive = np.abs(0.7 * frames[-2][core].astype(np.float32) + 0.3 * frames[-1][core] - frames[-1][core]).mean()
    assert sm.flow.last_mask_mean > 0.6  # the flow was trusted over most of the frame
    assert err < 0.25 * naive, (err, naive)


def test_torch_warp_matches_cv2_remap():
    h, w = 40, 56
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([4 * np.sin(xx / 9) + 2, 3 * np.cos(yy / 7) - 1], -1).astype(np.float32)  # leaves the frame
    ref = warp_numpy(img, flow)
    got = warp_torch(torch.from_numpy(img).permute(2, 0, 1), torch.from_numpy(flow).permute(2, 0, 1))
    assert got.shape == (3, h, w)
    assert np.abs(got.permute(1, 2, 0).numpy() - ref).max() < 2e-3
    batched = warp_torch(torch.from_numpy(img).permute(2, 0, 1)[None].repeat(2, 1, 1, 1),
                         torch.from_numpy(flow).permute(2, 0, 1)[None].repeat(2, 1, 1, 1))
    assert torch.allclose(batched[1], got)


def test_device_path_matches_the_cpu_path():
    """The GPU path (tensors, grid_sample) gives the CPU path's result; run here on CPU tensors."""
    big = scene(14, H + 20, W + 20)
    frames = [np.ascontiguousarray(big[10:10 + H, 10 - 2 * t:10 - 2 * t + W]) for t in range(4)]
    rng = np.random.default_rng(1)
    styl = [cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 1.5) for _ in frames]
    on_cpu = TemporalSmoother(TemporalSettings(mechanism="flow"))
    on_dev = TemporalSmoother(TemporalSettings(mechanism="flow"))
    for f, s in zip(frames, styl, strict=False):
        a = on_cpu.smooth(f, s)
        t = torch.from_numpy(np.ascontiguousarray(s[..., ::-1])).permute(2, 0, 1).float() / 255  # RGB, like y
        b = on_dev.smooth(f, t)
        assert isinstance(b, torch.Tensor) and b.shape == t.shape and b.dtype == t.dtype
        b = (b.permute(1, 2, 0).numpy()[..., ::-1] * 255).round()
        assert np.abs(b - a).mean() < 0.5 and np.abs(b - a).max() <= 3


# -- cuts and settings ------------------------------------------------------------------------------------

def test_scene_cut_detector():
    det = SceneCutDetector(0.3)
    a = scene(20, 180, 320)
    b = scene(21, 180, 320, low=(120, 60, 0), high=(255, 160, 90))  # another place: a bluer palette
    assert det(a) is False  # the first frame is not a cut
    assert det(noisy(a, 1, 6.0)) is False
    assert det(cv2.convertScaleAbs(a, alpha=0.8)) is False  # lighting dims
    shifted = np.roll(a, 24, axis=1)  # a fast pan
    assert det(shifted) is False
    assert det(b) is True
    assert det(noisy(b, 2)) is False
    dark, bright = np.full((180, 320, 3), 40, np.uint8), np.full((180, 320, 3), 200, np.uint8)
    det(noisy(dark, 3))
    assert det(noisy(bright, 4)) is True  # grey to grey: same (empty) hue histogram, caught by the level


def test_settings_are_validated_with_a_message():
    for bad in ({"mechanism": "magic"}, {"stat_momentum": 1.0}, {"flow_blend": 1.5}, {"flow_size": 8},
                {"cut_threshold": 0}, {"flow_preset": "slowest"}):
        with pytest.raises(ConfigError) as e:
            TemporalSettings(**bad)
        assert isinstance(e.value, StylestreamError) and "\n" not in str(e.value)


def test_settings_take_the_config_section():
    from streamer.config import TemporalConfig

    s = TemporalSettings(**TemporalConfig().model_dump())
    assert TemporalSmoother(s).enabled
