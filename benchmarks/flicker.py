"""Flicker benchmark: how much temporal smoothing removes, what it costs in style and in time.

For each dev video (../shared/data/dev/video/{cats,fox}) and a few dev styles, four modes:
per-frame (no smoothing), stats (EMA of the content statistics), flow (flow-guided blending)
and both (the default). For each:

- warping error (Lai et al. 2018): the input frames' optical flow, computed here with
  Farneback at full resolution (not the smoother's own DIS flow, so it does not grade itself
  with its own tool), occlusions masked by the forward-backward check of Ruder et al. (2016),
      E_warp = mean_t  sum_x M_t(x) ||O_t(x) - warp(O_{t-1})(x)||^2 / sum_x M_t(x),
  RGB in [0, 1], the norm over the three channels;
- style loss (AdaIN's): sum over relu1_1..relu4_1 of the MSE of per-channel mean and of std
  between output frame and style image (on every --style-every'th frame);
- milliseconds the smoothing adds per frame (median, the smoother's own work: cut detection,
  statistics EMA, flow, warp, blend), next to the network's own time per frame.

Also the smoother's cost at 1280x720 (CPU path; device path too when there is a GPU), and with
--sweep the warping error / style loss of other momenta and blend weights (to choose defaults).

    python benchmarks/flicker.py [--random-decoder | --decoder PATH] [--size 360] [--styles 2]
                                 [--device auto] [--sweep] [--video]

Targets: warping error <= 0.5x per-frame, style loss <= 1.1x per-frame, <= 15% of the frame time
on the CPU, <= 5 ms at 720p on a GPU. Prints a table, writes JSON (with the machine) and, with
--video, side-by-side MP4s (input | per-frame | smoothed) to look for ghost trails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.adain import mean_std  # noqa: E402
from engines.backends.base import STYLE_SIZE  # noqa: E402
from engines.backends.torch_backend import TorchEngine  # noqa: E402
from engines.decoder import DEFAULT_DECODER, load_decoder, random_decoder, read_manifest  # noqa: E402
from engines.errors import StylestreamError  # noqa: E402
from engines.graph import StyleGraph  # noqa: E402
from engines.images import list_images, load_image_tensor  # noqa: E402
from engines.machine import machine_info  # noqa: E402
from engines.vgg import load_encoder  # noqa: E402
from streamer.temporal import TemporalSettings, TemporalSmoother, warp_numpy  # noqa: E402

SEQUENCES = ("cats", "fox")
MODES = ("per-frame", "stats", "flow", "both")


# -- ground truth: flow and occlusion on the input frames ---------------------------------------

def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow with a(x) ~ b(x + flow(x)), full resolution."""
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=5, winsize=15, iterations=5,
                                        poly_n=7, poly_sigma=1.5, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def dis_medium(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)


def eval_flows(frames: list[np.ndarray], method: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """For t >= 1: (flow t -> t-1, non-occlusion mask of frame t), Ruder et al.'s check."""
    calc = farneback if method == "farneback" else dis_medium
    gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    out = []
    for prev, cur in zip(gray, gray[1:], strict=False):
        back = calc(cur, prev)
        fwd = calc(prev, cur)
        f_at = warp_numpy(fwd, back)
        err = ((f_at + back) ** 2).sum(-1)
        ok = err <= 0.01 * ((f_at ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5
        out.append((back, ok.astype(np.float32)))
    return out


def warping_error(frames: list[np.ndarray], flows: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Lai et al. 2018 on uint8 frames (any channel order), RGB scaled to [0, 1]."""
    errs = []
    for t in range(1, len(frames)):
        back, mask = flows[t - 1]
        cur = frames[t].astype(np.float32) / 255
        warped = warp_numpy(frames[t - 1].astype(np.float32) / 255, back)
        d2 = ((cur - warped) ** 2).sum(-1)
        errs.append(float((d2 * mask).sum() / max(mask.sum(), 1.0)))
    return float(np.mean(errs))


# -- style loss -------------------------------------------------------------------------------------

def bgr_to_tensor(img: np.ndarray, device: torch.device) -> torch.Tensor:
    rgb = np.ascontiguousarray(img[..., ::-1])
    return torch.from_numpy(rgb).to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255)


@torch.inference_mode()
def style_loss(encoder, frames: list[np.ndarray], style_stats, device: torch.device, every: int) -> float:
    losses = []
    for img in frames[::every]:
        feats = encoder.features(bgr_to_tensor(img, device))
        total = 0.0
        for f, (sm, ss) in zip(feats, style_stats, strict=True):
            m, s = mean_std(f)
            total += torch.mean((m - sm) ** 2).item() + torch.mean((s - ss) ** 2).item()
        losses.append(total)
    return float(np.mean(losses))


# -- running the modes ----------------------------------------------------------------------------

class EncodeOnce:
    """Stands in for the engine with encode() results computed once per frame, so the encoder runs
    once however many smoothing settings are compared; decode() is the real engine's."""

    def __init__(self, engine: TorchEngine):
        self.engine = engine
        self.device = engine.device
        self._cache: dict[int, tuple] = {}

    def put(self, batch: torch.Tensor, encoded: tuple) -> None:
        self._cache[id(batch)] = (batch, encoded)

    def encode(self, batch: torch.Tensor):
        return self._cache[id(batch)][1]

    def decode(self, *args, **kwargs):
        return self.engine.decode(*args, **kwargs)

    def stylize(self, batch, style, alpha):
        feat, mean, std = self.encode(batch)
        return self.decode(feat, mean, std, style, alpha, tuple(batch.shape[-2:]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_smoother(engine, groups, style, alpha: float, settings: TemporalSettings,
                 stylize: bool) -> tuple[list[np.ndarray], list[np.ndarray], TemporalSmoother]:
    """The stream loop's calls: (stylize ->) [smooth on the device] -> download [-> smooth on the CPU].

    Returns the outputs before and after smooth() (before = the stylize() result)."""
    sm = TemporalSmoother(settings, profile=True)
    before, after = [], []
    for frames, batch in groups:
        if stylize:
            y = sm.stylize(engine, frames, batch, style, alpha)
        else:
            y = engine.stylize(batch, style, alpha)
        raw = engine.engine.download(y)
        before += raw
        if y.device.type == "cuda":
            y = torch.stack([sm.smooth(f, yi) for f, yi in zip(frames, y, strict=True)])
            after += engine.engine.download(y)
        else:
            after += [sm.smooth(f, im) for f, im in zip(frames, raw, strict=True)]
    return before, after, sm


def per_frame(engine: EncodeOnce, groups, style, alpha: float) -> tuple[list[np.ndarray], float]:
    outs, ms = [], []
    for frames, batch in groups:
        sync(engine.device)
        t0 = time.perf_counter()
        y = engine.stylize(batch, style, alpha)
        sync(engine.device)
        ms.append((time.perf_counter() - t0) * 1000 / len(frames))
        outs += engine.engine.download(y)
    return outs, float(np.median(ms))


def encode_all(engine: TorchEngine, frames: list[np.ndarray], batch: int) -> tuple[EncodeOnce, list, float]:
    cached = EncodeOnce(engine)
    groups, ms = [], []
    for i in range(0, len(frames), batch):
        chunk = frames[i:i + batch]
        x = engine.upload(chunk)
        sync(engine.device)
        t0 = time.perf_counter()
        cached.put(x, engine.encode(x))
        sync(engine.device)
        ms.append((time.perf_counter() - t0) * 1000 / len(chunk))
        groups.append((chunk, x))
    return cached, groups, float(np.median(ms))


# -- inputs -----------------------------------------------------------------------------------------

def load_sequence(folder: Path, size: int, limit: int | None) -> list[np.ndarray]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    frames = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise StylestreamError(f"cannot read {p}")
        h, w = img.shape[:2]
        k = size / min(h, w) if size else 1.0
        wh = (max(2, round(w * k / 2) * 2), max(2, round(h * k / 2) * 2))
        frames.append(cv2.resize(img, wh, interpolation=cv2.INTER_AREA) if wh != (w, h) else img)
    return frames


def write_video(path: Path, columns: list[list[np.ndarray]], fps: float = 15.0) -> None:
    import av

    h, w = columns[0][0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=round(fps), options={"crf": "18"})
        stream.width, stream.height, stream.pix_fmt = w * len(columns), h, "yuv420p"
        for row in zip(*columns, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.hstack(row)), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def timing_720p(frames: list[np.ndarray], settings: TemporalSettings, device: torch.device) -> dict:
    """The smoother's cost per 1280x720 frame (input frames stand in for stylized ones: the cost
    does not depend on the content), CPU path and, on a GPU, the device path."""
    big = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR) for f in frames]
    result = {}
    sm = TemporalSmoother(settings, profile=True)
    for f in big:
        sm.smooth(f, f)
    result["cpu_path_ms"] = round(float(np.median(list(sm.smooth_ms)[1:])), 2)
    if device.type == "cuda":
        sm = TemporalSmoother(settings, profile=True)
        for f in big:
            y = torch.from_numpy(f).to(device).permute(2, 0, 1).half().div_(255)
            sm.smooth(f, y)
        result["device_path_ms"] = round(float(np.median(list(sm.smooth_ms)[1:])), 2)
    return result


# -- main -------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "../shared/data/dev")
    ap.add_argument("--decoder", type=Path, default=None, help="decoder weights (default: the shipped one)")
    ap.add_argument("--random-decoder", action="store_true",
                    help="an untrained decoder (development only; results are labelled as such)")
    ap.add_argument("--size", type=int, default=360, help="shorter side of the frames")
    ap.add_argument("--styles", type=int, default=2, help="how many dev styles")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=4, help="frames per engine call (the EMA runs across it)")
    ap.add_argument("--frames", type=int, default=None, help="at most this many frames per video")
    ap.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--eval-flow", choices=("farneback", "dis-medium"), default="farneback")
    ap.add_argument("--style-every", type=int, default=4, help="style loss on every n-th frame")
    ap.add_argument("--momentum", type=float, default=None, help="override the default stat momentum")
    ap.add_argument("--blend", type=float, default=None, help="override the default flow blend")
    ap.add_argument("--sweep", action="store_true", help="also try other momenta and blend weights")
    ap.add_argument("--video", action="store_true", help="write side-by-side MP4s (input | per-frame | both)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    video_root = args.data / "video"
    if not all((video_root / s).is_dir() for s in args.sequences) or not (args.data / "style").is_dir():
        sys.exit(f"no dev videos at {video_root} (../shared/data/dev/video/{{cats,fox}}); nothing to measure")
    if args.random_decoder:
        decoder, decoder_label = random_decoder(0), "RANDOM (untrained; development numbers only)"
    else:
        path = args.decoder or DEFAULT_DECODER
        if not Path(path).is_file():
            sys.exit(f"no decoder at {path}: pass --decoder PATH, "
                     "or --random-decoder for development numbers")
        decoder, decoder_label = load_decoder(path), str(path)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else "cpu" if args.device == "auto" else args.device)
    engine = TorchEngine(StyleGraph(load_encoder(), decoder), device=str(device), cuda_graphs=False)
    encoder = load_encoder().to(device).eval()
    base = TemporalSettings()
    if args.momentum is not None:
        base = replace(base, stat_momentum=args.momentum)
    if args.blend is not None:
        base = replace(base, flow_blend=args.blend)
    momenta = sorted({base.stat_momentum, *((0.5, 0.7, 0.9, 0.95) if args.sweep else ())})
    blends = sorted({base.flow_blend, *((0.3, 0.5, 0.8, 0.9) if args.sweep else ())})
    style_paths = list_images(args.data / "style")[: args.styles]
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    print(f"decoder: {decoder_label}; device {device}; size {args.size}; batch {args.batch}; "
          f"momentum {base.stat_momentum}, blend {base.flow_blend}, flow {base.flow_preset}@{base.flow_size}",
          file=sys.stderr)

    rows, sweep, t_start = [], [], time.time()
    with torch.inference_mode():
        styles = []
        for p in style_paths:
            img = load_image_tensor(p, STYLE_SIZE).to(device)
            styles.append((p.name, engine.encode_style(img, None, p.name),
                           [mean_std(f) for f in encoder.features(img)]))
    for seq in args.sequences:
        frames = load_sequence(video_root / seq, args.size, args.frames)
        flows = eval_flows(frames, args.eval_flow)
        e_input = warping_error(frames, flows)
        visible = float(np.mean([m.mean() for _, m in flows]))
        print(f"{seq}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, input warping error "
              f"{e_input:.5f}, {visible:.0%} of pixels unoccluded ({time.time() - t_start:.0f} s)",
              file=sys.stderr)
        for sname, code, sstats in styles:
            with torch.inference_mode():
                cached, groups, enc_ms = encode_all(engine, frames, args.batch)
                outs = {}
                pf, dec_ms = per_frame(cached, groups, code, args.alpha)
            frame_ms = enc_ms + dec_ms
            outs[("per-frame", 0.0, 0.0)] = (pf, 0.0)
            for m in momenta:  # stats alone, and both: the stream loop's calls, end to end
                both = replace(base, mechanism="both", stat_momentum=m)
                stats_out, both_out, sm = run_smoother(cached, groups, code, args.alpha, both, stylize=True)
                outs[("stats", m, 0.0)] = (stats_out, float(np.median(sm.stylize_ms)))
                outs[("both", m, base.flow_blend)] = (both_out, sm.added_ms())
            for m in (0.0, *momenta):  # other blend weights: the flow alone on the (stats) outputs
                src = outs[("per-frame", 0.0, 0.0) if m == 0 else ("stats", m, 0.0)][0]
                for b in blends:
                    if m > 0 and b == base.flow_blend:
                        continue
                    sm = TemporalSmoother(replace(base, mechanism="flow", flow_blend=b), profile=True)
                    smoothed = [sm.smooth(f, o) for f, o in zip(frames, src, strict=True)]
                    outs[("flow" if m == 0 else "both", m, b)] = (smoothed, sm.added_ms())
            for (mode, m, b), (o, ms) in outs.items():
                r = {"sequence": seq, "style": sname, "mode": mode, "momentum": m, "blend": b,
                     "warping_error": warping_error(o, flows),
                     "style_loss": style_loss(encoder, o, sstats, device, args.style_every),
                     "added_ms": round(ms, 2), "frame_ms": round(frame_ms, 1)}
                default = (m in (0.0, base.stat_momentum)) and (b in (0.0, base.flow_blend))
                (rows if default else sweep).append(r)
            if args.video:
                vid = args.out / f"flicker-{seq}-{Path(sname).stem}-{stamp}.mp4"
                write_video(vid, [frames, pf, outs[("both", base.stat_momentum, base.flow_blend)][0]])
                print(f"  video: {vid}", file=sys.stderr)
            print(f"  {sname}: done ({time.time() - t_start:.0f} s)", file=sys.stderr)

    summary = summarise(rows, sweep)
    timing = timing_720p(load_sequence(video_root / args.sequences[0], 720, 30), base, device)
    print_table(summary, timing, decoder_label)
    result = {"machine": machine_info(), "decoder": decoder_label,
              "decoder_manifest": {} if args.random_decoder else
              {k: read_manifest(Path(args.decoder or DEFAULT_DECODER)).get(k) for k in ("steps", "sha256")},
              "settings": {**base.__dict__}, "size": args.size, "batch": args.batch, "alpha": args.alpha,
              "eval_flow": args.eval_flow, "styles": [s[0] for s in styles], "sequences": args.sequences,
              "seconds": round(time.time() - t_start, 1), "summary": summary, "timing_720p": timing,
              "rows": rows, "sweep": sweep}
    out_json = args.out / f"flicker-{stamp}.json"
    out_json.write_text(json.dumps(result, indent=1))
    print(f"json: {out_json}")


def summarise(rows: list[dict], sweep: list[dict]) -> dict:
    """Means over sequences and styles, and the ratios to per-frame."""
    def mean(sel, key):
        return float(np.mean([r[key] for r in sel]))

    out = {"modes": {}, "sweep": {}}
    pf = [r for r in rows if r["mode"] == "per-frame"]
    base_e, base_s = mean(pf, "warping_error"), mean(pf, "style_loss")
    frame_ms = mean(pf, "frame_ms")
    for mode in MODES:
        sel = [r for r in rows if r["mode"] == mode]
        e, s = mean(sel, "warping_error"), mean(sel, "style_loss")
        ms = float(np.median([r["added_ms"] for r in sel]))
        out["modes"][mode] = {"warping_error": e, "warp_ratio": e / base_e, "style_loss": s,
                              "style_ratio": s / base_s, "added_ms": ms, "frame_ms": frame_ms,
                              "added_share": ms / frame_ms}
    for key in sorted({(r["mode"], r["momentum"], r["blend"]) for r in sweep}):
        sel = [r for r in sweep if (r["mode"], r["momentum"], r["blend"]) == key]
        out["sweep"][f"{key[0]} m={key[1]:g} b={key[2]:g}"] = {
            "warp_ratio": mean(sel, "warping_error") / base_e,
            "style_ratio": mean(sel, "style_loss") / base_s}
    return out


def print_table(summary: dict, timing: dict, decoder_label: str) -> None:
    print(f"decoder: {decoder_label}")
    print(f"{'mode':10} {'warp err':>10} {'x per-frame':>11} {'style loss':>11} {'x per-frame':>11} "
          f"{'added ms':>9} {'% frame':>8}")
    for mode, r in summary["modes"].items():
        print(f"{mode:10} {r['warping_error']:10.5f} {r['warp_ratio']:11.2f} {r['style_loss']:11.4f} "
              f"{r['style_ratio']:11.3f} {r['added_ms']:9.2f} {r['added_share']:8.1%}")
    if summary["sweep"]:
        print("sweep (means over sequences and styles, ratios to per-frame):")
        for k, r in summary["sweep"].items():
            print(f"  {k:24} warp x{r['warp_ratio']:.2f}  style x{r['style_ratio']:.3f}")
    print("smoother at 1280x720: " + ", ".join(f"{k} {v:.2f}" for k, v in timing.items()))


if __name__ == "__main__":
    try:
        main()
    except StylestreamError as e:
        sys.exit(f"error: {e}")
