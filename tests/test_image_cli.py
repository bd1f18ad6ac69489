"""`stylestream image` end to end on the CPU, through the real console entry point."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engines.decoder import random_decoder


@pytest.fixture(scope="module")
def decoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "decoder.pth"
    torch.save(random_decoder(0).state_dict(), path)
    return path


def _image(path, w=80, h=60, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def run(*args):
    proc = subprocess.run([sys.executable, "-m", "streamer.app.cli", "image", *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stderr


def test_one_file_with_blend_colour_and_size(tmp_path, decoder):
    content = _image(tmp_path / "c.png")
    style = _image(tmp_path / "s.jpg", seed=1)
    out = tmp_path / "out.png"
    code, err = run(content, "--style", style, "--style", "great-wave", "--style-weights", "0.7,0.3",
                    "--preserve-color", "--size", "48", "--decoder", decoder, "-o", out)
    assert code == 0, err
    assert Image.open(out).size == (64, 48)


def test_folder_in_folder_out_with_mask(tmp_path, decoder):
    src = tmp_path / "in"
    src.mkdir()
    _image(src / "a.png")
    _image(src / "b.jpg", seed=2)
    mask = np.zeros((60, 80), np.uint8)
    mask[:, :40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, err = run(src, "--style", "starry-night", "--style", "great-wave", "--mask", tmp_path / "mask.png",
                    "--size", "0", "--decoder", decoder, "-o", tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.jpg"]


def test_unreadable_file_stops_before_anything_is_written(tmp_path, decoder):
    src = tmp_path / "in"
    src.mkdir()
    _image(src / "a.png")
    (src / "b.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    out = tmp_path / "out"
    code, err = run(src, "--style", "starry-night", "--decoder", decoder, "-o", out)
    assert code == 2
    assert "b.jpg" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_huge_image_is_refused_with_the_option_to_raise_the_limit(tmp_path, decoder):
    content = _image(tmp_path / "c.png", 200, 100)
    code, err = run(content, "--style", "starry-night", "--max-pixels", "10000", "--decoder", decoder,
                    "-o", tmp_path / "o.png")
    assert code == 2 and "--max-pixels" in err and "Traceback" not in err


def test_missing_decoder_weights_is_a_clear_error(tmp_path):
    content = _image(tmp_path / "c.png")
    code, err = run(content, "--style", "starry-night", "--decoder", tmp_path / "none.safetensors",
                    "-o", tmp_path / "o.png")
    assert code == 2 and "not found" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def test_bad_arguments(tmp_path, decoder):
    content = _image(tmp_path / "c.png")
    code, err = run(content, "--style", "no-such-preset", "--decoder", decoder, "-o", tmp_path / "o.png")
    assert code == 2 and "no-such-preset" in err and "Traceback" not in err
    code, err = run(content, "--style", "starry-night", "--alpha", "1.5", "-o", tmp_path / "o.png")
    assert code == 2 and "Traceback" not in err


def test_gatys_method_runs_its_step_budget(tmp_path):
    content = _image(tmp_path / "c.png", 40, 32)
    style = _image(tmp_path / "s.png", 40, 32, seed=3)
    out = tmp_path / "g.png"
    code, err = run(content, "--style", style, "--method", "gatys", "--steps", "3", "--size", "32",
                    "--style-size", "64", "-o", out)
    assert code == 0, err
    assert Image.open(out).size == (40, 32)


def test_config_file_supplies_style_and_strength(tmp_path, decoder):
    """-c works for `image` too: the config's styles and alpha are used; options override them."""
    content = _image(tmp_path / "c.png")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"styles: [great-wave]\nalpha: 0.0\nengine:\n  decoder: {decoder}\n")
    code, err = run(content, "-c", cfg, "--size", "0", "-o", tmp_path / "a0.png")
    assert code == 0, err
    code, err = run(content, "-c", cfg, "--alpha", "1", "--size", "0", "-o", tmp_path / "a1.png")
    assert code == 0, err
    a0 = np.asarray(Image.open(tmp_path / "a0.png"), dtype=np.float32)
    a1 = np.asarray(Image.open(tmp_path / "a1.png"), dtype=np.float32)
    assert np.abs(a0 - a1).mean() > 1  # the option overrode the config's alpha: a different picture
    cfg.write_text("styles: [great-wave]\nalpah: 0.5\n")
    code, err = run(content, "-c", cfg, "-o", tmp_path / "bad.png")
    assert code == 2 and "alpah" in err and "Traceback" not in err
