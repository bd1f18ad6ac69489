"""Hostile but realistic input: each case is one `error:` line and exit 2 (or works), never a traceback, never
silent garbage, never a replaced file. Real files made here (PNGs, YAML, safetensors, text) and the real CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_lines
from PIL import Image
from safetensors.torch import save_file

from engines.adain import StyleCode, blend_styles
from engines.decoder import DEFAULT_DECODER, load_decoder
from engines.errors import InputError, WeightsError
from engines.images import load_image, pixels_text, work_size
from engines.presets import PRESET_DIR


def png(path: Path, w: int, h: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def one_error(code: int, err: str) -> str:
    assert code == 2, err
    (line,) = error_lines(err)
    return line


# -- shapes and sizes ---------------------------------------------------------------------------------

def test_a_60000x2_png_is_refused_as_content_and_as_style(run_cli, tmp_path):
    wide = png(tmp_path / "wide.png", 60000, 2)
    small = png(tmp_path / "small.png", 50, 40)
    line = one_error(*run_cli("image", wide, "-o", tmp_path / "a.png", "--size", "64")[::2])
    assert "60000x2" in line and "32 times" in line
    line = one_error(*run_cli("image", small, "-o", tmp_path / "b.png", "-s", wide, "--size", "64")[::2])
    assert "wide.png" in line and "32 times" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png", "wide.png"]


def test_the_work_is_bounded_by_the_pixels_processed_not_only_decoded(run_cli, tmp_path):
    thin = png(tmp_path / "thin.png", 1200, 40)  # 48k pixels, 30:1
    assert work_size(40, 1200, 64, 10**6, "x") == (64, 1920)
    with pytest.raises(InputError, match="would be processed at 61440x2048"):
        work_size(40, 1200, 2048, 50_000_000, "thin.png")
    line = one_error(*run_cli("image", thin, "-o", tmp_path / "o.png", "--size", "2048")[::2])
    assert "lower --size" in line and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("size", ["1", "8", "15", "31"])
def test_sizes_under_the_network_minimum_are_refused(run_cli, tmp_path, size):
    small = png(tmp_path / "small.png", 50, 40)
    line = one_error(*run_cli("image", small, "-o", tmp_path / "o.png", "--size", size)[::2])
    assert "minimum of 32" in line
    line = one_error(*run_cli("convert", tmp_path / "none.mp4", "-o", tmp_path / "o.mp4", "--size", size)[::2])
    assert "'size'" in line and "at least 32" in line


@pytest.mark.parametrize("value", ["1", "true", "8"])
def test_yaml_sizes_under_the_minimum_or_not_numbers_are_refused(run_cli, tmp_path, value):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"size: {value}\n")
    line = one_error(*run_cli("convert", tmp_path / "none.mp4", "-o", tmp_path / "o.mp4", "-c", cfg)[::2])
    assert "c.yaml: bad value for 'size'" in line


def test_a_1x1_image_at_native_size_is_stylized_at_its_size(run_cli, tmp_path):
    one = png(tmp_path / "one.png", 1, 1)
    code, _, err = run_cli("image", one, "-o", tmp_path / "out.png", "--size", "0")
    assert code == 0 and not error_lines(err)
    assert Image.open(tmp_path / "out.png").size == (1, 1)


def test_a_100_mp_png_loads_under_a_200_mp_limit_and_limits_read_well(tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (10000, 10000), 90).save(big)  # 100 MP, over PIL's own 89.5 MP bomb limit
    assert load_image(big, 200_000_000).shape == (10000, 10000, 3)
    with pytest.raises(InputError, match=r"10000x10000 \(100 MP\), over the limit of 50 MP"):
        load_image(big, 50_000_000)
    assert pixels_text(120_000) == "0.12 MP" and pixels_text(400) == "400 pixels"
    small = png(tmp_path / "s.png", 50, 40)
    with pytest.raises(InputError, match=r"\(2000 pixels\), over the limit of 100 pixels"):
        load_image(small, 100)


# -- files that are not what they claim ---------------------------------------------------------------

def test_a_non_utf8_yaml_is_one_line(run_cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"size: 64\nstyles: [\xff\xfe]\n")
    line = one_error(*run_cli("convert", tmp_path / "x.mp4", "-o", tmp_path / "o.mp4", "-c", cfg)[::2])
    assert "not a UTF-8 text file" in line and "c.yaml" in line


@pytest.mark.parametrize("name", ["decoder.pth", "decoder.safetensors"])
def test_a_text_file_as_decoder_is_one_line(run_cli, tmp_path, name):
    dec = tmp_path / name
    dec.write_text("this is not a network\n")
    small = png(tmp_path / "small.png", 50, 40)
    line = one_error(*run_cli("image", small, "-o", tmp_path / "o.png", "--size", "64", "--decoder", dec,
                              "--model", "full")[::2])
    assert name in line and "not a .safetensors or PyTorch state dict" in line


def code_file(path: Path, mean: torch.Tensor, std: torch.Tensor) -> Path:
    save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(path))
    return path


GOOD = StyleCode.load(PRESET_DIR / "udnie.safetensors")


@pytest.mark.parametrize(("mean", "std", "expect"), [
    (GOOD.mean[:300], GOOD.std[:300], r"tensor 'mean' has shape \(300,\)"),
    (GOOD.mean.reshape(2, 480), GOOD.std.reshape(2, 480), r"tensor 'mean' has shape \(2, 480\)"),
    (GOOD.mean, torch.cat([GOOD.std[:-1], torch.tensor([float("nan")])]), "tensor 'std' holds NaN or inf"),
    (torch.cat([GOOD.mean[:-1], torch.tensor([float("inf")])]), GOOD.std, "tensor 'mean' holds NaN or inf"),
    (GOOD.mean, -GOOD.std, "tensor 'std' has negative values"),
])
def test_bad_style_codes_are_refused_naming_the_file_and_tensor(run_cli, tmp_path, mean, std, expect):
    code = code_file(tmp_path / "bad.safetensors", mean, std)
    with pytest.raises(InputError, match=expect):
        StyleCode.load(code)
    small = png(tmp_path / "small.png", 50, 40)
    line = one_error(*run_cli("image", small, "-o", tmp_path / "o.png", "--size", "64", "-s", code)[::2])
    assert "bad.safetensors" in line
    assert not (tmp_path / "o.png").exists()


def test_a_decoder_with_nan_is_refused_naming_the_tensor(tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(DEFAULT_DECODER))
    name = sorted(state)[3]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad))
    with pytest.raises(WeightsError, match=rf"nan.safetensors: tensor {name} holds NaN or inf"):
        load_decoder(bad)


@pytest.mark.parametrize("weights", ["nan,1", "inf,1", "1,-inf"])
def test_non_finite_style_weights_are_refused(run_cli, tmp_path, weights):
    with pytest.raises(InputError, match="finite|non-negative"):
        blend_styles([GOOD, GOOD], [float(w) for w in weights.split(",")])
    small = png(tmp_path / "small.png", 50, 40)
    line = one_error(*run_cli("image", small, "-o", tmp_path / "o.png", "--size", "64", "-s", "udnie", "-s",
                              "mondrian", "--style-weights", weights)[::2])
    assert "weights" in line.lower()


# -- what is written ----------------------------------------------------------------------------------

def test_image_refuses_to_replace_a_file_without_overwrite_and_follows_the_umask(run_cli, tmp_path):
    small = png(tmp_path / "small.png", 50, 40)
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    line = one_error(*run_cli("image", small, "-o", out, "--size", "64")[::2])
    assert "already exists" in line and "--overwrite" in line
    assert out.read_bytes() == b"precious"
    old = os.umask(0o027)
    try:
        code, _, err = run_cli("image", small, "-o", out, "--size", "64", "--overwrite")
    finally:
        os.umask(old)
    assert code == 0, err
    assert Image.open(out).size == (80, 64)
    assert out.stat().st_mode & 0o777 == 0o640


def test_a_folder_batch_with_a_broken_file_writes_nothing(run_cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    png(folder / "a.png", 50, 40)
    broken = png(folder / "b.png", 50, 40, seed=1)
    broken.write_bytes(broken.read_bytes()[: len(broken.read_bytes()) // 2])  # header intact, data cut
    png(folder / "c.png", 50, 40, seed=2)
    line = one_error(*run_cli("image", folder, "-o", tmp_path / "out", "--size", "64")[::2])
    assert "b.png" in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_convert_batch_with_a_file_that_breaks_midway_is_one_line_and_keeps_the_finished(run_cli, tmp_path):
    from conftest import write_video

    folder = tmp_path / "in"
    folder.mkdir()
    write_video(folder / "a.mp4", frames=4, size=(64, 48), audio=False)
    b = write_video(folder / "b.mp4", frames=30, size=(64, 48), audio=False, faststart=True)
    b.write_bytes(b.read_bytes()[: b.stat().st_size * 6 // 10])  # its header says 30 frames; about half are there
    out = tmp_path / "out"
    line = one_error(*run_cli("convert", folder, "-o", out, "--size", "32", "--no-smooth", "--model", "full")[::2])
    assert "b.mp4" in line and "1 finished before it and kept: a.mp4" in line
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"]  # no partial file, no lock
