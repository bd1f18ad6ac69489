"""ONNX export of the per-frame graph: checker, dynamic shapes, parity with torch, the fp16 variant, the cache."""

import functools

import onnx
import pytest
import torch

from engines.decoder import random_decoder
from engines.errors import ConfigError
from engines.export import (
    FEAT_CHANNELS,
    INPUTS,
    OUTPUTS,
    cached_export,
    export_onnx,
)
from engines.files import file_sha256
from engines.graph import StyleGraph, load_graph

ort = pytest.importorskip("onnxruntime")

# Max abs difference from torch fp32, on outputs in [0, 1]. fp32: measured ~1.5e-5 (summation order
# differs between oneDNN and ORT's kernels). fp16 (convolutions in half, statistics in fp32): ~0.02.
FP32_BOUND = 1e-4
FP16_BOUND = 0.06
SHAPES = [(2, 64, 96), (1, 80, 48), (1, 37, 50)]  # batch, height, width; 37x50 has odd feature sizes


@pytest.fixture(scope="module")
def graph():
    # The shipped decoder: a random one clamps most pixels to 0 or 1, which would hide differences.
    return load_graph()


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


def _export(graph, folder, part, precision):
    return export_onnx(graph, folder / f"{part}-{precision}.onnx", part, precision)


def _full_inputs(graph, n: int, h: int, w: int, precision: str = "fp32") -> tuple[torch.Tensor, ...]:
    """Content noise and a style measured from another image (realistic relu4_1 statistics)."""
    gen = torch.Generator().manual_seed(n * 1000 + h + w)
    content = torch.rand(n, 3, h, w, generator=gen)
    with torch.no_grad():
        _, mean, std = graph.encode(torch.rand(1, 3, 64, 64, generator=gen))
    alpha = torch.linspace(1.0, 0.5, n)
    content = content.half() if precision == "fp16" else content
    return content, mean.expand(n, -1).contiguous(), std.expand(n, -1).contiguous(), alpha


@pytest.fixture(scope="module")
def full_fp32(graph, onnx_dir):
    return _export(graph, onnx_dir, "full", "fp32")


@pytest.fixture(scope="module")
def full_fp16(graph, onnx_dir):
    return _export(graph, onnx_dir, "full", "fp16")


@functools.cache
def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(path, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    sess = _session(path)
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs, strict=True)}
    return [torch.from_numpy(o) for o in sess.run(None, feed)]


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _elem_types(model) -> dict[str, int]:
    """Element type of every named tensor in the graph (after ONNX shape inference)."""
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def test_fp32_passes_checker_with_dynamic_batch_height_width(full_fp32):
    model = onnx.load(str(full_fp32))
    onnx.checker.check_model(model, full_check=True)
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == list(INPUTS["full"])
    assert [o.name for o in model.graph.output] == list(OUTPUTS["full"])
    assert _dims(inputs["content"]) == ["batch", 3, "height", "width"]
    assert _dims(inputs["style_mean"]) == ["batch", FEAT_CHANNELS]
    assert _dims(inputs["alpha"]) == ["batch"]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in model.graph.input)


@pytest.mark.parametrize("n,h,w", SHAPES)
def test_fp32_matches_torch_at_any_size(graph, full_fp32, n, h, w):
    inputs = _full_inputs(graph, n, h, w)
    (out,) = _run(full_fp32, inputs)
    with torch.no_grad():
        ref = graph(*inputs)
    assert out.shape == (n, 3, h, w) == ref.shape
    interior = ((ref > 0) & (ref < 1)).float().mean()
    assert interior > 0.2, "the comparison would be vacuous if everything were clamped"
    assert (out - ref).abs().max() < FP32_BOUND


@pytest.fixture(scope="module")
def decode_fp32(graph, onnx_dir):
    return _export(graph, onnx_dir, "decode", "fp32")


def test_encode_and_decode_parts_match_torch(graph, onnx_dir, decode_fp32):
    enc = _export(graph, onnx_dir, "encode", "fp32")
    dec = decode_fp32
    content, style_mean, style_std, alpha = _full_inputs(graph, 2, 37, 50)
    feat, mean, std = _run(enc, (content,))
    with torch.no_grad():
        rfeat, rmean, rstd = graph.encode(content)
    assert feat.shape == rfeat.shape == (2, FEAT_CHANNELS, 5, 7)
    for a, b in ((feat, rfeat), (mean, rmean), (std, rstd)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    # Statistics as an input: the decoder half takes (possibly smoothed) content statistics.
    (image,) = _run(dec, (rfeat, rmean * 0.9, rstd * 1.1, style_mean, style_std, alpha * 0.5))
    with torch.no_grad():
        ref = graph.decode(rfeat, rmean * 0.9, rstd * 1.1, style_mean, style_std, alpha * 0.5)
    assert image.shape == (2, 3, 40, 56)  # uncropped: the caller crops to 37x50
    assert (image - ref).abs().max() < FP32_BOUND


def test_fp16_is_half_where_intended_and_statistics_stay_fp32(graph, full_fp16):
    model = onnx.load(str(full_fp16))
    onnx.checker.check_model(model, full_check=True)
    F16, F32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io == {"content": F16, "style_mean": F32, "style_std": F32, "alpha": F32, "stylized": F16}
    assert {t.data_type for t in model.graph.initializer} == {F16}  # the weights
    types = _elem_types(model)
    by_op: dict[str, set[int]] = {}
    for node in model.graph.node:
        by_op.setdefault(node.op_type, set()).update(types.get(o, 0) for o in node.output)
    assert by_op["Conv"] == {F16}
    # mean_std and AdaIN: the reductions, the sqrt and the division run in fp32 ...
    assert by_op["ReduceMean"] == {F32} and by_op["Sqrt"] == {F32} and by_op["Div"] == {F32}
    # ... between explicit casts, so a strongly typed TensorRT network gets its precision from the graph.
    casts = [(types[n.input[0]], types[n.output[0]]) for n in model.graph.node if n.op_type == "Cast"]
    assert (F16, F32) in casts and (F32, F16) in casts
    assert next(graph.parameters()).dtype == torch.float32, "exporting fp16 must not change the caller's graph"


def test_fp16_runs_in_onnxruntime_close_to_torch_fp32(graph, full_fp16):
    inputs = _full_inputs(graph, 2, 64, 96, "fp16")
    try:
        sess = _session(full_fp16)
    except Exception as e:  # noqa: BLE001 - an ORT build without fp16 CPU kernels; the structure is tested above
        pytest.skip(f"this onnxruntime cannot run the fp16 graph on the CPU: {e}")
    feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs, strict=True)}
    (out,) = sess.run(None, feed)
    assert out.dtype.name == "float16" and out.shape == (2, 3, 64, 96)
    with torch.no_grad():
        ref = graph(*(t.float() for t in inputs))
    assert (torch.from_numpy(out).float() - ref).abs().max() < FP16_BOUND


def test_cached_export_reuses_the_file_and_is_deterministic(graph, decode_fp32, tmp_path, monkeypatch):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path))
    first = cached_export(graph, "decode", "fp32")
    assert first.parent == tmp_path / "onnx" and first.is_file()
    # Same weights, same bytes: the TensorRT engine cache is keyed by this hash, so a re-export
    # (e.g. after the ONNX cache was cleared) must not force an engine rebuild.
    assert file_sha256(first) == file_sha256(decode_fp32)
    stamp = first.stat().st_mtime_ns
    assert cached_export(graph, "decode", "fp32") == first and first.stat().st_mtime_ns == stamp
    other = StyleGraph(graph.encoder, random_decoder(1))
    assert cached_export(other, "decode", "fp32") != first, "new decoder weights must not hit the old export"
    assert not list(tmp_path.glob("onnx/*.tmp*")), "no temporary files left behind"


def test_bad_part_or_precision_is_a_config_error(graph, tmp_path):
    with pytest.raises(ConfigError, match="part"):
        export_onnx(graph, tmp_path / "x.onnx", part="middle")
    with pytest.raises(ConfigError, match="fp32 or fp16"):
        export_onnx(graph, tmp_path / "x.onnx", precision="int8")
