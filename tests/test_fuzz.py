"""Fuzzing the command line (hypothesis): random options, random config files, and mutated media (bit flips
and truncations of a valid MP4, JPEG, PNG, style code and decoder made here). Whatever comes in, a run

- ends with exit 0 (and its output complete) or exit 2 and exactly one `error:` line,
- never with a traceback (an exception escaping `stylestream`'s main fails the test),
- within a time limit (SIGALRM; a hang fails the test),
- and leaves no partial output, lock or temporary file behind.

Runs are in this process (no interpreter start per example) with the real CLI entry point, tiny inputs and
`--size 32`, few examples and a fixed seed (derandomize) so that CI is quick and repeatable.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_video
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from engines.decoder import DEFAULT_DECODER
from engines.presets import PRESET_DIR

RUN_SECONDS = 120  # one run, however slow the machine: generous, a hang is minutes
FUZZ = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Hang(Exception):
    pass


def run(*args: str | Path) -> tuple[int, str]:
    """`stylestream ARGS` in this process: (exit code, stderr). An escaping exception is a traceback: it fails."""
    from streamer.app import cli

    def on_alarm(*_):
        raise Hang(f"stylestream {' '.join(map(str, args))} ran over {RUN_SECONDS} s")

    err = io.StringIO()
    old_argv, old_handler = sys.argv, signal.signal(signal.SIGALRM, on_alarm)
    sys.argv = ["stylestream", *map(str, args)]
    signal.alarm(RUN_SECONDS)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        sys.argv = old_argv
    return code, err.getvalue()


def check(code: int, stderr: str, out_dir: Path, output: Path) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code in (0, 2), stderr
    event(f"exit {code}" + (f": {errors[0][7:40]}" if errors else ""))  # --hypothesis-show-statistics
    if code == 0:
        assert not errors, stderr
        assert output.exists() and output.stat().st_size > 0
    else:
        assert len(errors) == 1, stderr
        assert not output.exists()
    hidden = [p.name for p in out_dir.rglob("*") if p.name.startswith(".")] if out_dir.exists() else []
    assert not hidden, f"left behind: {hidden}"


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Valid small inputs to mutate or use as they are."""
    d = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "in.png")
    Image.fromarray(img).save(d / "in.jpg", quality=90)
    write_video(d / "in.mp4", frames=4, size=(64, 48), audio=True)
    shutil.copy(PRESET_DIR / "udnie.safetensors", d / "code.safetensors")
    shutil.copy(DEFAULT_DECODER, d / "decoder.safetensors")
    return {p.suffix.lstrip(".") if p.stem != "code" else "code": p for p in d.iterdir()} | {
        "decoder": d / "decoder.safetensors"}


def fresh() -> Path:
    return Path(tempfile.mkdtemp(prefix="fuzz-"))


# -- random options -------------------------------------------------------------------------------------

SIZES = ["0", "32", "48", "64", "32", "1", "15", "31", "-3", "abc", "1e3", "99999"]  # half valid
STYLES = ["udnie", "the-scream", "nope", "", "PNG", "CODE", "missing.png"]
WEIGHTS = [None, "1", "0.5,0.5", "nan,1", "inf,1", "-1,2", "a,b", "", "1,,2", "0,0"]
SHARED = [["--model", "lite"], ["--model", "bogus"], ["--preserve-color"], ["--device", "cuda:7"], ["--overwrite"]]
EXTRA = {  # options of each command, with values good and bad
    "image": SHARED + [["--max-pixels", "0"], ["--max-pixels", "100"], ["--max-pixels", "10000000000"],
                       ["--style-size", "10"], ["--style-size", "64"], ["--method", "gatys"], ["--method", "x"],
                       ["--mask", "PNG"], ["--mask", "missing.png"]],
    "convert": SHARED + [["--batch", "3"], ["--batch", "65"], ["--crf", "99"], ["--crf", "40"], ["--preset", "x"],
                         ["--preset", "ultrafast"], ["--no-smooth"], ["--backend", "nope"], ["--backend", "torch"],
                         ["--codec", "nope"], ["--codec", "mpeg4"], ["--no-audio"], ["--stats"]],
}


@settings(FUZZ, max_examples=16)
@given(command=st.sampled_from(["image", "convert"]), size=st.sampled_from(SIZES),
       alpha=st.one_of(st.none(), st.sampled_from(["0", "0.5", "1"]),
                       st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.text(max_size=4))),
       styles=st.lists(st.sampled_from(STYLES), min_size=0, max_size=2), weights=st.sampled_from(WEIGHTS),
       extra=st.lists(st.integers(0, 99), max_size=3))
def test_random_options_end_in_one_line_or_a_result(media, command, size, alpha, styles, weights, extra):
    out_dir = fresh()
    try:
        src = media["png"] if command == "image" else media["mp4"]
        output = out_dir / ("out.png" if command == "image" else "out.mp4")
        args = [command, src, "-o", output, "--size", size, "--model", "full"]
        if alpha is not None:
            args += ["--alpha", alpha]
        for s in styles:
            args += ["-s", {"PNG": str(media["png"]), "CODE": str(media["code"])}.get(s, s)]
        if weights is not None:
            args += ["--style-weights", weights]
        for i in extra:
            args += [str(media["png"]) if a == "PNG" else a for a in EXTRA[command][i % len(EXTRA[command])]]
        if command == "image":
            args += ["--steps", "1"]  # gatys, when drawn: one step
        check(*run(*args), out_dir, output)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# -- random config files --------------------------------------------------------------------------------

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10, 100_000),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.lists(st.sampled_from(["udnie", "nope", 1, None]), max_size=2))
KEYS = st.sampled_from(["size", "alpha", "styles", "style_weights", "style_size", "max_pixels", "stats",
                        "preserve_color", "bogus", "engine", "video", "temporal", "live"])
SECTION = st.dictionaries(st.sampled_from(["model", "backend", "device", "batch", "decoder", "crf", "codec",
                                           "preset", "audio", "overwrite", "enabled", "mechanism", "stat_momentum",
                                           "flow_blend", "bogus"]), VALUES, max_size=3)
CONFIGS = st.one_of(
    st.dictionaries(KEYS, st.one_of(VALUES, SECTION), max_size=4).map(lambda d: yaml.safe_dump(d).encode()),
    st.binary(max_size=64),  # not YAML, not UTF-8, or not a mapping
)


@FUZZ
@given(config=CONFIGS, command=st.sampled_from(["image", "convert"]))
def test_random_config_files_end_in_one_line_or_a_result(media, config, command):
    out_dir = fresh()
    try:
        cfg = out_dir / "c.yaml"
        cfg.write_bytes(config)
        src = media["jpg"] if command == "image" else media["mp4"]
        output = out_dir / "out" / ("out.png" if command == "image" else "out.mp4")
        check(*run(command, src, "-o", output, "-c", cfg, "--size", "32", "--model", "full"), out_dir / "out",
              output)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


# -- mutated media -------------------------------------------------------------------------------------

def mutate(data: bytes, how: str, where: float, bits: list[int]) -> bytes:
    if how == "truncate":
        return data[: int(len(data) * where)]
    out = bytearray(data)
    for b in bits:  # flip bits near `where` (headers are at the start: bias there half the time)
        pos = int((where ** 2 if b % 2 else where) * (len(out) - 1))
        out[pos] ^= 1 << (b % 8)
    return bytes(out)


@settings(FUZZ, max_examples=16)
@given(kind=st.sampled_from(["mp4", "jpg", "png", "code", "decoder"]), how=st.sampled_from(["truncate", "flip"]),
       where=st.floats(0.0, 1.0), bits=st.lists(st.integers(0, 10_000), min_size=1, max_size=8))
def test_mutated_media_end_in_one_line_or_a_result(media, kind, how, where, bits):
    out_dir = fresh()
    try:
        good = media[kind]
        bad = out_dir / f"bad{good.suffix}"
        bad.write_bytes(mutate(good.read_bytes(), how, where, bits))
        outputs = out_dir / "out"
        if kind == "mp4":
            output = outputs / "out.mp4"
            args = ["convert", bad, "-o", output, "--no-smooth"]
        else:
            output = outputs / "out.png"
            args = ["image", bad if kind in ("jpg", "png") else media["png"], "-o", output]
            args += {"code": ["-s", bad], "decoder": ["--decoder", bad]}.get(kind, [])
        check(*run(*args, "--size", "32", "--model", "full"), outputs, output)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
