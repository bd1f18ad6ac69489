"""Flicker benchmark: how much temporal smoothing removes, what it costs in style and in time.

For each dev video (../shared/data/dev/video/{cats,fox}) and a few dev styles, four modes:
per-frame (no smoothing), stats (EMA of the content statistics), flow (flow-guided blending with
contrast restoration) and both (the default). For each:

- warping error (Lai et al. 2018): the input frames' optical flow, computed here with
  Farneback at full resolution (not the smoother's own DIS flow, so it does not grade itself
  with its own tool), occlusions masked by the forward-backward check of Ruder et al. (2016),
      E_warp = mean_t  sum_x M_t(x) ||O_t(x) - warp(O_{t-1})(x)||^2 / sum_x M_t(x),
  RGB in [0, 1], the norm over the three channels;
- style loss (AdaIN's): sum over relu1_1..relu4_1 of the MSE of per-channel mean and of std
  between output frame and style image (on every --style-every'th frame); the same for every
  mode, so its ratio to per-frame is what a mode costs in style;
- milliseconds the smoothing adds per frame (median, the smoother's own work: cut detection,
  statistics EMA, flow, warp, blend), next to the network's own time per frame; and the share
  of the frame the flow blending trusted ("blended").

Also the smoother's cost at 1280x720: CPU path; on a GPU the device path alone and, end to end,
the wall time per frame of upload -> network -> smoothing -> download with and without it (the
flow runs on the CPU while the GPU computes, so this is what a stream actually pays). With
--sweep, other settings too (the plain EMA, other blend weights, no contrast restoration...).

    python -m benchmarks.flicker [--random-decoder | --decoder PATH] [--size 360] [--styles 2]
                                 [--frames N] [--device auto] [--sweep] [--video] [--json PATH]

Targets: warping error <= 0.5x per-frame, style loss <= 1.1x per-frame, <= 15% of the frame time
on the CPU, <= 5 ms at 720p on a GPU. Prints a table (and whether each target is met), writes
JSON (with the machine) and, with --video, side-by-side MP4s (input | per-frame | smoothed) to look
for ghost trails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import torch

from engines.adain import mean_std
from engines.backends.base import STYLE_SIZE
from engines.backends.torch_backend import TorchEngine
from engines.decoder import DEFAULT_DECODER, random_decoder, read_manifest
from engines.devices import resolve_device
from engines.errors import StylestreamError
from engines.graph import StyleGraph, load_graph
from engines.images import list_images, load_image_tensor
from engines.lite.weights import DEFAULT_LITE
from engines.machine import machine_info
from engines.vgg import load_encoder
from streamer.stylize import StylizeStep
from streamer.temporal import TemporalSettings, TemporalSmoother, thumbnail, warp_numpy

ROOT = Path(__file__).resolve().parents[1]

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
    """Stands in for the engine with upload() and encode() results computed once per batch of frames,
    so the encoder runs once however many smoothing settings are compared; decode() and download()
    are the real engine's."""

    def __init__(self, engine: TorchEngine):
        self.engine = engine
        self.device = engine.device
        self.dtype = engine.dtype
        self._batches: dict[int, torch.Tensor] = {}  # id of a batch's first frame -> the uploaded batch
        self._encoded: dict[int, tuple] = {}         # id of an uploaded batch -> its encode()

    def put(self, frames: list[np.ndarray], batch: torch.Tensor, encoded: tuple) -> None:
        self._batches[id(frames[0])] = batch
        self._encoded[id(batch)] = encoded

    def upload(self, frames: list[np.ndarray]) -> torch.Tensor:
        return self._batches[id(frames[0])]

    def download(self, batch: torch.Tensor) -> list[np.ndarray]:
        return self.engine.download(batch)

    def encode(self, batch: torch.Tensor):
        return self._encoded[id(batch)]

    def decode(self, *args, **kwargs):
        return self.engine.decode(*args, **kwargs)

    def stylize(self, batch, style, alpha):
        feat, mean, std = self.encode(batch)
        return self.decode(feat, mean, std, style, alpha, tuple(batch.shape[-2:]))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_smoother(engine, groups, style, alpha: float,
                 settings: TemporalSettings) -> tuple[list[np.ndarray], list[np.ndarray], TemporalSmoother, float]:
    """The stream's stylize step (streamer.stylize.StylizeStep, as the loop calls it) over the groups.

    Returns the outputs before and after the flow blending, the smoother and the mean share of the
    frame that the flow blending trusted."""
    sm = TemporalSmoother(settings, profile=True)
    step = StylizeStep(engine, sm)
    before, after = [], []
    for frames, _ in groups:
        after += step(frames, style, alpha, before_flow=before)
    blended = list(sm.blended)
    return before, after, sm, float(np.mean(blended[1:])) if len(blended) > 1 else 0.0


def smooth_only(frames, outputs, settings: TemporalSettings) -> tuple[list[np.ndarray], float, float]:
    """smooth() alone on finished (CPU) outputs: the flow mechanism without the network."""
    sm = TemporalSmoother(settings, profile=True)
    out, blended = [], []
    for f, o in zip(frames, outputs, strict=True):
        out.append(sm.smooth(f, o))
        blended.append(sm.flow.last_mask_mean)
    return out, sm.added_ms(), float(np.mean(blended[1:])) if len(blended) > 1 else 0.0


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
        cached.put(chunk, x, engine.encode(x))
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


def timing_720p(frames: list[np.ndarray], settings: TemporalSettings, engine: TorchEngine, style,
                alpha: float) -> dict:
    """The smoother's cost per 1280x720 frame. CPU path: smooth() alone (input frames stand in for
    stylized ones: the cost does not depend on the content). On a GPU also the device path alone,
    and end to end: the stream loop's per-frame work (upload, network, smoothing, download; batch 1,
    as live) with and without smoothing, in wall time without extra synchronisation."""
    device = engine.device
    big = [cv2.resize(f, (1280, 720), interpolation=cv2.INTER_LINEAR) for f in frames]
    result = {}
    # the CPU work per frame that has to hide behind the network on a GPU
    small = [thumbnail(f, settings.flow_size) for f in big]
    blender = TemporalSmoother(settings).flow  # configured as the smoother configures it
    for name, fn in (("cpu_thumbnail_ms", lambda i: thumbnail(big[i], settings.flow_size)),
                     ("cpu_flow_estimate_ms", lambda i: blender.estimate(small[i - 1], small[i]))):
        times = []
        for i in range(1, len(big)):
            t0 = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - t0) * 1000)
        result[name] = round(float(np.median(times[1:])), 2)
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

        def stream(smoother: TemporalSmoother | None) -> float:
            step = StylizeStep(engine, smoother)  # the loop's step: upload, network, smoothing, download
            times = []
            for f in big + big:  # the second pass is timed (warm caches, cuDNN autotuned)
                t0 = time.perf_counter()
                step([f], style, alpha)
                times.append((time.perf_counter() - t0) * 1000)
            return float(np.median(times[len(big) + 1:]))

        with torch.inference_mode():
            plain = stream(None)
            smoothed = stream(TemporalSmoother(settings))
        result.update(e2e_plain_ms=round(plain, 2), e2e_smoothed_ms=round(smoothed, 2),
                      e2e_added_ms=round(smoothed - plain, 2))
    return result


# -- main -------------------------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "../shared/data/dev")
    ap.add_argument("--model", choices=("full", "lite"), default="full", help="which network to smooth")
    ap.add_argument("--decoder", type=Path, default=None,
                    help="the model's weights (default: the shipped decoder, or lite.safetensors with --model lite)")
    ap.add_argument("--random-decoder", action="store_true",
                    help="an untrained decoder (development only; results are labelled as such)")
    ap.add_argument("--size", type=int, default=360, help="shorter side of the frames")
    ap.add_argument("--styles", type=int, default=2, help="how many dev styles")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=4, help="frames per engine call (the EMA runs across it)")
    ap.add_argument("--frames", type=int, default=None, help="at most this many frames per video")
    ap.add_argument("--sequences", nargs="+", default=list(SEQUENCES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto",
                    help="the network's precision (auto: what stylestream runs here: fp16 on CUDA, bf16 on a CPU "
                         "that has it in hardware, else fp32)")
    ap.add_argument("--eval-flow", choices=("farneback", "dis-medium"), default="farneback")
    ap.add_argument("--style-every", type=int, default=4, help="style loss on every n-th frame")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a TemporalSettings default, e.g. --set flow_blend=0.6 (repeatable)")
    ap.add_argument("--sweep", nargs="*", metavar="WORD", default=None,
                    help="also try the variants in SWEEP (only those whose name contains one of the WORDs, if given)")
    ap.add_argument("--static", type=int, default=16, metavar="N",
                    help="also N noisy copies of the first frame (a still camera; 0 = skip)")
    ap.add_argument("--video", action="store_true", help="write side-by-side MP4s (input | per-frame | both)")
    ap.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's)")
    ap.add_argument("--timing-only", action="store_true",
                    help="only the 1280x720 timing (e.g. to compare --set variants on a GPU quickly)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--json", type=Path, default=None,
                    help="where to write the JSON (default: OUT/flicker-{cpu|gpu-NAME}-DATE.json)")
    return ap.parse_args()


# (name, needs the network (the statistics EMA), settings changed from the default)
SWEEP: list[tuple[str, bool, dict]] = [
    ("stats: plain EMA (no noise gate)", True, {"mechanism": "stats", "stat_noise": 0.0}),
    ("flow: no contrast restoration", False, {"detail_sigma": 0.0}),
    ("flow: no coarse band", False, {"flow_blend_coarse": None}),
    ("flow: plain blend b=0.7 (old)", False, {"detail_sigma": 0.0, "flow_blend_coarse": None, "flow_tolerance": 0.5}),
    ("flow: b=0.6", False, {"flow_blend": 0.6}),
    ("flow: b=0.8", False, {"flow_blend": 0.8}),
    ("flow: detail_sigma=1.0", False, {"detail_sigma": 1.0}),
    ("flow: contrast_sigma=3 (old)", False, {"contrast_sigma": 3.0}),
    ("flow: contrast_sigma=6", False, {"contrast_sigma": 6.0}),
    ("flow: detail_sigma=2.5", False, {"detail_sigma": 2.5}),
    ("flow: detail_sigma=3.5", False, {"detail_sigma": 3.5}),
    ("flow: detail_sigma=2.5, contrast_sigma=3", False, {"detail_sigma": 2.5, "contrast_sigma": 3.0}),
    ("flow: preset medium", False, {"flow_preset": "medium"}),
    ("flow: flow_size 240", False, {"flow_size": 240}),
    ("flow: flow_size 160", False, {"flow_size": 160}),
    ("flow: preset ultrafast", False, {"flow_preset": "ultrafast"}),
]


def variant(base: TemporalSettings, **changes) -> TemporalSettings:
    return TemporalSettings.checked(**{**base.model_dump(), **changes})


def parse_overrides(items: list[str]) -> dict:
    fields = {f: type(v) for f, v in TemporalSettings().model_dump().items()}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            raise StylestreamError(f"--set {item!r}: use KEY=VALUE with KEY one of {', '.join(fields)}")
        kind = fields[key]
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def json_path(args, device: torch.device) -> Path:
    if args.json is not None:
        return args.json
    tag = "cpu"
    if device.type == "cuda":
        tag = "gpu-" + torch.cuda.get_device_name(device).split()[-1].lower()
    return args.out / f"flicker-{args.model}-{tag}-{datetime.now().strftime('%Y-%m-%d')}.json"


def main() -> None:
    args = parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    video_root = args.data / "video"
    if not all((video_root / s).is_dir() for s in args.sequences) or not (args.data / "style").is_dir():
        sys.exit(f"no dev videos at {video_root} (../shared/data/dev/video/{{cats,fox}}); nothing to measure")
    path = args.decoder or (DEFAULT_LITE if args.model == "lite" else DEFAULT_DECODER)
    if args.random_decoder:
        graph, decoder_label = StyleGraph(load_encoder(), random_decoder(0)), "RANDOM (untrained; development only)"
    else:
        if not Path(path).is_file():
            sys.exit(f"no weights at {path}: pass --decoder PATH, "
                     "or --random-decoder for development numbers")
        graph, decoder_label = load_graph(str(path), model=args.model), f"{args.model} model, {path}"
    device = resolve_device(args.device)
    engine = TorchEngine(graph, device=str(device), precision=args.precision, cuda_graphs=False)
    # The 720p timing runs the network the way live and convert do (CUDA graphs on a GPU), so that the
    # added time includes what smoothing costs there: the statistics EMA needs encode and decode as
    # two eager calls instead of the one captured graph.
    timing_engine = TorchEngine(engine.graph, device=str(device), precision=args.precision, cuda_graphs=True)
    precision = str(engine.dtype).removeprefix("torch.")
    encoder = load_encoder().to(device).eval()
    base = TemporalSettings.checked(**parse_overrides(args.set))
    variants = []
    for name, network, changes in SWEEP if args.sweep is not None else []:
        if args.sweep and not any(word in name for word in args.sweep):
            continue
        changes = {k: (base.flow_blend if v is None else v) for k, v in changes.items()}
        variants.append((name, network, variant(base, **{"mechanism": "flow", **changes})))
    style_paths = list_images(args.data / "style")[: args.styles]
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    print(f"decoder: {decoder_label}; device {device} ({precision}); size {args.size}; batch {args.batch}; "
          f"settings {base.model_dump()}", file=sys.stderr)

    if args.timing_only:
        with torch.inference_mode():
            code = engine.encode_style(load_image_tensor(style_paths[0], STYLE_SIZE).to(device), None, "style")
        timing = timing_720p(load_sequence(video_root / args.sequences[0], 720, 30), base, timing_engine, code,
                             args.alpha)
        print(format_timing(timing))
        default_json = json_path(args, device)
        out_json = args.json or default_json.with_name(default_json.stem + "-timing.json")
        out_json.write_text(json.dumps({"machine": machine_info(), "settings": base.model_dump(),
                                        "precision": precision,
                                        "cv_threads": cv2.getNumThreads(), "timing_720p": timing}, indent=1))
        print(f"json: {out_json}")
        return
    rows, sweep, t_start = [], [], time.time()
    with torch.inference_mode():
        styles = []
        for p in style_paths:
            img = load_image_tensor(p, STYLE_SIZE).to(device)
            styles.append((p.name, engine.encode_style(img, None, p.name),
                           [mean_std(f) for f in encoder.features(img)]))
    def measure(seq: str, frames: list[np.ndarray], with_variants: bool, video: bool) -> tuple[list, list]:
        flows = eval_flows(frames, args.eval_flow)
        e_input = warping_error(frames, flows)
        visible = float(np.mean([m.mean() for _, m in flows]))
        print(f"{seq}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, input warping error "
              f"{e_input:.5f}, {visible:.0%} of pixels unoccluded ({time.time() - t_start:.0f} s)",
              file=sys.stderr)
        rows, sweep = [], []
        for sname, code, sstats in styles:
            with torch.inference_mode():
                cached, groups, enc_ms = encode_all(engine, frames, args.batch)
                pf, dec_ms = per_frame(cached, groups, code, args.alpha)
                # stats alone, and both: the stream loop's calls, end to end
                stats_out, both_out, sm, both_blended = run_smoother(
                    cached, groups, code, args.alpha, variant(base, mechanism="both"))
                # the stats EMA's own cost: the smoother's work before smooth(), less the flow it computes
                stats_ms = float(np.median(np.subtract(sm.prepare_ms, sm.prepare_flow_ms)))
                flow_out, flow_ms, flow_blended = smooth_only(frames, pf, variant(base, mechanism="flow"))
                outs = {"per-frame": (pf, 0.0, 0.0), "stats": (stats_out, stats_ms, 0.0),
                        "flow": (flow_out, flow_ms, flow_blended), "both": (both_out, sm.added_ms(), both_blended)}
                extra = {}
                for name, network, settings in variants if with_variants else []:
                    if network:
                        _, o, v, _ = run_smoother(cached, groups, code, args.alpha, settings)
                        extra[name] = (o, v.added_ms(), 0.0)
                    else:
                        extra[name] = smooth_only(frames, pf, settings)
            frame_ms = enc_ms + dec_ms
            for target, table in ((rows, outs), (sweep, extra)):
                for mode, (o, ms, blended) in table.items():
                    target.append({"sequence": seq, "style": sname, "mode": mode,
                                   "warping_error": warping_error(o, flows),
                                   "style_loss": style_loss(encoder, o, sstats, device, args.style_every),
                                   "added_ms": round(ms, 2), "frame_ms": round(frame_ms, 1),
                                   "blended": round(blended, 3)})
            if video:
                vid = args.out / f"flicker-{seq}-{Path(sname).stem}-{stamp}.mp4"
                write_video(vid, [frames, pf, both_out])
                print(f"  video: {vid}", file=sys.stderr)
            print(f"  {sname}: done ({time.time() - t_start:.0f} s)", file=sys.stderr)
        return rows, sweep

    rows, sweep = [], []
    for seq in args.sequences:
        r, w = measure(seq, load_sequence(video_root / seq, args.size, args.frames), True, args.video)
        rows += r
        sweep += w
    static = None
    if args.static:  # what the statistics EMA is for: a still camera, sensor noise
        first = load_sequence(video_root / args.sequences[0], args.size, 1)[0]
        rng = np.random.default_rng(0)
        frames = [np.clip(first + rng.normal(0, 3.0, first.shape), 0, 255).astype(np.uint8)
                  for _ in range(args.static)]
        static = summarise(measure(f"static-{args.sequences[0]}", frames, False, False)[0], [])

    summary = summarise(rows, sweep)
    timing = timing_720p(load_sequence(video_root / args.sequences[0], 720, 30), base, timing_engine, styles[0][1],
                         args.alpha)
    checks = check_targets(summary, timing, device)
    print_table(summary, timing, checks, decoder_label, static)
    result = {"machine": machine_info(), "decoder": decoder_label,
              "decoder_manifest": {} if args.random_decoder else
              {k: read_manifest(Path(path)).get(k) for k in ("steps", "sha256", "provisional")},
              "model": args.model,
              "settings": base.model_dump(), "precision": precision, "cv_threads": cv2.getNumThreads(),
              "size": args.size, "batch": args.batch,
              "alpha": args.alpha,
              "eval_flow": args.eval_flow, "styles": [s[0] for s in styles], "sequences": args.sequences,
              "frames": args.frames, "seconds": round(time.time() - t_start, 1), "summary": summary,
              "timing_720p": timing, "targets": checks, "static_noisy_scene": static, "rows": rows,
              "sweep": sweep}
    out_json = json_path(args, device)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1))
    print(f"json: {out_json}")


def summarise(rows: list[dict], sweep: list[dict]) -> dict:
    """Means over sequences and styles, and the ratios to per-frame (ratios of the means)."""
    def mean(sel, key):
        return float(np.mean([r[key] for r in sel]))

    out = {"modes": {}, "sweep": {}}
    pf = [r for r in rows if r["mode"] == "per-frame"]
    base_e, base_s = mean(pf, "warping_error"), mean(pf, "style_loss")
    per_pair = {(r["sequence"], r["style"]): r for r in pf}

    def worst(sel, key):  # the largest ratio to per-frame of any one (sequence, style) pair
        return max(r[key] / per_pair[(r["sequence"], r["style"])][key] for r in sel)
    frame_ms = mean(pf, "frame_ms")
    for table, key in ((rows, "modes"), (sweep, "sweep")):
        for mode in dict.fromkeys(r["mode"] for r in table):
            sel = [r for r in table if r["mode"] == mode]
            e, s = mean(sel, "warping_error"), mean(sel, "style_loss")
            ms = float(np.median([r["added_ms"] for r in sel]))
            out[key][mode] = {"warping_error": e, "warp_ratio": e / base_e, "style_loss": s,
                              "style_ratio": s / base_s, "worst_pair_warp_ratio": worst(sel, "warping_error"),
                              "worst_pair_style_ratio": worst(sel, "style_loss"), "added_ms": ms, "frame_ms": frame_ms,
                              "added_share": ms / frame_ms, "blended": mean(sel, "blended")}
    return out


def check_targets(summary: dict, timing: dict, device: torch.device) -> dict:
    both = summary["modes"]["both"]
    checks = {"warp_ratio <= 0.5": both["warp_ratio"] <= 0.5, "style_ratio <= 1.1": both["style_ratio"] <= 1.1}
    if device.type == "cuda":
        checks["e2e_added_ms at 720p <= 5"] = timing["e2e_added_ms"] <= 5.0
    else:
        checks["added share of the CPU frame time <= 15%"] = both["added_share"] <= 0.15
    return checks


def format_timing(timing: dict) -> str:
    return "smoother at 1280x720 (ms per frame): " + ", ".join(f"{k} {v:.2f}" for k, v in timing.items())


def print_table(summary: dict, timing: dict, checks: dict, decoder_label: str, static: dict | None = None) -> None:
    print(f"decoder: {decoder_label}")
    head = (f"{'mode':10} {'warp err':>10} {'x per-frame':>11} {'style loss':>11} {'x per-frame':>11} "
            f"{'worst pair':>11} {'added ms':>9} {'% frame':>8} {'blended':>8}")
    for title, table in (("dev videos", summary), ("static noisy scene (a still camera: sensor noise only)", static)):
        if table is None:
            continue
        print(f"{title}:")
        print(head)
        for mode, r in table["modes"].items():
            pair = f"{r['worst_pair_warp_ratio']:.2f}/{r['worst_pair_style_ratio']:.3f}"
            print(f"{mode:10} {r['warping_error']:10.5f} {r['warp_ratio']:11.2f} {r['style_loss']:11.4f} "
                  f"{r['style_ratio']:11.3f} {pair:>11} {r['added_ms']:9.2f} {r['added_share']:8.1%} "
                  f"{r['blended']:8.0%}")
    if summary["sweep"]:
        print("sweep on the dev videos (means over sequences and styles, ratios to per-frame):")
        for k, r in summary["sweep"].items():
            print(f"  {k:36} warp x{r['warp_ratio']:.3f}  style x{r['style_ratio']:.3f}  (worst pair "
                  f"x{r['worst_pair_warp_ratio']:.3f} / x{r['worst_pair_style_ratio']:.3f})  "
                  f"added {r['added_ms']:.2f} ms")
    print(format_timing(timing))
    print("targets: " + "; ".join(f"{k}: {'met' if ok else 'NOT met'}" for k, ok in checks.items()))


if __name__ == "__main__":
    try:
        main()
    except StylestreamError as e:
        sys.exit(f"error: {e}")
