"""What `convert` keeps from the input's other streams: every audio track, subtitles where the output container
can hold them, and one warning naming what it cannot keep. Inputs are real files muxed here with PyAV (an SRT
file remuxed into Matroska beside H.264 and two AAC tracks)."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import pytest
from conftest import error_lines, stylestream, write_video

from streamer.sinks.video_file import VideoFileSink
from streamer.sources.video_file import VideoFileSource

SRT = "1\n00:00:00,000 --> 00:00:00,400\nHello\n\n2\n00:00:00,500 --> 00:00:00,900\nWorld\n"


def rich_input(folder: Path) -> Path:
    """H.264 + AAC stereo 48 kHz + AAC stereo 44.1 kHz + SRT subtitles, in one .mkv."""
    video = write_video(folder / "v.mp4", frames=25, size=(64, 48), audio=True)
    second = write_video(folder / "a2.mp4", frames=25, audio=True, video=False, sample_rate=44100)
    subs = folder / "s.srt"
    subs.write_text(SRT)
    dst = folder / "in.mkv"
    # one container per stream: demuxing one stream to its end would skip the others' packets
    inputs = [av.open(str(p)) for p in (video, video, second, subs)]
    try:
        with av.open(str(dst), "w") as out:
            picks = [inputs[0].streams.video[0], inputs[1].streams.audio[0], inputs[2].streams.audio[0],
                     inputs[3].streams[0]]
            pairs = [(st.container, st, out.add_stream_from_template(st)) for st in picks]
            out.start_encoding()
            for c, st, o in pairs:
                for packet in c.demux(st):
                    if packet.dts is not None:
                        packet.stream = o
                        out.mux(packet)
    finally:
        for c in inputs:
            c.close()
    return dst


def streams(path: Path) -> list[tuple[str, str, int]]:
    """(type, codec, packets with data) per stream."""
    with av.open(str(path)) as c:
        counts = {s.index: 0 for s in c.streams}
        for packet in c.demux():
            if packet.size:
                counts[packet.stream.index] += 1
        return [(s.type, s.codec_context.name, counts[s.index]) for s in c.streams]


def subtitle_texts(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size]


def copy_through_sink(src: Path, dst: Path) -> None:
    sink = VideoFileSink(dst)
    with VideoFileSource(src) as source:
        sink.open(source.info)
        for frame in source:
            sink.write(frame)
    sink.close()


def test_every_audio_track_and_the_subtitles_are_kept_in_mkv(tmp_path):
    src = rich_input(tmp_path)
    copy_through_sink(src, tmp_path / "out.mkv")
    src_streams, got = streams(src), streams(tmp_path / "out.mkv")
    assert [(t, c) for t, c, _ in got] == [(t, c) for t, c, _ in src_streams] == [
        ("video", "h264"), ("audio", "aac"), ("audio", "aac"), ("subtitle", "srt")]
    for (_, _, n_src), (_, _, n_got) in zip(src_streams[1:], got[1:], strict=True):
        assert n_got >= n_src - 2  # cut at most at the video's end
    assert subtitle_texts(tmp_path / "out.mkv") == subtitle_texts(src) == [b"Hello", b"World"]


def test_mp4_keeps_every_audio_track_and_names_the_subtitles_it_cannot_hold(tmp_path, caplog):
    src = rich_input(tmp_path)
    with caplog.at_level(logging.WARNING):
        copy_through_sink(src, tmp_path / "out.mp4")
    got = streams(tmp_path / "out.mp4")
    assert [(t, c) for t, c, _ in got] == [("video", "h264"), ("audio", "aac"), ("audio", "aac")]
    assert all(n > 10 for _, _, n in got)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "subtitles #3 (srt" in warnings[0] and ".mkv" in warnings[0]


@pytest.mark.slow
def test_convert_keeps_the_streams_end_to_end(tmp_path):
    src = rich_input(tmp_path)
    proc = stylestream("convert", src, "-o", tmp_path / "out.mkv", "--size", "0", "--no-smooth", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    assert [(t, c) for t, c, _ in streams(tmp_path / "out.mkv")] == [
        ("video", "h264"), ("audio", "aac"), ("audio", "aac"), ("subtitle", "srt")]
