"""`stylestream live | convert | image | serve | demo | styles | train | bench | build-engine`.

Thin: parses options, merges them over the YAML config, and hands over to the module that does
the work. Errors a user can cause print as one line (no traceback) and exit non-zero. Over 300 lines
because it declares nine commands' options (typer's way); no command has logic here.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperCommand

from engines.errors import StylestreamError
from streamer.alpha import ALPHA_MAX, ALPHA_MIN
from streamer.app.train_cmd import train as train_command
from streamer.cluster import DEFAULT_ADDRESS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Real-time style transfer for video (AdaIN): live preview, file conversion, "
                       "virtual camera, MJPEG.")
err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("-c", "--config", help="YAML config (see configs/)")]
StyleOpt = Annotated[list[str] | None, typer.Option("--style", "-s",
                     help="style: preset name (see `stylestream styles`), image file or .safetensors code; repeat")]
WeightsOpt = Annotated[str | None, typer.Option("--style-weights", help="blend weights, e.g. 0.7,0.3")]
AlphaOpt = Annotated[float | None, typer.Option("--alpha", "-a", min=ALPHA_MIN, max=ALPHA_MAX,
                     help=f"style strength {ALPHA_MIN:g}..{ALPHA_MAX:g}")]
SizeOpt = Annotated[int | None, typer.Option("--size", min=0, help="shorter side the network sees; 0 = native")]
BackendOpt = Annotated[str | None, typer.Option("--backend", help="auto | torch | onnxruntime | tensorrt")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="auto | cpu | cuda")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="auto | full | lite: the full AdaIN network (best quality) or the lite one (real time on a CPU); "
                    "auto picks per job and device and logs why")]
DecoderOpt = Annotated[Path | None, typer.Option("--decoder", help="decoder weights (.safetensors/.pth)")]
ColorOpt = Annotated[bool | None, typer.Option("--preserve-color/--no-preserve-color",
                     help="keep the input's colours (luminance-only transfer)")]
SmoothOpt = Annotated[bool | None, typer.Option("--smooth/--no-smooth", help="temporal smoothing")]
StatsOpt = Annotated[bool, typer.Option("--stats", help="print one JSON line of timings per second")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")]


def parse_weights(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--style-weights must be numbers separated by commas, got {text!r}") from None


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False, show_time=False)])


def _overrides(**kw) -> dict:
    """CLI options that were given, as a nested dict ('engine.backend' -> {'engine': {'backend': ...}})."""
    out: dict = {}
    for key, value in kw.items():
        if value is None:
            continue
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _stream_overrides(style=None, style_weights=None, alpha=None, preserve_color=None, size=None, smooth=None,
                      backend=None, device=None, decoder=None, stats: bool = False, model=None, **dotted) -> dict:
    """The options image, convert and live share, plus command-specific ones given as dotted keys
    ("video.crf"), as the nested overrides load_config takes."""
    return _overrides(
        styles=style, style_weights=parse_weights(style_weights), alpha=alpha, preserve_color=preserve_color,
        size=size, stats=stats or None, **{"temporal.enabled": smooth, "engine.backend": backend,
                                           "engine.device": device, "engine.decoder": decoder,
                                           "engine.model": model, **dotted})


@app.command()
def image(
    inputs: Annotated[list[Path], typer.Argument(help="image files or folders")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output file (one input) or folder")],
    config: ConfigOpt = None, style: StyleOpt = None, style_weights: WeightsOpt = None, alpha: AlphaOpt = None,
    preserve_color: ColorOpt = None,
    mask: Annotated[Path | None, typer.Option(help="mask image: 1st style where white, 2nd where black")] = None,
    size: Annotated[int, typer.Option(min=0, help="shorter side of the result; 0 = native")] = 512,
    style_size: Annotated[int, typer.Option(min=64, help="shorter side a style image is read at")] = 512,
    max_pixels: Annotated[int, typer.Option(help="refuse larger images (decompression bombs)")] = 50_000_000,
    method: Annotated[str, typer.Option(help="adain (fast) or gatys (slow optimisation, reference)")] = "adain",
    steps: Annotated[int, typer.Option(min=1, help="gatys: optimisation steps")] = 300,
    optimizer: Annotated[str, typer.Option(help="gatys: lbfgs or adam")] = "lbfgs",
    device: DeviceOpt = None, decoder: DecoderOpt = None, model: ModelOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="replace existing outputs")] = False,
    verbose: VerboseOpt = False,
):
    """Stylize still images."""
    from streamer.app.images_cmd import ImageJob, run_image_job
    from streamer.config import load_config

    _setup_logging(verbose)
    if method not in ("adain", "gatys") or optimizer not in ("lbfgs", "adam"):
        raise typer.BadParameter("--method is adain or gatys; --optimizer is lbfgs or adam")
    # The config's style settings and engine device/decoder apply here too; options override them.
    cfg = load_config(config, _stream_overrides(style, style_weights, alpha, preserve_color, device=device,
                                                decoder=decoder, model=model))
    job = ImageJob(inputs=inputs, output=output, styles=cfg.styles, style_weights=cfg.style_weights,
                   alpha=cfg.alpha, preserve_color=cfg.preserve_color, mask=mask, size=size, style_size=style_size,
                   max_pixels=max_pixels, method=method, steps=steps, optimizer=optimizer, device=cfg.engine.device,
                   decoder=cfg.engine.decoder, model=cfg.engine.model, overwrite=overwrite)
    for path in run_image_job(job):
        err.print(f"wrote {path}", soft_wrap=True)


class RayAddressOptional(TyperCommand):
    """`convert`, whose `--ray` may come without an address (alone, last or before another option): it then
    means DEFAULT_ADDRESS. The parser in typer has no options with an optional value, so the command fills it
    in before parsing its own arguments."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        filled = []
        for i, arg in enumerate(args):
            filled.append(arg)
            if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                filled.append(DEFAULT_ADDRESS)
        return super().parse_args(ctx, filled)


@app.command(cls=RayAddressOptional)
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="video files or folders of videos")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output video (one input) or folder")],
    config: ConfigOpt = None, style: StyleOpt = None, style_weights: WeightsOpt = None, alpha: AlphaOpt = None,
    preserve_color: ColorOpt = None, size: SizeOpt = None, smooth: SmoothOpt = None,
    backend: BackendOpt = None, device: DeviceOpt = None, decoder: DecoderOpt = None, model: ModelOpt = None,
    batch: Annotated[int | None, typer.Option(min=0, help="frames per engine call (0 = auto)")] = None,
    codec: Annotated[str | None, typer.Option(help="libx264 (default), libx265, libvpx-vp9, ...")] = None,
    crf: Annotated[int | None, typer.Option(help="quality: lower is better (x264 default 17: looks lossless)")] = None,
    preset: Annotated[str | None, typer.Option(help="encoder speed preset (x264: ultrafast..veryslow)")] = None,
    audio: Annotated[bool | None, typer.Option("--audio/--no-audio", help="copy the audio track")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite/--no-overwrite")] = None,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="convert on a Ray cluster at ADDRESS (HOST:6379, ray://HOST:10001); alone: RAY_ADDRESS, else a "
             "local Ray. Put it after the inputs")] = None,
    stats: StatsOpt = False, verbose: VerboseOpt = False,
):
    """Convert video files (every frame, in order, audio copied)."""
    from streamer.app.run import run_convert
    from streamer.cluster import convert_command, ray_overrides
    from streamer.config import load_config

    _setup_logging(verbose)
    cfg = load_config(config, _stream_overrides(
        style, style_weights, alpha, preserve_color, size, smooth, backend, device, decoder, stats, model, **{
            "engine.batch": batch, "video.codec": codec, "video.crf": crf, "video.preset": preset,
            "video.audio": audio, "video.overwrite": overwrite, "ray": None if ray is None else ray_overrides(ray)}))
    if cfg.ray is not None:  # `--ray` or a `ray:` section in the config
        raise typer.Exit(convert_command(cfg, inputs, output, err))
    for path in run_convert(cfg, inputs, output):
        err.print(f"wrote {path}", soft_wrap=True)


@app.command()
def live(
    source: Annotated[str | None, typer.Option("--source", help="camera index, URL, video file or folder")] = None,
    config: ConfigOpt = None, style: StyleOpt = None, style_weights: WeightsOpt = None, alpha: AlphaOpt = None,
    preserve_color: ColorOpt = None, size: SizeOpt = None, smooth: SmoothOpt = None,
    backend: BackendOpt = None, device: DeviceOpt = None, decoder: DecoderOpt = None, model: ModelOpt = None,
    window: Annotated[bool | None, typer.Option("--window/--no-window", help="preview window")] = None,
    vcam: Annotated[bool, typer.Option("--vcam", help="send to a virtual camera (Zoom, OBS, browsers)")] = False,
    mjpeg: Annotated[int | None, typer.Option("--mjpeg", help="serve MJPEG over HTTP on this port")] = None,
    host: Annotated[str | None, typer.Option(help="MJPEG bind address (default 127.0.0.1)")] = None,
    record: Annotated[Path | None, typer.Option(help="also record the stylized stream to this file")] = None,
    loop: Annotated[bool | None, typer.Option("--loop/--no-loop", help="files: loop forever")] = None,
    fps: Annotated[float | None, typer.Option(min=0.1, max=240, help="frame rate to hold (default: the "
                                              "source's) by lowering the network's working size")] = None,
    stats: StatsOpt = False, verbose: VerboseOpt = False,
):
    """Stylize a live source (webcam, stream, or a file played as a camera).

    The output keeps --size; when the machine is slower than the source, the network works smaller and
    its result is upscaled along the input's edges. Giving --size fixes the working size too."""
    from streamer.app.run import run_live
    from streamer.config import load_config

    _setup_logging(verbose)
    over = _stream_overrides(
        style, style_weights, alpha, preserve_color, size, smooth, backend, device, decoder, stats, model, **{
            "live.source": source, "live.window": window, "live.record": record, "live.loop": loop,
            "live.fps": fps, "live.adaptive_size": False if size is not None else None})
    if vcam:
        over.setdefault("live", {})["vcam"] = {}
    if mjpeg is not None or host is not None:
        over.setdefault("live", {})["mjpeg"] = _overrides(port=mjpeg, host=host)
    run_live(load_config(config, over))


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0 = any free one)")] = 8765,
    host: Annotated[str, typer.Option(help="bind address; anything but loopback is reachable by others")] = "127.0.0.1",
    cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve HTTPS (browsers need it for a "
                                                     "camera away from localhost)")] = None,
    key: Annotated[Path | None, typer.Option(help="PEM private key of --cert")] = None,
    source: Annotated[str | None, typer.Option("--source", help="the server's own source, offered beside the "
                                               "browser's camera: camera index, URL, video file or folder")] = None,
    style: Annotated[str | None, typer.Option("--style", "-s", help="preset a new tab starts with")] = None,
    size: Annotated[int | None, typer.Option(min=0, help="shorter side of the stream (default 360); giving it "
                                             "also fixes the network's working size; 0 = native")] = None,
    fps: Annotated[float | None, typer.Option(min=0.1, max=240, help="frame rate each tab is held at by "
                                              "lowering the network's working size (default 30)")] = None,
    max_sessions: Annotated[int, typer.Option(min=1, help="tabs served at once")] = 4,
    allow_origin: Annotated[list[str] | None, typer.Option(help="another page origin allowed to call the "
                                                           "studio (e.g. behind a proxy); repeat")] = None,
    backend: Annotated[str, typer.Option(help="auto | torch | onnxruntime | tensorrt")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | fp16 | bf16")] = "auto",
    decoder: DecoderOpt = None,
    model: Annotated[str, typer.Option(help="auto | full | lite (auto: lite on a CPU, full on a GPU)")] = "auto",
    verbose: VerboseOpt = False,
):
    """A browser studio: your webcam (or the server's source) stylized over WebRTC, with live controls."""
    try:
        from streamer.config import validated
        from streamer.serve.command import ServeOptions, run_serve
    except ImportError as e:
        raise StylestreamError(f"serve needs the serve extra ({e.name} is missing): "
                               "pip install 'stylestream[serve]'") from None

    _setup_logging(verbose)
    engine = {"backend": backend, "device": device, "precision": precision, "decoder": decoder, "model": model}
    run_serve(validated(ServeOptions, {
        "host": host, "port": port, "cert": cert, "key": key, "source": source, "style": style,
        "size": 360 if size is None else size, "adaptive_size": size is None, "fps": fps,
        "max_sessions": max_sessions, "allow_origins": allow_origin or [], "engine": engine}))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the demo files")] = Path(
        "stylestream-demo"),
    config: ConfigOpt = None, style: StyleOpt = None, device: DeviceOpt = None, model: ModelOpt = None,
    verbose: VerboseOpt = False,
):
    """Convert a built-in clip with a built-in style: no camera or files needed."""
    from streamer.app.demo import run_demo

    _setup_logging(verbose)
    out = run_demo(output, styles=style, device=device, config=config, model=model)
    print(out)  # the one line a script needs: where the result is


@app.command()
def styles():
    """List the built-in style presets."""
    from rich.table import Table

    from engines.presets import load_preset, preset_names

    table = Table("name", "work")
    for name in preset_names():
        table.add_row(name, load_preset(name).meta.get("work", ""))
    Console().print(table)
    err.print("Any image file also works as a style: --style path/to/painting.jpg")


@app.command()
def bench(
    backends: Annotated[str | None, typer.Option(
        help="comma-separated: torch,onnxruntime,tensorrt (default: every available one)")] = None,
    device: DeviceOpt = "auto",
    precision: Annotated[str, typer.Option(help="auto | fp32 | fp16 | bf16 (torch only)")] = "auto",
    resolutions: Annotated[str, typer.Option(help="WIDTHxHEIGHT,...")] = "256x256,640x360,1280x720,1920x1080",
    batch: Annotated[int, typer.Option(min=1, help="frames per engine call")] = 1,
    warmup: Annotated[int | None, typer.Option(min=0, help="untimed runs first (default 3 on CUDA, 1 on CPU)")] = None,
    iters: Annotated[int | None, typer.Option(min=1, help="timed runs (default 20 on CUDA, 3 on CPU)")] = None,
    skip_1080p: Annotated[bool, typer.Option("--skip-1080p", help="leave out 1920x1080 (slow on a CPU)")] = False,
    decoder: Annotated[Path | None, typer.Option(help="decoder weights to time (default: random, same speed)")] = None,
    models: Annotated[str, typer.Option("--model", help="comma-separated: full,lite (side by side)")] = "full,lite",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads (default: physical cores)")] = None,
    cuda_graphs: Annotated[bool, typer.Option("--cuda-graphs/--no-cuda-graphs", help="torch backend on CUDA")] = True,
    with_convert: Annotated[bool, typer.Option("--convert/--no-convert",
                            help="also time `convert` end to end on a generated clip")] = True,
    clip: Annotated[str, typer.Option(help="size of the generated clip, WIDTHxHEIGHT")] = "640x360",
    clip_seconds: Annotated[float, typer.Option(min=0.1, max=60, help="length of the clip (24 fps)")] = 2.0,
    presets: Annotated[str, typer.Option(help="encoder presets to time convert with, comma-separated")] = "medium",
    variants: Annotated[str, typer.Option(
        help="torch engine variants side by side (engines.bench.VARIANTS): e.g. default,compiled,fold-padding; "
             "auto: default and compiled on CUDA, default on a CPU")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", "-o",
                   help="JSON file (default: speed-<host>-<date>.json in the current folder)")] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="measure again which CPU backend `auto` runs "
                                            "each model on at the clip's size (cached per machine)")] = False,
    verbose: VerboseOpt = False,
):
    """Time every available backend (ms/frame, fps, peak memory) and `convert` end to end: table + JSON."""
    import tempfile

    from engines.bench import BenchSettings, bench_options, parse_resolutions, parse_variants, run_bench
    from engines.bench_output import print_table, write_result
    from engines.devices import resolve_device
    from streamer.convert_timing import convert_timing_hook

    _setup_logging(verbose)
    settings = BenchSettings(
        backends=[b.strip() for b in backends.split(",") if b.strip()] if backends else None,
        device=device or "auto", precision=precision, resolutions=parse_resolutions(resolutions), batch=batch,
        warmup=warmup, iters=iters, skip_1080p=skip_1080p, decoder=str(decoder) if decoder else None,
        models=[m.strip() for m in models.split(",") if m.strip()],
        options=bench_options(no_cuda_graphs=not cuda_graphs, threads=threads),
        variants=parse_variants(variants, resolve_device(device or "auto", check=False).type))
    with tempfile.TemporaryDirectory(prefix="stylestream-bench-") as tmp:
        preset_list = tuple(p.strip() for p in presets.split(",") if p.strip()) or ("medium",)
        hooks = [convert_timing_hook(clip, clip_seconds, Path(tmp), preset_list)] if with_convert else []
        result = run_bench(settings, hooks)
    path = write_result(result, out)
    print_table(result)
    err.print(f"wrote {path}", soft_wrap=True)
    if calibrate:
        _recalibrate(settings.models, clip, threads)


def _recalibrate(models: list[str], clip: str, threads: int | None) -> None:
    """`bench --calibrate`: redo `auto`'s CPU measurement for each model at the clip's size, and say the result."""
    from engines.backends.calibrate import calibrate
    from engines.backends.select import available_backends
    from engines.graph import load_graph

    w, h = (int(v) for v in clip.lower().split("x"))
    present = [b for b in available_backends() if b != "tensorrt"]
    for model in models:
        result = calibrate(load_graph(None, model=model), present, w * h, threads, redo=True)
        times = ", ".join(f"{n} {ms:.1f} ms" for n, ms in sorted(result["ms"].items(), key=lambda kv: kv[1]))
        err.print(f"auto on this CPU, {model} at {result['hw'][1]}x{result['hw'][0]}: {result['best']} ({times})")


@app.command("build-engine")
def build_engine_command(
    resolution: Annotated[list[str] | None, typer.Option("--resolution", "-r",
                          help="WIDTHxHEIGHT the engines must take; repeat; the first is tuned for")] = None,
    max_batch: Annotated[int | None, typer.Option(min=1, help="largest batch the engines take (default 4)")] = None,
    precision: Annotated[str, typer.Option(help="fp16 or fp32")] = "fp16",
    device: Annotated[str, typer.Option(help="cuda or cuda:N")] = "cuda",
    decoder: DecoderOpt = None,
    model: Annotated[str, typer.Option("--model", help="full or lite: the network to build engines for")] = "full",
    force: Annotated[bool, typer.Option("--force", help="rebuild even when a cached engine fits")] = False,
    workspace: Annotated[float, typer.Option(min=0.25, help="TensorRT builder workspace, GiB")] = 4.0,
    verbose: VerboseOpt = False,
):
    """Prebuild the TensorRT engines into the cache; later `--backend tensorrt` runs load them."""
    from engines.backends.tensorrt_backend import prebuild_engines
    from engines.backends.tensorrt_profile import DEFAULT_MAX_BATCH, DEFAULT_RESOLUTIONS, parse_resolution

    _setup_logging(verbose)
    resolutions = [parse_resolution(r) for r in resolution] if resolution else DEFAULT_RESOLUTIONS
    for path in prebuild_engines(decoder, resolutions, max_batch or DEFAULT_MAX_BATCH, precision, device, force=force,
                                 workspace_gib=workspace, model=model):
        err.print(f"engine {path}", soft_wrap=True)


app.command("train")(train_command)  # its options are in their own module: one per TrainOptions field


def main() -> None:
    try:
        code = app(standalone_mode=False)  # usage errors come here too, to be printed as one line
    except StylestreamError as e:
        _error(str(e))
        sys.exit(e.exit_code)
    except typer.Abort:  # Ctrl-C outside a stream (while loading)
        sys.exit(130)
    except typer.TyperException as e:  # click's usage errors (bad option values, missing arguments)
        ctx = getattr(e, "ctx", None)
        where = f" (see `stylestream {ctx.info_name} --help`)" if ctx is not None and ctx.parent else ""
        _error(" ".join(e.format_message().split()) + where)
        sys.exit(getattr(e, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _error(message: str) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, markup=True)  # "[ray]"


if __name__ == "__main__":
    main()
