"""Where `image` and `convert` put their results, and the mistakes both refuse (one shared planner)."""

import pytest

from engines.errors import InputError, OutputError
from streamer.app.images_cmd import plan_outputs
from streamer.convert import plan_conversions


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_images_one_to_a_file_or_many_to_a_folder(tmp_path):
    a = touch(tmp_path / "in/a.png")
    b = touch(tmp_path / "in/b.JPG")
    touch(tmp_path / "in/notes.txt")
    odd = touch(tmp_path / "c.gif")
    assert plan_outputs([a], tmp_path / "o.jpg") == [(a, tmp_path / "o.jpg")]
    out = tmp_path / "out"
    assert plan_outputs([tmp_path / "in", odd], out) == [(a, out / "a.png"), (b, out / "b.JPG"),
                                                           (odd, out / "c.png")]
    with pytest.raises(OutputError, match="need an output folder"):
        plan_outputs([a, b], tmp_path / "o.jpg")


def test_videos_one_to_a_file_or_many_to_a_folder_of_mp4s(tmp_path):
    a = touch(tmp_path / "in/a.mov")
    b = touch(tmp_path / "in/b.mkv")
    touch(tmp_path / "in/a.srt")
    assert plan_conversions([a], tmp_path / "x.mkv") == [(a, tmp_path / "x.mkv")]
    assert plan_conversions([tmp_path / "in"], tmp_path / "out") == [(a, tmp_path / "out/a.mp4"),
                                                                     (b, tmp_path / "out/b.mp4")]


def test_two_inputs_onto_one_output_are_refused_before_anything_runs(tmp_path):
    first, second = touch(tmp_path / "day1/a.png"), touch(tmp_path / "day2/a.png")
    with pytest.raises(OutputError, match="would both be written to") as e:
        plan_outputs([tmp_path / "day1", tmp_path / "day2"], tmp_path / "out")
    assert str(first) in str(e.value) and str(second) in str(e.value)
    touch(tmp_path / "v/a.mov")
    touch(tmp_path / "v/a.mkv")
    with pytest.raises(OutputError, match="would both be written to"):
        plan_conversions([tmp_path / "v"], tmp_path / "out")


def test_missing_empty_and_self_overwriting_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No image files in"):
        plan_outputs([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(InputError, match="No video files in"):
        plan_conversions([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(InputError, match="Input not found"):
        plan_conversions([tmp_path / "nope.mp4"], tmp_path / "out.mp4")
    a = touch(tmp_path / "in/a.png")
    with pytest.raises(OutputError, match="would overwrite its input"):
        plan_outputs([tmp_path / "in"], tmp_path / "in")
    with pytest.raises(OutputError, match="would overwrite its input"):
        plan_outputs([a], a)


def test_a_stream_address_given_to_convert_points_to_live():
    from pathlib import Path

    with pytest.raises(InputError, match="stylestream live --source") as e:
        plan_conversions([Path("rtsp://me:secret@cam.local:554/stream")], Path("out.mp4"))
    assert "rtsp://me:***@cam.local:554/stream" in str(e.value) and "secret" not in str(e.value)
