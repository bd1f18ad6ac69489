"""streamer.cluster without Ray: cutting a file at keyframes, and `--ray` where Ray is not installed."""

from __future__ import annotations

import sys
from fractions import Fraction

import pytest
from conftest import error_lines

from streamer.cluster.plan import cut_segments, plan_file

TB = Fraction(1, 1000)


def frames(n: int, step: int = 40) -> list[int]:
    return [i * step for i in range(n)]  # 25 fps in milliseconds


def test_segments_start_on_keyframes_and_cover_every_frame_once():
    pts = frames(250)  # 10 s
    keys = pts[::25]   # one keyframe a second
    segments = cut_segments(pts, keys, TB, segment_seconds=3.0, warmup=10)
    assert [s.start for s in segments] == [0, 3000, 6000]  # the last 4 s are not cut (1 s would be left)
    assert all(s.start in keys for s in segments)
    assert [s.end for s in segments] == [3000, 6000, None]
    assert sum(s.frames for s in segments) == 250
    assert [s.warm_frames for s in segments] == [0, 10, 10]
    assert [s.warm_start for s in segments] == [0, 3000 - 400, 6000 - 400]


def test_keyframes_decide_where_a_file_can_be_cut():
    pts = frames(250)
    assert len(cut_segments(pts, [0], TB, 3.0, 10)) == 1           # one keyframe: one unit
    segments = cut_segments(pts, [0, 5000], TB, 3.0, 10)            # the first keyframe after 3 s
    assert [(s.start, s.frames) for s in segments] == [(0, 125), (5000, 125)]
    assert len(cut_segments(pts, pts, TB, 20.0, 10)) == 1           # shorter than a segment


def test_warm_up_never_reaches_before_the_file():
    pts = frames(50)
    segments = cut_segments(pts, pts[::10], TB, 0.4, warmup=32)
    assert segments[1].warm_start == 0 and segments[1].warm_frames == 10


def test_a_long_file_is_planned_from_its_packets(make_video, tmp_path):
    src = make_video("long.mp4", frames=36, fps=12, size=(64, 48), gop=12)
    plan = plan_file(src, tmp_path / "out.mp4", segment_seconds=1.0, warmup=4)
    assert plan.frames == 36 and plan.split
    assert [s.frames for s in plan.segments] == [12, 12, 12]
    assert plan.seconds == pytest.approx(3.0)
    assert plan.parts_dir == tmp_path / ".out.mp4.parts"


def test_without_ray_convert_ray_says_how_to_install_it(make_video, run_cli, monkeypatch, tmp_path):
    src = make_video("in.mp4", frames=4, size=(64, 48))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    code, _, err = run_cli("convert", src, "-o", tmp_path / "out.mp4", "--ray")
    assert code == 2
    assert error_lines(err) == ["error: --ray needs Ray, which is not installed: pip install 'stylestream[ray]'"]
    assert not (tmp_path / "out.mp4").exists()


def test_ray_takes_an_address_not_an_input(make_video, run_cli, tmp_path):
    a, b = make_video("a.mp4", frames=4, size=(64, 48)), make_video("b.mp4", frames=4, size=(64, 48))
    code, _, err = run_cli("convert", "-o", tmp_path / "out", "--ray", a, b)  # a is taken as the address
    assert code == 2
    (line,) = error_lines(err)
    assert "put the inputs before --ray" in line
