"""scripts/gpu_session.sh in its dry-run mode: every command of the decoder, compare and speed phases runs on
the CPU at toy sizes, on generated data; the second run resumes from the checkpoint parts the first returned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")]


def _data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for sub, n in (("train/content", 4), ("train/style", 3), ("dev/content", 2), ("dev/style", 2),
                   ("dev/video/cats", 5)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
            cv2.imwrite(str(root / sub / f"{i:05d}.jpg"), cv2.resize(small, (64, 48), interpolation=cv2.INTER_CUBIC))
    return root


def _run(tmp: Path, phases: str, out: Path, **env) -> str:
    full_env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable, "DATA": str(tmp / "data"),
                "RUNS": str(tmp / "runs"), "CKPT": str(tmp / "ckpt"), "OUT": str(out), "PHASES": phases, **env}
    proc = subprocess.run(["bash", "scripts/gpu_session.sh"], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _results(out: Path) -> dict[str, bytes]:
    with tarfile.open(out / "results.tgz") as tar:
        return {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.timeout(1800)  # several Python processes, each importing torch: minutes on 2 cores
def test_dry_run_trains_returns_parts_and_resumes_from_them(tmp_path):
    _data(tmp_path / "data")
    out1 = tmp_path / "out1"
    log = _run(tmp_path, "trainspeed decoder", out1)
    assert "trainspeed [--batch-size 2 --compile eager] exit 0" in log and "decoder train exit 0" in log, log
    parts = sorted(p.name for p in out1.glob("checkpoint.safetensors.part*"))
    assert parts[-1] == "checkpoint.safetensors.parts.json" and len(parts) == 4  # 42 MB in 15 MiB parts
    assert len(list(out1.iterdir())) <= 8  # what a device call may return
    r = _results(out1)
    speeds = [json.loads(line) for line in r["trainspeed.jsonl"].decode().splitlines()]
    assert [s["steps"] for s in speeds] == [29154 + 2] * 2 and all(s["steps_per_s"] > 0 for s in speeds)
    with tarfile.open(out1 / "models.tgz") as tar:
        manifest = json.loads(tar.extractfile("./decoder.json").read())
    assert manifest["steps"] == 29154 + 2 and manifest["temporal_regulariser"]["weight"] == 30

    # The next lease: its parts come back into CKPT, and the chunk resumes from them.
    (tmp_path / "ckpt").mkdir()
    for p in out1.glob("checkpoint.safetensors.part*"):
        shutil.copy(p, tmp_path / "ckpt" / p.name)
    shutil.rmtree(tmp_path / "runs")
    out2 = tmp_path / "out2"
    assert "decoder train exit 0" in _run(tmp_path, "decoder", out2, DRY_STEPS="4")
    assert b"Resumed from" in _results(out2)["decoder-train.txt"]
    with tarfile.open(out2 / "models.tgz") as tar:
        assert json.loads(tar.extractfile("./decoder.json").read())["steps"] == 29154 + 4


@pytest.mark.timeout(1800)
def test_dry_run_of_the_speed_phases(tmp_path):
    _data(tmp_path / "data")
    out = tmp_path / "out"
    log = _run(tmp_path, "speed compiled", out)
    for line in ("speed variants exit 0", "profile default exit 0", "convert end to end exit 0",
                 "speed compiled 64x48 exit 0", "profile compiled exit 0"):
        assert line in log, log
    r = _results(out)
    variants = json.loads(r["speed-variants.json"])
    assert {row["variant"] for row in variants["results"]} == {"default", "fold-padding", "nchw", "no-cuda-graphs"}
    convert = json.loads(r["speed-convert.json"])["extra"]
    stages = next(iter(convert.values()))["convert_stages"]["stages"]["ms_per_frame"]
    every = {"decode", "upload", "network", "smoothing", "download", "encode"}
    assert every <= set(stages) <= every | {"blend"}  # blend: flow blending on the host (the dry run's CPU)
    assert any(name.startswith("profile-cpu-48x32") and name.endswith(".md") for name in r)
    compiled = json.loads(r["speed-compiled-64x48.json"])
    assert [row["variant"] for row in compiled["results"]] == ["eager-dynamo"]


@pytest.mark.slow
def test_bundle_leaves_out_noncommercial_files_and_its_vgg_loads(tmp_path, monkeypatch):
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import prepare_gpu_bundle as bundle

    from engines.vgg import load_encoder

    data = _data(tmp_path / "data")
    (data / "README.md").write_text("data\n")
    (data / "noncommercial.txt").write_text("train/content/00001.jpg\n")
    out = tmp_path / "bundle"
    bundle.pack_images(data, out, train_side=32)
    assert sorted(p.name for p in (out / "train/content").iterdir()) == ["00000.webp", "00002.webp", "00003.webp"]
    assert min(cv2.imread(str(out / "train/content/00000.webp")).shape[:2]) == 32
    assert len(list((out / "dev/video/cats").glob("*.jpg"))) == 5
    bundle.write_vgg(out)
    monkeypatch.setenv("STYLESTREAM_VGG", str(out / bundle.VGG_FILE))
    fp16 = load_encoder()
    monkeypatch.delenv("STYLESTREAM_VGG")
    reference = load_encoder()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = fp16(x), reference(x)
    assert not torch.equal(a, b)  # the fp16 file was used
    assert (a - b).abs().mean() < 1e-2 * b.abs().mean()
