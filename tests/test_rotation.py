"""Phone videos: a display matrix ("rotation -90", as phones write it) is honoured. MP4s with the matrix are
written here with PyAV; what a player shows is the stored pixels turned by the file's own display rotation.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import error_lines, stylestream

from streamer.sources import open_source
from streamer.sources.video_file import VideoFileSource

W, H = 128, 96


def stored_frame() -> np.ndarray:
    """Landscape pixels, white top-left quarter, mid-grey elsewhere: where it ends up shows the turn."""
    img = np.full((H, W, 3), 60, np.uint8)
    img[: H // 2, : W // 2] = 250
    return img


def phone_video(path: Path, rotation: float, frames: int = 6) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "10", "preset": "ultrafast"}
        s.set_display_rotation(rotation)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(stored_frame(), format="bgr24")
            f.pts, f.time_base = i, Fraction(1, 25)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    return path


def as_played(path: Path) -> list[np.ndarray]:
    """What a player shows: each decoded frame turned by its display rotation (counter-clockwise degrees)."""
    shown = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            shown.append(np.rot90(f.to_ndarray(format="bgr24"), round(f.rotation / 90) % 4))
    return shown


def bright_quarter(img: np.ndarray) -> str:
    h, w = img.shape[:2]
    quarters = {"top-left": img[: h // 2, : w // 2], "top-right": img[: h // 2, w // 2:],
                "bottom-left": img[h // 2:, : w // 2], "bottom-right": img[h // 2:, w // 2:]}
    return max(quarters, key=lambda k: quarters[k].mean())


@pytest.mark.parametrize(("rotation", "size", "corner"), [
    (-90, (H, W), "top-right"), (90, (H, W), "bottom-left"), (180, (W, H), "bottom-right"), (0, (W, H), "top-left"),
])
def test_the_source_gives_frames_as_a_player_shows_them(tmp_path, rotation, size, corner):
    clip = phone_video(tmp_path / "phone.mp4", rotation)
    src = VideoFileSource(clip)
    assert (src.info.width, src.info.height) == size
    played = as_played(clip)
    assert bright_quarter(played[0]) == corner  # what the matrix means, as a player reads it
    with src:
        frames = [f.image for f in src]
    assert len(frames) == len(played) == 6
    for got, want in zip(frames, played, strict=True):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).max() == 0


def test_live_with_a_phone_video_file_is_upright(tmp_path):
    clip = phone_video(tmp_path / "phone.mp4", -90)
    source = open_source(str(clip), live=True, loop=False)
    assert (source.info.width, source.info.height) == (H, W)
    with source:
        first = next(iter(source)).image
    assert first.shape == (W, H, 3) and bright_quarter(first) == "top-right"


def test_a_converted_phone_video_plays_upright(tmp_path):
    clip = phone_video(tmp_path / "phone.mp4", -90, frames=4)
    out = tmp_path / "out.mp4"
    # alpha 0: the decoder reconstructs the content, so where the bright quarter went can be seen
    proc = stylestream("convert", clip, "-o", out, "--size", "0", "--alpha", "0", "--no-smooth", timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not error_lines(proc.stderr)
    want, got = as_played(clip), as_played(out)
    assert len(got) == 4
    assert got[0].shape == want[0].shape == (W, H, 3)  # portrait, as the phone showed it
    assert bright_quarter(got[0]) == bright_quarter(want[0]) == "top-right"
