"""`convert --ray` on a real local Ray cluster (ray.init(num_cpus=2): two CPU workers), compared with plain
`convert` of the same files: frame count, timestamps, audio packets, pixels.

Pixels: outputs are encoded losslessly here (crf 0), so a difference is the stylization's own. A whole
file and the first segment of a long file are identical to plain convert; a later segment starts
with a smoother warmed up on `WARMUP` frames instead of the whole past, and every one of its frames
stays within MAX_MEAN_DIFF (mean absolute difference, 0..255) of the single pass.

Clips are 64 x 48 so that the real network takes a fraction of a second per frame on a 2-core CPU.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import error_lines, write_video

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'stylestream[ray]'")

from streamer.app.run import run_convert  # noqa: E402
from streamer.cluster.driver import run_ray_convert  # noqa: E402
from streamer.cluster.plan import plan_file  # noqa: E402
from streamer.config import StreamConfig  # noqa: E402
from streamer.pipeline import Interrupted  # noqa: E402

pytestmark = pytest.mark.timeout(900)  # Ray start-up, the reference conversion: minutes on a busy 2-core machine
WARMUP = 8
MAX_MEAN_DIFF = 2.0
SETTINGS = {"size": 0, "engine": {"device": "cpu", "backend": "torch"}, "video": {"crf": 0}}
RAY = {"cpus_per_worker": 1, "segment_seconds": 1.0, "warmup_frames": WARMUP}


def config(**ray_settings) -> StreamConfig:
    return StreamConfig.model_validate({**SETTINGS, "ray": {**RAY, **ray_settings}})


def read(path: Path) -> dict:
    """Frame pts and images, and the audio packets, as a player reads them."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    out = {"pts": [f.pts for f in frames], "images": [f.to_ndarray(format="bgr24").astype(np.int16) for f in frames]}
    with av.open(str(path)) as c:
        out["audio"] = [(p.pts, bytes(p)) for p in c.demux(audio=0) if p.size] if c.streams.audio else []
    return out


@pytest.fixture(scope="module")
def ray_cluster(cache):
    """One local Ray for the module (start-up is slow); the workers inherit this environment (the cache)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Three short clips (one without audio) and a long one with a keyframe every second (3 segments)."""
    folder = tmp_path_factory.mktemp("library")
    write_video(folder / "a.mp4", frames=10, fps=12, size=(64, 48))
    write_video(folder / "b.mp4", frames=8, fps=12, size=(64, 48), audio=False)
    write_video(folder / "c.mp4", frames=6, fps=12, size=(64, 48))
    write_video(folder / "long.mp4", frames=36, fps=12, size=(64, 48), gop=12)
    return folder


@pytest.fixture(scope="module")
def reference(library, tmp_path_factory) -> Path:
    """Plain single-machine `convert` of the library, with the same settings."""
    out = tmp_path_factory.mktemp("reference")
    run_convert(StreamConfig.model_validate(SETTINGS), [library], out)
    return out


def assert_same_as_reference(got: Path, want: Path, split: bool) -> None:
    a, b = read(got), read(want)
    assert a["pts"] == b["pts"]          # every frame, at its time
    assert a["audio"] == b["audio"]      # the same audio packets, copied once
    diffs = [float(np.abs(x - y).mean()) for x, y in zip(a["images"], b["images"], strict=True)]
    if not split:
        assert max(diffs) == 0
    else:
        assert max(diffs[:12]) == 0      # the first segment is the single pass
        assert max(diffs) <= MAX_MEAN_DIFF, diffs
        assert max(diffs[12:]) > 0       # later ones really were stylized apart


def test_a_folder_and_a_long_file_equal_single_machine_convert(ray_cluster, library, reference, tmp_path):
    segments = plan_file(library / "long.mp4", tmp_path / "x.mp4", RAY["segment_seconds"], WARMUP).segments
    assert [s.frames for s in segments] == [12, 12, 12]
    assert [s.warm_frames for s in segments] == [0, WARMUP, WARMUP]

    out = tmp_path / "out"
    summary = run_ray_convert(config(), [library], out, bar=False)
    assert not summary.failed
    assert sorted(p.name for p in summary.written) == ["a.mp4", "b.mp4", "c.mp4", "long.mp4"]
    assert summary.frames == 10 + 8 + 6 + 36
    assert len(summary.workers) == 2
    for name in ("a.mp4", "b.mp4", "c.mp4", "long.mp4"):
        assert_same_as_reference(out / name, reference / name, split=name == "long.mp4")
    assert sorted(p.name for p in out.rglob("*")) == ["a.mp4", "b.mp4", "c.mp4", "long.mp4"]  # no parts left

    again = run_ray_convert(config(), [library], out, bar=False)  # a rerun: everything is complete
    assert not again.written and sorted(p.name for p in again.skipped) == ["a.mp4", "b.mp4", "c.mp4", "long.mp4"]


def test_sigterm_stops_the_workers_leaves_no_partial_file_and_a_rerun_resumes(ray_cluster, library, reference,
                                                                              tmp_path):
    out = tmp_path / "long.mp4"
    plan = plan_file(library / "long.mp4", out, RAY["segment_seconds"], WARMUP)

    def stop_after_a_segment() -> None:  # as a user would: once the first segment is finished
        deadline = time.monotonic() + 180
        while not any(plan.segment_path(s).exists() for s in plan.segments) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop_after_a_segment)
    stopper.start()
    with pytest.raises(Interrupted) as info:
        run_ray_convert(config(), [library / "long.mp4"], out, bar=False)
    stopper.join()
    assert info.value.exit_code == 128 + signal.SIGTERM
    kept = sorted(p.name for p in plan.parts_dir.iterdir())
    left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert not out.exists() and not [n for n in left if "partial" in n], left
    finished = [n for n in kept if n.startswith("seg-")]
    assert finished and len(finished) < 3 and kept == sorted([*finished, "plan.json"])

    summary = run_ray_convert(config(), [library / "long.mp4"], out, bar=False)  # the rerun
    assert summary.written == [out]
    assert summary.frames == 36 - 12 * len(finished)  # only the segments that were not finished
    assert_same_as_reference(out, reference / "long.mp4", split=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_a_corrupt_file_fails_alone_with_the_error_plain_convert_gives(ray_cluster, library, run_cli, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((library / "a.mp4").read_bytes())
    (folder / "bad.mp4").write_bytes(os.urandom(4096))
    code, _, plain = run_cli("convert", folder / "bad.mp4", "-o", tmp_path / "plain.mp4", "--device", "cpu")
    assert code == 2 and len(error_lines(plain)) == 1

    code, _, err = run_cli("convert", folder, "-o", tmp_path / "out", "--size", "0", "--device", "cpu",
                           "--backend", "torch", "--ray")
    assert code == 2
    assert error_lines(err) == error_lines(plain)
    assert "1 of 2 files converted" in err and "1 failed" in err
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["a.mp4"]


def _busy_worker_pid(timeout: float = 120) -> int:
    """The pid of one of this session's Ray workers while it converts a segment (its title says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                title = (proc / "cmdline").read_bytes()
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                grandparent = int((Path("/proc") / str(parent) / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            # ours: a worker under the raylet that this test process started
            if title.startswith(b"ray::ConvertWorker.convert") and grandparent == os.getpid():
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError("no Ray worker was seen converting")


def test_a_worker_killed_mid_segment_is_replaced_and_the_output_is_still_equal(ray_cluster, library, reference,
                                                                                tmp_path):
    out = tmp_path / "long.mp4"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        summary=run_ray_convert(config(), [library / "long.mp4"], out, bar=False)))
    thread.start()
    pid = _busy_worker_pid()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=240)
    summary = result["summary"]
    assert summary.retried >= 1
    assert not summary.failed and summary.written == [out]
    assert_same_as_reference(out, reference / "long.mp4", split=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["long.mp4"]


@pytest.mark.slow
def test_two_ray_nodes_started_with_ray_start_both_convert(tmp_path):
    """scripts/ray_two_nodes.py: `ray start --head` and `ray start --address` on 127.0.0.1, then `convert --ray`."""
    script = Path(__file__).parents[1] / "scripts" / "ray_two_nodes.py"
    proc = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "nodes that converted frames: 2" in proc.stdout
