"""Temporal smoothing (streamer.temporal) on small synthetic frames, with the real network (the
shipped decoder; a random one where the weights are absent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engines.adain import StyleCode
from engines.backends.torch_backend import TorchEngine
from engines.decoder import DEFAULT_DECODER, load_decoder, random_decoder
from engines.errors import ConfigError, StylestreamError
from engines.graph import StyleGraph
from engines.vgg import load_encoder
from streamer.stylize import StylizeStep
from streamer.temporal import (
    FlowBlender,
    SceneCutDetector,
    StatSmoother,
    TemporalSettings,
    TemporalSmoother,
    blur_numpy,
    blur_torch,
    fused,
    local_mean_numpy,
    local_mean_torch,
    needs_reset,
    thumbnail,
    warp_numpy,
    warp_torch,
)
from streamer.temporal.filters import CONTRAST_DOWN, blur_to_float, padding

H, W = 96, 128
PRESET = Path(__file__).resolve().parents[1] / "engines/presets/starry-night.safetensors"


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    decoder = load_decoder(DEFAULT_DECODER) if Path(DEFAULT_DECODER).is_file() else random_decoder(0)
    return TorchEngine(StyleGraph(load_encoder(), decoder), device="cpu")


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


def texture(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """A stand-in for a stylized frame: coloured blobs about 3 px across."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 1.0)
    return np.clip(128 + t * (60 / t.std()), 0, 255).astype(np.uint8)


def detail_energy(img: np.ndarray) -> float:
    """Mean squared fine detail (what a 1.5 px blur takes away), away from the borders."""
    f = img.astype(np.float32)
    return float(((f - cv2.GaussianBlur(f, (0, 0), 1.5)) ** 2)[8:-8, 8:-8].mean())


def per_frame(engine, style, frame: np.ndarray) -> np.ndarray:
    return engine.download(engine.stylize(engine.upload([frame]), style, 1.0))[0]


def run(smoother: TemporalSmoother, engine, style, frames: list[np.ndarray], batch: int = 1,
        resets: list[bool] | None = None) -> list[np.ndarray]:
    """What the stream loop does: the stylize step, batch by batch."""
    step = StylizeStep(engine, smoother)
    out = []
    for i in range(0, len(frames), batch):
        out += step(frames[i:i + batch], style, 1.0, resets[i:i + batch] if resets else None)
    return out


def mean_step(frames: list[np.ndarray]) -> float:
    """Mean absolute difference between consecutive frames (grey levels)."""
    return float(np.mean([np.abs(a.astype(np.float32) - b).mean() for a, b in zip(frames, frames[1:], strict=False)]))


# -- the whole smoother -------------------------------------------------------------------------------

def test_static_noisy_scene_is_stable_and_not_washed_out(engine, style):
    base = scene(1)
    frames = [noisy(base, i) for i in range(10)]
    plain = [per_frame(engine, style, f) for f in frames]
    sm = TemporalSmoother()
    smooth = run(sm, engine, style, frames, batch=4)
    before, after = mean_step(plain[4:]), mean_step(smooth[4:])
    assert before > 1.0  # the network does flicker on sensor noise
    assert after < 0.35 * before, (before, after)
    assert sm.flow.last_mask_mean > 0.8  # a static scene: the flow is trusted almost everywhere
    # stable, not washed out: close to what the network makes of the scene, with its fine detail
    assert np.abs(smooth[-1].astype(np.float32) - plain[-1]).mean() < 0.5 * np.abs(
        plain[-1].astype(np.float32) - per_frame(engine, style, scene(2))).mean()
    assert detail_energy(smooth[-1]) > 0.93 * np.mean([detail_energy(p) for p in plain[4:]])


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
    assert needs_reset({"seek": True}) and needs_reset({"loop": 1})
    assert not needs_reset({"style": "x"}) and not needs_reset(None)
    base = scene(3)
    frames = [noisy(base, i) for i in range(6)]
    resets = [needs_reset(m) for m in ({}, {}, {}, {}, {"seek": True}, {})]
    sm = TemporalSmoother()
    out = run(sm, engine, style, frames, batch=3, resets=resets)
    expected = [per_frame(engine, style, f) for f in frames]
    assert np.abs(out[4].astype(np.int16) - expected[4]).max() <= 1  # the seek frame: no past
    assert np.abs(out[3].astype(np.int16) - expected[3]).mean() > 0.5  # smoothed before it
    assert np.abs(out[5].astype(np.int16) - expected[5]).mean() > 0.5  # and smoothing again after it
    # the stream loop's own way: reset() before the frame
    sm.reset()
    again = run(sm, engine, style, [frames[1]])
    assert np.abs(again[0].astype(np.int16) - expected[1]).max() <= 1


def test_disabling_passes_through_and_reenabling_starts_fresh(engine, style):
    frames = [noisy(scene(4), i) for i in range(4)]
    sm = TemporalSmoother()
    run(sm, engine, style, frames[:3])
    sm.enabled = False
    assert np.array_equal(StylizeStep(engine, sm)(frames[3:], style, 1.0)[0], per_frame(engine, style, frames[3]))
    img = per_frame(engine, style, frames[3])
    assert sm.smooth(frames[3], img) is img
    sm.enabled = True  # the frames in between were not seen: start over
    out = run(sm, engine, style, [frames[0]])
    assert np.abs(out[0].astype(np.int16) - per_frame(engine, style, frames[0])).max() <= 1


def test_mechanisms_alone(engine, style):
    frames = [noisy(scene(5), i) for i in range(3)]
    flow_only = StylizeStep(engine, TemporalSmoother(TemporalSettings(mechanism="flow")))
    before: list[np.ndarray] = []
    flow_only(frames, style, 1.0, before_flow=before)
    assert all(np.array_equal(b, per_frame(engine, style, f)) for b, f in zip(before, frames, strict=True))
    stats_only = TemporalSmoother(TemporalSettings(mechanism="stats"))
    before.clear()
    y = StylizeStep(engine, stats_only)(frames, style, 1.0, before_flow=before)
    assert all(np.array_equal(a, b) for a, b in zip(y, before, strict=True))  # no flow blending
    assert all(stats_only.smooth(f, im) is im for f, im in zip(frames, y, strict=False))
    off = TemporalSmoother(TemporalSettings(mechanism="off"))
    assert not off.enabled
    off.enabled = True
    assert not off.enabled


def test_the_flow_is_computed_once_per_frame_in_stylize(engine, style, monkeypatch):
    """The step has the smoother compute the batch's flow (on a GPU: while the network runs); smooth() uses it."""
    frames = [noisy(scene(6), i) for i in range(6)]
    sm = TemporalSmoother()
    calls = []
    real = sm.flow.estimate
    monkeypatch.setattr(sm.flow, "estimate", lambda a, b: calls.append(1) or real(a, b))
    run(sm, engine, style, frames, batch=3)
    assert len(calls) == 5  # not for the first frame, once for each other, across the batch boundary
    # a frame the caller dropped between see() and smooth(): the flow is recomputed, not misused
    seen = sm.see(frames[:2])
    sm.estimate_flow(seen)
    y = [per_frame(engine, style, f) for f in frames[:2]]
    calls.clear()
    sm.smooth(frames[1], y[1], seen[1])
    assert len(calls) == 1 and sm.flow.last_mask_mean > 0.5


def test_the_loop_blends_on_its_own_thread_and_gets_the_same_frames(engine, style):
    """On a CPU the loop runs the flow blending (StylizeStep.finish) on a smoother thread, a batch behind
    the network: the output is the same, frame for frame and in order, as calling the step whole."""
    import threading

    from streamer.frame import Frame, StreamInfo
    from streamer.loop import StreamLoop
    from streamer.stylize import NamedStyle

    frames = [noisy(scene(6), i) for i in range(5)] + [noisy(scene(9), i) for i in range(5, 9)]  # a cut at 5
    expected = run(TemporalSmoother(), engine, style, frames, batch=2)

    class Frames:
        info = StreamInfo(W, H, 25.0, name="frames")

        def stop(self):
            pass

        def __iter__(self):
            for i, f in enumerate(frames):
                yield Frame(i, i, i / 25, 0.0, f)

    threads, got = set(), []

    def on_frame(frame):
        threads.update(t.name for t in threading.enumerate())
        got.append(frame.image)

    step = StylizeStep(engine, TemporalSmoother())
    assert step.smooths_on_host
    StreamLoop(Frames(), step, [NamedStyle("s", style)], [], batch=2, progress=False, on_frame=on_frame).run()
    assert "smoother" in threads
    assert len(got) == len(frames) and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))


def test_auto_is_flow_alone_on_a_cpu_and_both_on_a_gpu(engine, style):
    """The default mechanism: on a CPU the statistics EMA would split the network in two halves."""
    settings = TemporalSettings()
    assert settings.mechanism == "auto"
    assert settings.on_device("cpu").mechanism == "flow" and settings.on_device("cuda").mechanism == "both"
    assert TemporalSettings(mechanism="both").on_device("cpu").mechanism == "both"  # asked for: kept
    sm = TemporalSmoother()
    StylizeStep(engine, sm)
    assert not sm.uses_stats and sm.settings.use_flow


# -- (a) statistics ------------------------------------------------------------------------------------

def test_stats_ema_converges_to_the_true_stats_of_a_static_input(engine):
    static = engine.upload([scene(6)])
    _, true_mean, true_std = engine.encode(static)
    _, other_mean, other_std = engine.encode(engine.upload([scene(8)]))
    for noise in (0.0, 0.02):  # plain, and noise-gated (which jumps to another scene at once)
        ema = StatSmoother(0.8, noise)
        ema.update(other_mean, other_std)  # start from another scene's statistics
        start = (ema.mean - true_mean[0]).abs().max().item()
        for _ in range(5):  # 5 batches of 4 frames of the static input
            m, s = ema.update(true_mean.expand(4, -1), true_std.expand(4, -1))
        assert start > 0.05
        assert (m[-1] - true_mean[0]).abs().max().item() <= 0.8 ** 20 * start + 1e-5
        assert torch.allclose(s[-1], true_std[0], atol=0.8 ** 20 * 10)


def test_stats_ema_averages_noise_follows_changes_and_runs_sequentially_over_a_batch():
    gen = torch.Generator().manual_seed(0)
    true_m, true_s = torch.rand(512, generator=gen) + 0.5, torch.rand(512, generator=gen) + 0.5
    # sensor-noise-sized wobble: about 1 % of the std per channel, as measured on noisy frames
    meas_m = true_m + 0.01 * torch.randn(64, 512, generator=gen)
    meas_s = true_s + 0.01 * torch.randn(64, 512, generator=gen)
    batched = StatSmoother(0.8, 0.02)
    out_m = torch.cat([batched.update(meas_m[i:i + 8], meas_s[i:i + 8])[0] for i in range(0, 64, 8)])
    single = StatSmoother(0.8, 0.02)
    seq_m = torch.cat([single.update(meas_m[i:i + 1], meas_s[i:i + 1])[0] for i in range(64)])
    assert torch.allclose(out_m, seq_m)
    raw_err = (meas_m[32:] - true_m).pow(2).mean().sqrt()
    ema_err = (out_m[32:] - true_m).pow(2).mean().sqrt()
    assert ema_err < 0.6 * raw_err  # the gate leaves k ~ 0.6 for noise: sqrt((1 - k) / (1 + k)) = 0.5
    # a real change (the content moved: statistics 20 % off) is followed at once, not averaged in
    m, _ = single.update(true_m[None] * 1.2, true_s[None] * 0.8)
    assert (m[0] - true_m * 1.2).abs().max() < 0.01 * true_m.max()
    plain = StatSmoother(0.8, 0.0)  # without the gate: the old statistics linger
    plain.update(true_m[None], true_s[None])
    m, _ = plain.update(true_m[None] * 1.2, true_s[None] * 0.8)
    assert torch.allclose(m[0], true_m * (0.8 + 0.2 * 1.2))
    cuts = [False] * 8
    cuts[5] = True
    m, _ = StatSmoother(0.8, 0.02).update(meas_m[:8], meas_s[:8], cuts)
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
    m = 3  # the soft edge of the mask
    inside = (slice(y0 + m, y0 + s - m), slice(x0 + m, x0 + s - m))
    far = np.ones((H, W), bool)
    far[y0 - 12:y0 + s + 12, x0 - 12:x0 + s + 12] = False
    far[:4], far[-4:], far[:, :4], far[:, -4:] = False, False, False, False
    old = {"flow_size": 320, "flow_tolerance": 2.0}  # the blender's settings when this test was written
    for fb in (FlowBlender(TemporalSettings(flow_blend=0.7, flow_blend_coarse=0.7, **old)),
               FlowBlender(TemporalSettings(flow_blend=0.7, flow_blend_coarse=0.7, detail_sigma=0, **old))):
        fb(thumbnail(bg, fb.flow_size), prev_out)
        out = fb(thumbnail(with_square, fb.flow_size), cur_out)
        assert np.array_equal(out[inside], cur_out[inside])  # not blended, not altered
        assert np.abs(out[far].astype(np.int16) - cur_out[far]).mean() > 20  # but blended elsewhere
    # the plain blend (no coarse band, no contrast restoration) is exactly b*prev + (1-b)*cur
    blend = 0.7 * prev_out.astype(np.float32) + 0.3 * cur_out
    assert np.abs(out[far] - blend[far]).mean() < 3.0


def test_blending_keeps_the_local_contrast():
    """Two unrelated textures averaged lose contrast (the style washes out); the restoration keeps
    the current output's, and the result still moves towards the previous output."""
    bg = scene(15)
    prev_out, cur_out = texture(1), texture(2)
    results = {}
    for sigma in (0.0, 1.5):
        fb = FlowBlender(TemporalSettings(flow_blend=0.7, flow_blend_coarse=0.9, detail_sigma=sigma, flow_size=320,
                                          flow_tolerance=2.0))
        fb(bg, prev_out)
        results[sigma] = fb(noisy(bg, 1), cur_out)
    e_cur = detail_energy(cur_out)
    assert detail_energy(results[0.0]) < 0.7 * e_cur  # washed out without it
    assert 0.85 * e_cur < detail_energy(results[1.5]) < 1.3 * e_cur
    core = (slice(8, -8), slice(8, -8))
    to_prev = np.abs(results[1.5][core].astype(np.float32) - prev_out[core]).mean()
    assert to_prev < 0.75 * np.abs(cur_out[core].astype(np.float32) - prev_out[core]).mean()


def test_motion_is_compensated():
    """A panning scene, 'stylized' as itself: blending along the flow must not smear it."""
    big = scene(13, H + 40, W + 40)
    frames = [np.ascontiguousarray(big[20:20 + H, 20 - 3 * t:20 - 3 * t + W]) for t in range(5)]
    sm = TemporalSmoother(TemporalSettings(mechanism="flow"))
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


def test_torch_blur_matches_cv2():
    img = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
    for sigma in (1.5, 4.0):
        got = blur_torch(torch.from_numpy(img).permute(2, 0, 1)[None], sigma)[0].permute(1, 2, 0).numpy()
        assert np.abs(got - blur_numpy(img, sigma)).max() < 1e-5
    # the local contrast's window, at reduced resolution; a size that is not a multiple of the reduction
    odd = np.random.default_rng(1).random((61, 83, 2)).astype(np.float32)
    got = local_mean_torch(torch.from_numpy(odd).permute(2, 0, 1)[None], 12.0)[0].permute(1, 2, 0).numpy()
    want = local_mean_numpy(odd, 12.0)
    assert got.shape == want.shape == odd.shape and np.abs(got - want).max() < 1e-5
    assert want.std() < 0.1 * odd.std()  # it is a wide average


@pytest.mark.parametrize("detail_sigma", [1.5, 0.0])
@pytest.mark.parametrize("trim", [(0, 0), (3, 1)])
def test_device_path_matches_the_cpu_path(detail_sigma, trim):
    """The GPU path (tensors, grid_sample) gives the CPU path's result (OpenCV and the fused kernels);
    run here on CPU tensors, with and without the detail restoration, on a size that is a multiple of
    the contrast blocks and one that is not (the padded case, where the upsampled terms are crops)."""
    h, w = H - trim[0], W - trim[1]
    big = scene(14, h + 20, w + 20)
    frames = [np.ascontiguousarray(big[10:10 + h, 10 - 2 * t:10 - 2 * t + w]) for t in range(4)]
    styl = [texture(i)[:h, :w] for i in range(len(frames))]  # views: not contiguous where trimmed
    on_cpu = TemporalSmoother(TemporalSettings(mechanism="flow", detail_sigma=detail_sigma))
    on_dev = TemporalSmoother(TemporalSettings(mechanism="flow", detail_sigma=detail_sigma))
    for f, s in zip(frames, styl, strict=False):
        a = on_cpu.smooth(f, s)
        t = torch.from_numpy(np.ascontiguousarray(s[..., ::-1])).permute(2, 0, 1).float() / 255  # RGB, like y
        b = on_dev.smooth(f, t)
        assert isinstance(b, torch.Tensor) and b.shape == t.shape and b.dtype == t.dtype
        b = (b.permute(1, 2, 0).numpy()[..., ::-1] * 255).round()
        assert np.abs(b - a).mean() < 0.5 and np.abs(b - a).max() <= 3
    assert on_dev.flow.last_mask_mean > 0.6


def test_fused_block_sums_are_the_area_reduction_of_the_padded_image():
    """The fused kernels' block sums equal OpenCV's INTER_AREA reduction of the image padded by
    replication (as local_mean_small_numpy reduces), on a size that is not a multiple of the blocks."""
    rng = np.random.default_rng(3)
    h, w, down = 61, 83, CONTRAST_DOWN
    ph, pw = padding(h, w)

    def area(img):
        padded = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        return cv2.resize(padded, None, fx=1 / down, fy=1 / down, interpolation=cv2.INTER_AREA)

    state = rng.uniform(0, 255, (h, w, 4)).astype(np.float32)  # the float state: BGR and a spare channel
    warped = np.ascontiguousarray(state[..., :3])
    cur = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cur_f = cur.astype(np.float32)
    d, sums = fused.difference(state, cur, down, ph, pw)
    assert np.allclose(d, warped - cur_f)
    assert np.allclose(sums / down ** 2, area(d), atol=1e-3)
    low, cur_low = cv2.GaussianBlur(warped, (0, 0), 1.5), blur_to_float(cur, 1.5)
    assert np.allclose(cur_low, cv2.GaussianBlur(cur_f, (0, 0), 1.5), atol=1e-4)
    energy = fused.detail_energies(warped, low, cur, cur_low, down, ph, pw)
    want = np.dstack([area(((warped - low) ** 2).sum(2)), area(((cur_f - cur_low) ** 2).sum(2))])
    assert np.allclose(energy / down ** 2, want, rtol=1e-4, atol=1e-2)


# -- cuts and settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize("longer", [400, 240])
@pytest.mark.parametrize("hw", [(720, 1280), (1080, 1920), (2160, 3840), (721, 1283), (480, 640), (200, 300)])
def test_thumbnail_has_the_size_and_looks_like_an_area_resize(hw, longer):
    h, w = hw
    img = scene(3, h, w)
    small = thumbnail(img, longer)
    k = min(1.0, longer / max(h, w))
    size = (round(w * k), round(h * k))
    assert small.shape == (size[1], size[0], 3)
    if size == (w, h):
        assert small is img
        return
    area = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    nearest = cv2.resize(img, size, interpolation=cv2.INTER_NEAREST)
    # the test image has detail at the pixel level: any other averaging differs a little, and
    # much less than sampling without averaging (aliasing)
    off = np.abs(small - area).mean()
    assert off < 5.0 and off < 0.5 * np.abs(nearest - area).mean()


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
    for bad in ({"mechanism": "magic"}, {"stat_momentum": 1.0}, {"stat_noise": -1}, {"flow_blend": 1.5},
                {"flow_blend_coarse": -0.1}, {"detail_sigma": 20}, {"flow_size": 8}, {"flow_tolerance": 0},
                {"cut_threshold": 0}, {"flow_preset": "slowest"}, {"photo_threshold": 0},
                {"contrast_sigma": 0.5}):
        with pytest.raises(ConfigError) as e:
            TemporalSettings.checked(**bad)
        assert isinstance(e.value, StylestreamError) and "\n" not in str(e.value)


def test_settings_are_the_config_section():
    from streamer.config import load_config

    s = load_config(None).temporal
    assert s == TemporalSettings()  # one set of defaults: the config's are the smoother's
    assert TemporalSmoother(s).enabled
    assert FlowBlender().blend == s.flow_blend and FlowBlender().fb_tolerance == s.flow_tolerance
