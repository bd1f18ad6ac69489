"""Two runs, one output: each run writes its own partial file, a second run for an output that a live run is
writing is refused with one line naming it, and partial files of a run killed with SIGKILL are cleaned up.

Real `stylestream convert` subprocesses. The first run is paused (SIGSTOP) once its partial file exists,
so "the first run is still writing" does not depend on how fast this machine is.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import av
import pytest
from conftest import error_lines, stylestream, stylestream_popen

from streamer.partial_files import stale_partials
from streamer.sinks.video_file import VideoFileSink


def frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def wait_for_partial(folder: Path, proc, timeout: float = 120) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = list(folder.glob(".out.partial-*.mp4"))
        if found:
            return found[0]
        if proc.poll() is not None:
            pytest.fail(f"the first run ended before writing: {proc.communicate()[1]}")
        time.sleep(0.05)
    pytest.fail("the first run wrote no partial file in time")


def test_a_second_run_for_an_output_being_written_is_refused_and_the_first_is_intact(make_video, tmp_path):
    a = make_video("a.mp4", frames=12, size=(64, 48), audio=False)
    b = make_video("b.mp4", frames=5, size=(64, 48), audio=False)
    out = tmp_path / "out.mp4"
    first = stylestream_popen("convert", a, "-o", out, "--size", "0", "-s", "starry-night", "--no-smooth")
    try:
        partial = wait_for_partial(tmp_path, first)
        os.kill(first.pid, signal.SIGSTOP)  # "still writing", however slow or fast this machine is
        assert partial.name.startswith(f".out.partial-{first.pid}-")
        second = stylestream("convert", b, "-o", out, "--size", "0", "-s", "the-scream", timeout=300)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, second.stderr
    (line,) = error_lines(second.stderr)
    assert str(out) in line and "being written by another stylestream run" in line and str(first.pid) in line
    assert frame_count(out) == 12  # the first run's frames, not the second's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4", "out.mp4"]


def test_partial_files_of_a_killed_run_are_cleaned_up_by_the_next_run(make_video, tmp_path):
    a = make_video("a.mp4", frames=12, size=(64, 48), audio=False)
    out = tmp_path / "out.mp4"
    first = stylestream_popen("convert", a, "-o", out, "--size", "0", "--no-smooth")
    partial = wait_for_partial(tmp_path, first)
    first.kill()  # SIGKILL: no cleanup runs
    first.communicate(timeout=60)
    assert partial.exists() and (tmp_path / ".out.mp4.lock").exists()
    assert stale_partials(out) == [partial]  # its pid is gone
    second = stylestream("convert", a, "-o", out, "--size", "0", "--no-smooth", timeout=300)
    assert second.returncode == 0, second.stderr
    assert frame_count(out) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "out.mp4"]


def test_the_partial_file_of_a_live_run_is_never_taken_for_stale(tmp_path):
    out = tmp_path / "out.mp4"
    mine = tmp_path / f".out.partial-{os.getpid()}-abc123.mp4"
    dead = tmp_path / ".out.partial-999999999-abc123.mp4"   # no such pid
    old_style = tmp_path / ".out.partial.mp4"
    other_output = tmp_path / ".out2.partial-999999999-abc123.mp4"
    for p in (mine, dead, old_style, other_output):
        p.write_bytes(b"x")
    assert sorted(stale_partials(out)) == sorted([dead, old_style])


def test_two_sinks_in_one_process_cannot_write_the_same_output(make_video, tmp_path):
    from streamer.frame import StreamInfo

    out = tmp_path / "out.mp4"
    first, second = VideoFileSink(out, audio=False), VideoFileSink(out, audio=False)
    first.open(StreamInfo(64, 48, 25.0))
    with pytest.raises(Exception, match="being written by another stylestream run"):
        second.open(StreamInfo(64, 48, 25.0))
    first.abort()
    assert list(tmp_path.iterdir()) == []
