"""The per-frame graph (engines.graph.StyleGraph) to ONNX: what onnxruntime and TensorRT build from.

Three parts, all with dynamic batch, height and width:

    full    content (N,3,H,W), style_mean (N,512), style_std (N,512), alpha (N) -> stylized (N,3,H,W)
    encode  content (N,3,H,W) -> feat (N,512,h,w), mean (N,512), std (N,512)
    decode  feat, content_mean, content_std, style_mean, style_std, alpha -> image (N,3,8h,8w)

`full` crops its output to the input size (ceil-mode pooling rounds odd sizes up); `decode` does not
know the input size, so its caller crops. The split exists so temporal smoothing can replace the
content statistics between the halves.

Precision: in the fp16 variant the image and feature tensors (content, feat, the output) are fp16,
while the statistics (mean, std, style_mean, style_std, alpha) and AdaIN itself stay fp32: the graph
carries explicit Casts around mean_std/adain (StyleGraph does `.float()` there and casts back), so a
strongly typed TensorRT network (TensorRT 11 has no builder precision flags) gets the precision
from the graph.

Exporter: the TorchScript-based `torch.onnx.export(..., dynamo=False)`. In torch 2.14 it is deprecated
but present, needs no extra package and exports this graph correctly for any size. The dynamo
exporter (the default since torch 2.9) needs `onnxscript` (on the registry, 0.7.2) and was tried:
its graph is tidier, but it records the symbolic shapes of the ceil-mode pooling chain as if sizes
were multiples of 8, and onnxruntime then fails at e.g. 72x100 ("Shape mismatch attempting to
re-use buffer {2,256,18,25} != {2,256,18,26}"). A graph that breaks on odd frame sizes is no use
here, so the legacy exporter it is; `exporter="dynamo"` stays available for when that is fixed.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from engines.errors import ConfigError, OutputError
from engines.files import atomic_output
from engines.graph import StyleGraph

log = logging.getLogger(__name__)

Part = Literal["full", "encode", "decode"]
Precision = Literal["fp32", "fp16"]
DEFAULT_OPSET = 17
# Bump when the exported graph changes for the same weights, so cached exports are rebuilt.
EXPORT_VERSION = 1

INPUTS: dict[str, tuple[str, ...]] = {
    "full": ("content", "style_mean", "style_std", "alpha"),
    "encode": ("content",),
    "decode": ("feat", "content_mean", "content_std", "style_mean", "style_std", "alpha"),
}
OUTPUTS: dict[str, tuple[str, ...]] = {
    "full": ("stylized",),
    "encode": ("feat", "mean", "std"),
    "decode": ("image",),
}
# Which tensors are images/features (fp16 in the fp16 graph); every other tensor is an fp32 statistic.
IMAGE_TENSORS = frozenset({"content", "stylized", "feat", "image"})
FEAT_CHANNELS = 512   # the full graph's relu4_1 (a graph's own count: graph.feat_channels)
STYLE_CHANNELS = 512  # the full graph's style input, relu4_1 (a graph's own count: graph.style_channels)
TRACE_HW = (24, 40)  # the size the exporter traces at; odd feature sizes (3 x 5) on purpose


def tensor_dtype(name: str, precision: str) -> torch.dtype:
    """The dtype of an exported graph's input/output `name` for `precision`."""
    return torch.float16 if precision == "fp16" and name in IMAGE_TENSORS else torch.float32


def feat_hw(h: int, w: int, halvings: int = 3) -> tuple[int, int]:
    """The feature size for an H x W input: `halvings` ceil-mode halvings (3 for relu4_1; a graph's own:
    graph.halvings). Ceil-mode pooling and padded stride-2 convs round the same way."""
    for _ in range(halvings):
        h, w = -(-h // 2), -(-w // 2)
    return h, w


class _Full(nn.Module):
    def __init__(self, graph: StyleGraph):
        super().__init__()
        self.graph = graph

    def forward(self, content, style_mean, style_std, alpha):
        return self.graph(content, style_mean, style_std, alpha)


class _Encode(nn.Module):
    def __init__(self, graph: StyleGraph):
        super().__init__()
        self.graph = graph

    def forward(self, content):
        return self.graph.encode(content)


class _Decode(nn.Module):
    def __init__(self, graph: StyleGraph):
        super().__init__()
        self.graph = graph

    def forward(self, feat, content_mean, content_std, style_mean, style_std, alpha):
        return self.graph.decode(feat, content_mean, content_std, style_mean, style_std, alpha)


_WRAPPERS = {"full": _Full, "encode": _Encode, "decode": _Decode}


def example_inputs(part: str, precision: str, n: int = 1, h: int = 64, w: int = 64,
                   feat_channels: int = FEAT_CHANNELS, halvings: int = 3,
                   style_channels: int = STYLE_CHANNELS) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes and dtypes for tracing (and for tests)."""
    gen = torch.Generator().manual_seed(0)
    fh, fw = feat_hw(h, w, halvings)
    shapes = {
        "content": (n, 3, h, w), "feat": (n, feat_channels, fh, fw), "alpha": (n,),
        "content_mean": (n, feat_channels), "content_std": (n, feat_channels),
        "style_mean": (n, style_channels), "style_std": (n, style_channels),
    }
    out = []
    for name in INPUTS[part]:
        x = torch.rand(shapes[name], generator=gen)
        if name.endswith("std"):
            x = x + 0.5
        out.append(x.to(tensor_dtype(name, precision)))
    return tuple(out)


def _dynamic_axes(part: str) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    spatial = {"content": ("height", "width"), "stylized": ("height", "width"),
               "feat": ("feat_height", "feat_width"), "image": ("out_height", "out_width")}
    for name in INPUTS[part] + OUTPUTS[part]:
        axes[name] = {0: "batch"}
        if name in spatial:
            axes[name].update({2: spatial[name][0], 3: spatial[name][1]})
    return axes


def _check_args(part: str, precision: str) -> None:
    if part not in _WRAPPERS:
        raise ConfigError(f"Unknown ONNX part {part!r}: use full, encode or decode")
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"ONNX export supports fp32 or fp16, not {precision!r}")


def export_onnx(graph: StyleGraph, path: str | Path, part: Part = "full", precision: Precision = "fp32",
                opset: int = DEFAULT_OPSET, exporter: Literal["legacy", "dynamo"] = "legacy") -> Path:
    """Write `part` of `graph` as ONNX to `path` (checked with onnx.checker) and return the path."""
    import onnx

    _check_args(part, precision)
    path = Path(path)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    # A copy, so exporting fp16 does not turn the caller's graph to half.
    module = _WRAPPERS[part](copy.deepcopy(graph).to("cpu", dtype).eval())
    # Traced once at a small size (sizes are dynamic axes): fp16 convolutions on the CPU are slow,
    # and 64x64 took 13 s to trace against well under a second here. Batch 2, not 1, so that no
    # size-1 dimension gets baked in as a broadcast.
    args = example_inputs(part, precision, n=2, h=TRACE_HW[0], w=TRACE_HW[1], feat_channels=graph.feat_channels,
                          halvings=graph.halvings, style_channels=graph.style_channels)
    names = {"input_names": list(INPUTS[part]), "output_names": list(OUTPUTS[part])}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot create {path.parent}: {e}") from None
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter warns that it is deprecated and that slices with steps != 1 are not
        # folded (the reflection pads); both are known and harmless here.
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            _export_dynamo(module, args, path, part, opset, names)
        else:
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                              dynamic_axes=_dynamic_axes(part), do_constant_folding=True, **names)
    onnx.checker.check_model(str(path), full_check=True)
    log.info("exported %s %s graph (opset %d) to %s", part, precision, opset, path)
    return path


def _export_dynamo(module: nn.Module, args, path: Path, part: str, opset: int, names: dict) -> None:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=256)
    h, w = Dim("height", min=8, max=8192), Dim("width", min=8, max=8192)
    fh, fw = Dim("feat_height", min=1, max=1024), Dim("feat_width", min=1, max=1024)
    spec = {"content": {0: batch, 2: h, 3: w}, "feat": {0: batch, 2: fh, 3: fw}}
    shapes = tuple(spec.get(n, {0: batch}) for n in INPUTS[part])
    torch.onnx.export(module, args, str(path), dynamo=True, opset_version=opset, dynamic_shapes=shapes,
                      external_data=False, **names)


# -- hashes and the cache -------------------------------------------------------------------------


def weights_hash(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes and bytes), independent of device."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def graph_hash(graph: StyleGraph) -> str:
    """What an export of `graph` depends on: its network and every weight in it (a user can load the AdaIN
    port's vgg_normalised.pth instead of our encoder; the lite network has a style head too)."""
    return hashlib.sha256((graph.kind + weights_hash(graph)).encode()).hexdigest()


def cache_dir(sub: str = "") -> Path:
    """~/.cache/stylestream (or $STYLESTREAM_CACHE), created on demand, with an optional subfolder."""
    root = Path(os.environ.get("STYLESTREAM_CACHE") or Path.home() / ".cache" / "stylestream").expanduser()
    path = root / sub if sub else root
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot create the cache folder {path}: {e}; set STYLESTREAM_CACHE to a "
                          "writable folder") from None
    return path


def export_key(graph_digest: str, part: str, precision: str, opset: int) -> str:
    return f"{part}-{precision}-op{opset}-v{EXPORT_VERSION}-{graph_digest[:20]}"


def cached_export(graph: StyleGraph, part: Part = "full", precision: Precision = "fp32",
                  opset: int = DEFAULT_OPSET, digest: str | None = None) -> Path:
    """The ONNX of `part` from the cache, exported (atomically) on the first call for these weights."""
    _check_args(part, precision)
    digest = digest or graph_hash(graph)
    folder = cache_dir("onnx")
    path = folder / f"stylestream-{export_key(digest, part, precision, opset)}.onnx"
    if path.is_file():
        log.debug("ONNX cache hit: %s", path)
        return path
    with atomic_output(path) as tmp:
        export_onnx(graph, tmp, part, precision, opset)
    return path
