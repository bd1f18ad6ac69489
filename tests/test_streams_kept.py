"""What `convert` keeps from the input's other streams: every audio track, subtitles (SRT as it is in MKV, as
mov_text in MP4), their language and title, and one warning naming what it cannot keep. Inputs are real files
muxed here with PyAV (an SRT file remuxed into Matroska beside H.264, two AAC tracks and a font attachment)."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import pytest
from conftest import error_lines, stylestream, write_video

from streamer.sinks.video_file import VideoFileSink
from streamer.sources.video_file import VideoFileSource

SRT = "1\n00:00:00,000 --> 00:00:00,400\nHello\n\n2\n00:00:00,500 --> 00:00:00,900\nWorld\n"


TAGS = [{}, {"language": "eng", "title": "English"}, {"language": "fre", "title": "Francais"},
        {"language": "ger", "title": "Deutsch"}]


def rich_input(folder: Path, attachment: bool = False) -> Path:
    """H.264 + AAC stereo 48 kHz (eng) + AAC stereo 44.1 kHz (fre) + SRT subtitles (ger), in one .mkv; with
    `attachment`, a font file attached too (a stream no output but Matroska can hold)."""
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
            for (_, _, o), tags in zip(pairs, TAGS, strict=True):
                o.metadata.update(tags)
            if attachment:
                out.add_attachment("font.ttf", "font/ttf", b"not really a font")
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
    """The text of each subtitle packet (mov_text's 2-byte length prefix taken off; its empty gaps skipped)."""
    with av.open(str(path)) as c:
        st = c.streams.subtitles[0]
        texts = [bytes(p) for p in c.demux(st) if p.size]
        if st.codec_context.name == "mov_text":
            texts = [t[2:2 + int.from_bytes(t[:2], "big")] for t in texts]
        return [t for t in texts if t]


def tags(path: Path) -> list[dict[str, str]]:
    """The language and title of each stream (MP4 stores a track's title as "name")."""
    with av.open(str(path)) as c:
        return [{k: v for k, v in [("language", s.metadata.get("language")),
                                   ("title", s.metadata.get("title") or s.metadata.get("name"))] if v}
                for s in c.streams]


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


def test_mp4_keeps_every_audio_track_and_the_subtitles_as_mov_text(tmp_path, caplog):
    src = rich_input(tmp_path)
    with caplog.at_level(logging.WARNING):
        copy_through_sink(src, tmp_path / "out.mp4")
    got = streams(tmp_path / "out.mp4")
    assert [(t, c) for t, c, _ in got] == [("video", "h264"), ("audio", "aac"), ("audio", "aac"),
                                          ("subtitle", "mov_text")]
    assert all(n > 10 for _, _, n in got[:3])
    assert subtitle_texts(tmp_path / "out.mp4") == [b"Hello", b"World"]
    assert tags(tmp_path / "out.mp4")[1:] == TAGS[1:]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_what_the_output_cannot_hold_is_named_in_one_warning(tmp_path, caplog):
    src = rich_input(tmp_path, attachment=True)
    with caplog.at_level(logging.WARNING):
        copy_through_sink(src, tmp_path / "out.mp4")
    assert [t for t, _, _ in streams(tmp_path / "out.mp4")] == ["video", "audio", "audio", "subtitle"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("note: dropped 1 stream the output cannot hold: attachment #4 (")


def test_convert_keeps_every_track_and_the_subtitle_text_in_mp4(tmp_path):
    """The real command, MKV in, MP4 out: 1 video, both audio tracks, the SRT as mov_text, tags kept."""
    src = rich_input(tmp_path)
    out = tmp_path / "out.mp4"
    proc = stylestream("convert", src, "-o", out, "--size", "0", "--no-smooth", "--model", "lite", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    assert [(t, c) for t, c, _ in streams(out)] == [
        ("video", "h264"), ("audio", "aac"), ("audio", "aac"), ("subtitle", "mov_text")]
    assert subtitle_texts(out) == [b"Hello", b"World"]
    assert tags(out)[1:] == TAGS[1:]
    with av.open(str(out)) as c:
        assert [a.rate for a in c.streams.audio] == [48000, 44100]


@pytest.mark.slow
def test_convert_keeps_the_streams_end_to_end(tmp_path):
    src = rich_input(tmp_path)
    proc = stylestream("convert", src, "-o", tmp_path / "out.mkv", "--size", "0", "--no-smooth", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    assert [(t, c) for t, c, _ in streams(tmp_path / "out.mkv")] == [
        ("video", "h264"), ("audio", "aac"), ("audio", "aac"), ("subtitle", "srt")]
