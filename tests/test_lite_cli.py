"""The lite model from the command line: --model in image, convert and live, auto's choice, bad weights."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import error_lines, stylestream

from engines.lite.weights import DEFAULT_LITE

pytestmark = pytest.mark.skipif(not DEFAULT_LITE.is_file(), reason="no shipped lite weights")


def _photo(path, w=96, h=72):
    yy, xx = np.mgrid[:h, :w]
    img = np.stack([(xx * 2) % 256, (yy * 3) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (20, 200, 60), -1)
    cv2.imwrite(str(path), img)
    return path


def test_image_with_the_lite_model_differs_from_the_full_one(tmp_path, run_cli):
    src = _photo(tmp_path / "in.png")
    outs = {}
    for model in ("full", "lite"):
        code, _, err = run_cli("image", src, "-o", tmp_path / f"{model}.png", "--model", model, "--size", "0")
        assert code == 0, err
        outs[model] = cv2.imread(str(tmp_path / f"{model}.png")).astype(int)
    assert outs["lite"].shape == outs["full"].shape == (72, 96, 3)
    assert np.abs(outs["lite"] - cv2.imread(str(src)).astype(int)).mean() > 5  # stylized
    assert np.abs(outs["lite"] - outs["full"]).mean() > 1  # another network


def test_convert_with_lite_says_so_in_the_stats_and_keeps_every_frame(make_video, tmp_path):
    import av

    src = make_video("in.mp4", frames=12, fps=25, size=(64, 48))
    dst = tmp_path / "out.mp4"
    proc = stylestream("convert", src, "-o", dst, "--model", "lite", "--size", "0", "--stats")
    assert proc.returncode == 0, proc.stderr
    stats = [json.loads(line) for line in proc.stdout.splitlines()]
    assert stats[-1]["model"] == "lite" and stats[-1]["frames"] == 12
    with av.open(str(dst)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    assert "lite model" in proc.stderr  # the engine log line names the network


def test_live_auto_picks_lite_on_a_cpu_and_says_how_to_override(make_video, tmp_path):
    src = make_video("in.mp4", frames=8, fps=25, size=(64, 48), audio=False)
    proc = stylestream("live", "--source", src, "--no-loop", "--no-window", "--record", tmp_path / "rec.mp4",
                       "--model", "auto", "--device", "cpu", "--stats")
    assert proc.returncode == 0, proc.stderr
    assert "model auto -> lite" in proc.stderr and "--model full" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["model"] == "lite"


def test_convert_auto_picks_the_full_model(make_video, tmp_path):
    src = make_video("in.mp4", frames=4, fps=25, size=(64, 48), audio=False)
    proc = stylestream("convert", src, "-o", tmp_path / "o.mp4", "--size", "0", "--stats", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "model auto -> full" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["model"] == "full"


@pytest.mark.parametrize("content", [b"not weights at all", b""])
def test_bad_lite_weights_are_one_error_line(tmp_path, content, run_cli):
    bad = tmp_path / "lite.safetensors"
    bad.write_bytes(content)
    code, _, err = run_cli("image", _photo(tmp_path / "in.png"), "-o", tmp_path / "o.png", "--model", "lite",
                           "--decoder", bad)
    assert code == 2
    (line,) = error_lines(err)
    assert str(bad) in line and "lite" in line
    assert not (tmp_path / "o.png").exists()


def test_unknown_model_is_one_error_line(tmp_path, run_cli):
    code, _, err = run_cli("image", _photo(tmp_path / "in.png"), "-o", tmp_path / "o.png", "--model", "huge")
    assert code == 2
    assert len(error_lines(err)) == 1 and "huge" in err
