"""`stylestream convert` end to end on the CPU: real MP4s with audio made here, the command run in a
subprocess as a user runs it (or in this process where only its errors matter), results read with PyAV.

Frames are 64 x 48 at --size 0 so that the real network runs in a fraction of a second per frame.
"""

from __future__ import annotations

import json
import select
import signal
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import error_lines, stylestream, stylestream_popen

CONFIGS = Path(__file__).parents[1] / "configs"


def probe(path: Path) -> dict:
    """What a player sees: video frames, rate, duration, size; the audio packets and where they end."""
    out: dict = {}
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        frames = list(c.decode(vs))
        out["frames"] = len(frames)
        out["images"] = [f.to_ndarray(format="bgr24") for f in frames]
        out["fps"] = float(vs.average_rate)
        out["duration"] = float(frames[-1].time) + 1 / out["fps"]
        out["size"] = (vs.codec_context.width, vs.codec_context.height)
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            packets = [p for p in c.demux(a) if p.size]
            out["audio_codec"] = a.codec_context.name
            out["audio_packets"] = [bytes(p) for p in packets]
            out["audio_end"] = max(float((p.pts + p.duration) * p.time_base) for p in packets)
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_convert_keeps_frames_rate_duration_and_copies_the_audio(make_video, tmp_path):
    src = make_video("in.mp4", frames=30, fps=25, size=(64, 48))
    dst = tmp_path / "new folder" / "styled.mp4"
    proc = stylestream("convert", src, "-o", dst, "--size", "0", "--stats")  # default style, smoothing on
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    got, want = probe(dst), probe(src)
    assert got["frames"] == want["frames"] == 30
    assert got["fps"] == want["fps"] == 25.0
    assert got["duration"] == pytest.approx(want["duration"], abs=1e-3)
    assert got["size"] == (64, 48)
    assert np.abs(got["images"][15].astype(int) - want["images"][15]).mean() > 10  # stylized, not a copy
    # the audio is copied, not re-encoded: the same codec and the very same packets, in sync to the end
    assert got["audio_codec"] == want["audio_codec"] == "aac"
    assert got["audio_packets"] == want["audio_packets"][: len(got["audio_packets"])]
    assert len(got["audio_packets"]) >= len(want["audio_packets"]) - 2
    assert got["audio_end"] == pytest.approx(want["audio_end"], abs=0.05)
    assert leftovers(dst.parent) == ["styled.mp4"]
    # stdout holds the --stats lines and nothing else (the progress bar is on stderr)
    stats = [json.loads(line) for line in proc.stdout.splitlines()]
    assert stats and stats[-1]["frames"] == 30 and stats[-1]["dropped"] == 0
    assert {"fps", "latency_ms_p50", "stylize_ms"} <= set(stats[-1])


def test_a_folder_of_videos_converts_into_a_folder(make_video, tmp_path, run_cli):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", frames=6, size=(64, 48))
    make_video(videos / "b.mov", frames=4, size=(48, 64), audio=False)
    (videos / "notes.txt").write_text("not a video, not picked up")
    code, _, err = run_cli("convert", videos, "-o", tmp_path / "styled", "-c", CONFIGS / "convert.yaml",
                           "--size", "0", "--no-smooth")  # options override the config
    assert code == 0, err
    assert leftovers(tmp_path / "styled") == ["a.mp4", "b.mp4"]
    a, b = probe(tmp_path / "styled" / "a.mp4"), probe(tmp_path / "styled" / "b.mp4")
    assert (a["frames"], a["size"], a["audio_codec"]) == (6, (64, 48), "aac")
    assert (b["frames"], b["size"]) == (4, (48, 64)) and "audio_codec" not in b


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_conversion_leaves_a_playable_file_of_the_frames_so_far(make_video, tmp_path, sig, status):
    src = make_video("long.mp4", frames=300, fps=25, size=(64, 48))
    dst = tmp_path / "out.mp4"
    proc = stylestream_popen("convert", src, "-o", dst, "--size", "0", "--no-smooth", "--stats")
    try:
        ready = select.select([proc.stdout], [], [], 120)[0]
        first = proc.stdout.readline() if ready else ""  # the first --stats line: frames are being written
        assert json.loads(first or "{}").get("frames", 0) > 0, proc.stderr.read() if proc.poll() is not None else ""
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err
    assert [line.split(":")[1].strip() for line in error_lines(err)] == ["interrupted"]
    assert leftovers(tmp_path) == ["long.mp4", "out.mp4"]  # no partial file beside it
    got = probe(dst)
    assert 0 < got["frames"] < 300 and got["fps"] == 25.0
    assert got["audio_codec"] == "aac" and got["audio_end"] <= got["duration"] + 0.05  # cut where the video ends


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _file(folder: Path, data: bytes) -> Path:
    path = folder / "in.mp4"
    path.write_bytes(data)
    return path


BAD_INPUTS = {  # (make_video, tmp_path) -> the input
    "corrupt": lambda mk, d: _file(d, np.random.default_rng(0).bytes(5000)),
    "truncated": lambda mk, d: _truncate(mk("in.mp4", frames=20, size=(64, 48)), 0.6),  # its index was at the end
    "cut short": lambda mk, d: _truncate(mk("in.mp4", frames=30, size=(64, 48), faststart=True), 0.6),
    "empty": lambda mk, d: _file(d, b""),
    "not a video": lambda mk, d: _file(d, b"hello"),
    "audio only": lambda mk, d: mk("in.mp4", frames=10, video=False),
    "no frames": lambda mk, d: mk("in.mp4", frames=0, audio=False),
    "missing": lambda mk, d: d / "in.mp4",
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_is_one_line_error_and_leaves_no_file(kind, make_video, tmp_path, run_cli):
    src = BAD_INPUTS[kind](make_video, tmp_path)
    before = leftovers(tmp_path)
    code, _, err = run_cli("convert", src, "-o", tmp_path / "out" / "styled.mp4", "--size", "0", "--no-smooth")
    assert code == 2
    (line,) = error_lines(err)
    assert "in.mp4" in line
    assert leftovers(tmp_path) == before  # nothing written, nothing half-written


@pytest.mark.parametrize("kind", ["under a file", "a folder", "unknown extension", "exists"])
def test_unusable_output_is_one_line_error_and_leaves_no_file(kind, make_video, tmp_path, run_cli):
    src = make_video("in.mp4", frames=3, size=(64, 48))
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "taken.mp4").write_bytes(b"keep me")
    dst = {"under a file": src / "out.mp4", "a folder": tmp_path / "folder.mp4",
           "unknown extension": tmp_path / "out.xyz", "exists": tmp_path / "taken.mp4"}[kind]
    before = leftovers(tmp_path)
    code, _, err = run_cli("convert", src, "-o", dst, "--size", "0", "--no-smooth")
    assert code == 2
    assert len(error_lines(err)) == 1
    assert leftovers(tmp_path) == before and (tmp_path / "taken.mp4").read_bytes() == b"keep me"
