"""`stylestream demo` on the CPU, as on a fresh machine: no files, no camera; it prints where the result is."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import error_lines, stylestream

from streamer.app.demo import DEMO_CLIP


def frames_and_audio(path: Path) -> tuple[list[np.ndarray], float, str | None]:
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)], fps, audio


@pytest.mark.slow
def test_demo_converts_the_built_in_clip_on_the_cpu(tmp_path):
    folder = tmp_path / "demo"
    proc = stylestream("demo", "-o", folder, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    result = Path(proc.stdout.strip().splitlines()[-1])
    assert result == folder / "demo-stylized.mp4"
    spec = DEMO_CLIP["cpu"]
    source, fps_in, audio_in = frames_and_audio(folder / "demo-input.mp4")
    styled, fps_out, audio_out = frames_and_audio(result)
    assert len(styled) == len(source) == round(spec["seconds"] * spec["fps"])
    assert fps_out == fps_in == spec["fps"] and audio_out == audio_in == "aac"
    assert styled[0].shape == (spec["height"], spec["width"], 3)
    assert np.abs(styled[5].astype(int) - source[5]).mean() > 10  # stylized, not a copy
    preview = cv2.imread(str(folder / "demo-preview.png"))
    assert preview.shape == (2 * spec["height"], 3 * spec["width"], 3)  # input row over the stylized row
