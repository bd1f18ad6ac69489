"""VideoFileSink round trips on real files made with PyAV, read back with PyAV."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.partial_files import describe_os_error
from streamer.sinks import Sink
from streamer.sinks.video_file import VideoFileSink
from streamer.sources.video_file import VideoFileSource

ROOT = Path(__file__).resolve().parents[1]


def convert(src: Path, dst: Path, limit: int | None = None, close: bool = True,
            **sink_options) -> VideoFileSink:
    """Source frames straight into the sink (no engine: the sink is what is tested)."""
    sink = VideoFileSink(dst, **sink_options)
    with VideoFileSource(src) as source:
        sink.open(source.info)
        for frame in source:
            if limit is not None and frame.index >= limit:
                break
            sink.write(frame)
    if close:
        sink.close()
    return sink


def probe(path: Path) -> dict:
    """What a player would see: decoded video frames and times, the packets of each stream."""
    out: dict = {}
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        out["codec"] = vs.codec_context.name
        out["fps"] = float(vs.average_rate)
        out["size"] = (vs.codec_context.width, vs.codec_context.height)
        frames = list(c.decode(vs))
        out["frames"] = [f.to_ndarray(format="bgr24") for f in frames]
        out["times"] = [float(f.time) for f in frames]
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            out["audio_codec"] = a.codec_context.name
            packets = [p for p in c.demux(a) if p.size]
            out["audio_packets"] = [bytes(p) for p in packets]
            out["audio_end"] = max(float((p.pts + p.duration) * p.time_base) for p in packets)
    return out


def source_audio(path: Path) -> tuple[list[bytes], float]:
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.audio[0]) if p.size]
        return [bytes(p) for p in packets], max(float((p.pts + p.duration) * p.time_base) for p in packets)


def video_duration(p: dict) -> float:
    return p["times"][-1] + 1 / p["fps"]


def test_sink_is_a_sink():
    assert issubclass(VideoFileSink, Sink)


def test_round_trip_keeps_frames_rate_duration_and_copies_the_audio(make_video, tmp_path, frame_marker):
    src = make_video("in.mp4", frames=30, fps=25, audio=True)
    dst = tmp_path / "out.mp4"
    sink = convert(src, dst)
    assert dst.exists() and not sink.partial.exists()
    got = probe(dst)
    assert got["codec"] == "h264" and got["size"] == (128, 96)
    assert len(got["frames"]) == 30 and got["fps"] == 25.0
    assert [frame_marker(f) for f in got["frames"]] == list(range(30))
    assert got["times"] == pytest.approx([i / 25 for i in range(30)], abs=1e-3)
    assert video_duration(got) == pytest.approx(1.2, abs=1 / 25)
    src_packets, src_end = source_audio(src)
    assert got["audio_codec"] == "aac"
    # copied, not re-encoded: the very same packets, cut at most at the video's end
    assert got["audio_packets"] == src_packets[: len(got["audio_packets"])]
    assert len(got["audio_packets"]) >= len(src_packets) - 2
    assert got["audio_end"] == pytest.approx(src_end, abs=0.05)
    assert sink.frames_written == 30


def test_audio_is_interleaved_as_frames_are_written(make_video, tmp_path):
    src = make_video("in.mp4", frames=50, fps=25, size=(64, 48))
    sink = VideoFileSink(tmp_path / "out.mp4")
    written_at_half = None
    with VideoFileSource(src) as source:
        sink.open(source.info)
        for frame in source:
            sink.write(frame)
            if frame.index == 24:
                written_at_half = sink.audio_packets_written
    sink.close()
    total = sink.audio_packets_written
    # after 1 s of video, about 1 s of audio (of 2) went in: not all at the start, not all at the end
    assert 0.4 * total < written_at_half < 0.6 * total


def test_interrupted_conversion_is_a_playable_file_with_audio_cut_at_the_video(make_video, tmp_path,
                                                                               frame_marker):
    src = make_video("in.mp4", frames=30, fps=25)
    dst = tmp_path / "out.mp4"
    convert(src, dst, limit=15)  # what the loop does on Ctrl-C: close() after the frames so far
    got = probe(dst)
    assert len(got["frames"]) == 15
    assert [frame_marker(f) for f in got["frames"]] == list(range(15))
    end = video_duration(got)
    assert end == pytest.approx(0.6, abs=1 / 25)
    assert end - 0.05 < got["audio_end"] <= end + 0.03  # one AAC packet is ~21 ms


def test_partial_file_is_hidden_until_close(make_video, tmp_path):
    src = make_video("in.mp4", frames=10)
    dst = tmp_path / "out.mp4"
    sink = convert(src, dst, close=False)
    assert sink.partial.parent == tmp_path and sink.partial.name.startswith(f".out.partial-{os.getpid()}-")
    assert sink.partial.suffix == ".mp4"
    assert sink.partial.exists() and not dst.exists()
    sink.close()
    assert dst.exists() and not sink.partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]  # the lock file is gone too
    sink.close()  # twice is harmless
    assert dst.exists()


def test_abort_leaves_nothing_behind(make_video, tmp_path):
    src = make_video("in.mp4", frames=10)
    dst = tmp_path / "new" / "deeper" / "out.mp4"
    sink = convert(src, dst, close=False)
    assert sink.partial.exists()
    sink.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # folders it made are gone too


def test_closing_without_frames_writes_nothing(tmp_path, caplog):
    sink = VideoFileSink(tmp_path / "out.mp4")
    sink.open(StreamInfo(64, 48, 25.0))
    with caplog.at_level(logging.WARNING):
        sink.close()
    assert list(tmp_path.iterdir()) == []
    assert "no frame" in caplog.text


def test_odd_sizes_are_padded_to_even(tmp_path, caplog, frame_marker, draw_frame):
    info = StreamInfo(width=127, height=95, fps=25.0)
    sink = VideoFileSink(tmp_path / "odd.mp4", audio=False)
    with caplog.at_level(logging.INFO, logger="streamer.sinks"):
        sink.open(info)
    for i in range(10):
        sink.write(Frame(i, None, i / 25, 0.0, draw_frame(i, 128, 96)[:95, :127].copy()))
    sink.close()
    got = probe(tmp_path / "odd.mp4")
    assert got["size"] == (128, 96) and len(got["frames"]) == 10
    assert [frame_marker(f) for f in got["frames"]] == list(range(10))
    assert "padding 127x95 to 128x96" in caplog.text


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    times = [0.0, 0.04, 0.1, 0.3, 0.32, 0.5, 0.9, 1.0]
    info = StreamInfo(width=64, height=48, fps=25.0, time_base=Fraction(1, 1000))
    sink = VideoFileSink(tmp_path / "vfr.mkv", audio=False)
    sink.open(info)
    for i, t in enumerate(times):
        sink.write(Frame(i, round(t * 1000), t, 0.0, np.full((48, 64, 3), 20 * i, np.uint8)))
    sink.close()
    assert probe(tmp_path / "vfr.mkv")["times"] == pytest.approx(times, abs=0.002)


def test_live_frames_without_pts_use_their_times_from_zero(tmp_path):
    info = StreamInfo(width=64, height=48, fps=30.0, live=True)  # a camera that claims 30 fps, gives 10
    sink = VideoFileSink(tmp_path / "rec.mp4")
    sink.open(info)
    for i in range(10):
        sink.write(Frame(i * 3, None, 5.0 + i * 0.1, 0.0, np.full((48, 64, 3), 10 * i, np.uint8)))
    sink.close()
    got = probe(tmp_path / "rec.mp4")
    assert got["times"] == pytest.approx([i * 0.1 for i in range(10)], abs=0.002)


def test_pcm_audio_that_mp4_players_cannot_take_is_transcoded_to_aac(make_video, tmp_path, caplog):
    src = make_video("in.mkv", frames=25, audio_codec="pcm_s16le")
    with caplog.at_level(logging.INFO, logger="streamer.sinks"):
        convert(src, tmp_path / "out.mp4")
    got = probe(tmp_path / "out.mp4")
    assert got["audio_codec"] == "aac"
    assert got["audio_end"] == pytest.approx(1.0, abs=0.05)
    assert "transcoding it to aac" in caplog.text


def test_mkv_and_mov_copy_h264_and_aac(make_video, tmp_path):
    src = make_video("in.mp4", frames=10)
    src_packets, _ = source_audio(src)
    for name in ("out.mkv", "out.mov"):
        convert(src, tmp_path / name)
        got = probe(tmp_path / name)
        assert (got["codec"], got["audio_codec"], len(got["frames"])) == ("h264", "aac", 10)
        assert got["audio_packets"] == src_packets[: len(got["audio_packets"])]


def test_webm_gets_vp9_and_opus_even_when_h264_was_asked_by_default(make_video, tmp_path):
    src = make_video("in.mp4", frames=8, size=(64, 48))
    convert(src, tmp_path / "a.webm")                       # codec None: the container's default
    convert(src, tmp_path / "b.webm", codec="libx264")     # the config's default, switched with a log line
    for name in ("a.webm", "b.webm"):
        got = probe(tmp_path / name)
        assert (got["codec"], got["audio_codec"], len(got["frames"])) == ("vp9", "opus", 8)


def test_codec_that_does_not_fit_the_container_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="libvpx-vp9"):
        VideoFileSink(tmp_path / "x.webm", codec="libx265").open(StreamInfo(64, 48, 25.0))
    assert list(tmp_path.iterdir()) == []


def test_missing_encoder_is_an_output_error_naming_alternatives(tmp_path):
    sink = VideoFileSink(tmp_path / "x.mp4", codec="libnotacodec")
    with pytest.raises(OutputError) as err:
        sink.open(StreamInfo(64, 48, 25.0))
    assert "libnotacodec" in str(err.value) and "libx264" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_hardware_encoder_without_its_hardware_is_an_output_error(tmp_path):
    sink = VideoFileSink(tmp_path / "x.mp4", codec="h264_nvenc", audio=False)
    try:
        sink.open(StreamInfo(64, 48, 25.0))
    except OutputError as e:
        assert "h264_nvenc" in str(e) and "libx264" in str(e)
        assert list(tmp_path.iterdir()) == []
        return
    sink.abort()  # an NVIDIA GPU and driver are present: the encoder opened
    pytest.skip("h264_nvenc works on this machine")


def test_unwritable_places_are_output_errors(tmp_path, make_video):
    info = StreamInfo(64, 48, 25.0)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    with pytest.raises(OutputError):
        VideoFileSink(blocker / "out.mp4").open(info)
    existing = make_video("exists.mp4", frames=2, audio=False)
    before = existing.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        VideoFileSink(existing).open(info)
    assert existing.read_bytes() == before
    with pytest.raises(OutputError, match="folder"):
        VideoFileSink(tmp_path)
    with pytest.raises(OutputError, match=r"\.mp4"):
        VideoFileSink(tmp_path / "out.avi")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.mp4", "file.txt"]


def test_overwrite_replaces_an_existing_file(make_video, tmp_path):
    src = make_video("in.mp4", frames=6)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"old")
    convert(src, dst, overwrite=True)
    assert len(probe(dst)["frames"]) == 6


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_folder_is_an_output_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="permission denied"):
            VideoFileSink(folder / "out.mp4").open(StreamInfo(64, 48, 25.0))
    finally:
        folder.chmod(0o700)


def test_os_errors_become_one_line_messages_that_say_what_to_do(tmp_path):
    path = tmp_path / "out.mp4"
    assert "Disk full" in describe_os_error(OSError(errno.ENOSPC, "No space left on device"), path)
    assert "permission denied" in describe_os_error(OSError(errno.EACCES, "Permission denied"), path)
    assert "read-only" in describe_os_error(OSError(errno.EROFS, "Read-only file system"), path)


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_write_failing_midway_is_an_output_error_and_removes_the_partial_file(tmp_path):
    """A real failing write: the process may not write files over 30 kB (like a full disk, but EFBIG)."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        import numpy as np
        from engines.errors import OutputError
        from streamer.frame import Frame, StreamInfo
        from streamer.sinks.video_file import VideoFileSink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write() instead of a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (30_000, 30_000))
        sink = VideoFileSink({str(tmp_path / "out.mp4")!r}, preset="ultrafast")
        sink.open(StreamInfo(128, 96, 25.0))
        rng = np.random.default_rng(0)
        try:
            for i in range(300):  # noise does not compress: well over 30 kB
                sink.write(Frame(i, None, i / 25, 0.0, rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)))
            sink.close()
        except OutputError as e:
            print("OutputError:", e)
            sys.exit(0)
        sys.exit("no error")
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("OutputError:") and "out.mp4" in line and "\n" not in line
    assert list(tmp_path.iterdir()) == []


def test_source_info_without_a_file_means_no_audio(make_video, tmp_path):
    src = make_video("in.mp4", frames=5)
    with VideoFileSource(src) as source:
        info = replace(source.info, path=None)
        sink = VideoFileSink(tmp_path / "out.mp4")
        sink.open(info)
        for f in source:
            sink.write(f)
        sink.close()
    assert "audio_codec" not in probe(tmp_path / "out.mp4")
