"""The speed benchmark (engines.bench) and `stylestream bench`, at a tiny size on the CPU."""

import io
import json

import pytest
from typer.testing import CliRunner

from engines.bench import BenchSettings, parse_resolutions, run_bench
from engines.bench_output import default_path, print_table, write_result
from engines.errors import ConfigError
from engines.machine import cpu_has_native_bf16
from streamer.app.cli import app

pytest.importorskip("onnxruntime")

ROW_KEYS = {"model", "backend", "engine", "device", "precision", "resolution", "batch", "stylize_ms_median",
            "stylize_ms_p90", "fps", "frame_ms_median", "frame_fps", "peak_mem_mb", "mem_growth_mb", "mem_kind"}


# One ONNX cache for the module (conftest `cache`): run_bench and the CLI time the same random graph.
pytestmark = pytest.mark.usefixtures("cache")


@pytest.fixture(scope="module")
def result():
    rows, hooked = [], []

    def hook(engine, name):
        hooked.append(name)
        return {"convert": {"clip": "64x48", "frames": 6, "seconds": 1.5, "fps": 4.0, "smoothing": "both"}}

    settings = BenchSettings(backends=["torch", "onnxruntime", "tensorrt"], device="cpu", resolutions=[(64, 64)],
                             warmup=0, iters=1)
    out = run_bench(settings, hooks=[hook], on_row=rows.append)
    out["_rows_seen"], out["_hooked"] = rows, hooked
    return out


def test_rows_have_times_fps_and_memory(result):
    rows = result["results"]
    # both models, side by side, in every backend present
    assert [(r["model"], r["backend"]) for r in rows] == [("full", "torch"), ("full", "onnxruntime"),
                                                          ("lite", "torch"), ("lite", "onnxruntime")]
    assert result["_rows_seen"] == rows
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["resolution"] == "64x64" and r["device"] == "cpu"
        # "auto": torch runs bf16 where the CPU has it in hardware; onnxruntime always fp32 on a CPU
        native = r["backend"] == "torch" and cpu_has_native_bf16()
        assert r["precision"] == ("bfloat16" if native else "float32")
        assert r["stylize_ms_median"] > 0 and r["frame_ms_median"] >= r["stylize_ms_median"] * 0.9
        assert r["fps"] == pytest.approx(1000 / r["stylize_ms_median"], rel=0.01, abs=0.006)  # fps has 2 decimals
        assert r["peak_mem_mb"] > 50  # the whole process's peak resident set (torch alone is more)
        assert r["mem_growth_mb"] >= 0


def test_machine_and_settings_are_recorded(result):
    m = result["machine"]
    assert m["cpu"] and m["cpu_cores"] >= 1 and m["torch"] and m["onnxruntime"] and m["host_kind"] == "cpu"
    s = result["settings"]
    assert s["resolutions"] == ["64x64"] and s["iters"] == 1 and s["warmup"] == 0
    assert "random" in s["decoder"]


def test_absent_backend_is_skipped_with_the_reason(result):
    assert [(s["model"], s["backend"]) for s in result["skipped"]] == [("full", "tensorrt"), ("lite", "tensorrt")]
    assert all("TensorRT" in s["reason"] for s in result["skipped"])


def test_hooks_add_their_numbers(result):
    assert result["_hooked"] == ["torch", "onnxruntime"] * 2
    assert result["extra"]["lite/onnxruntime"]["convert"]["fps"] == 4.0


def test_table_and_json(result, tmp_path):
    out = io.StringIO()
    print_table(result, file=out)
    text = out.getvalue()
    for word in ("ms/frame", "peak MB", "torch", "onnxruntime", "64x64", "lite",
                 "convert, end to end (full/onnxruntime): 4.0 fps", "skipped full tensorrt"):
        assert word in text
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    path = write_result(public, tmp_path / "speed.json")
    assert json.loads(path.read_text()) == public
    assert default_path(public).name == f"speed-cpu-{public['created'][:10]}.json"


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="Unknown backend"):
        run_bench(BenchSettings(backends=["tensorflow"], resolutions=[(64, 64)]))
    assert parse_resolutions("640x360, 1280x720") == [(360, 640), (720, 1280)]
    for bad in ("", "640", "640x360,big"):
        with pytest.raises(ConfigError):
            parse_resolutions(bad)


def test_cli_help():
    res = CliRunner().invoke(app, ["bench", "--help"])
    assert res.exit_code == 0
    assert "--resolutions" in res.output and "--no-convert" in res.output


def test_cli_tiny_run_with_end_to_end_convert(tmp_path):
    out = tmp_path / "tmp.json"
    res = CliRunner().invoke(app, ["bench", "--backends", "onnxruntime", "--device", "cpu", "--resolutions", "64x64",
                                   "--iters", "1", "--warmup", "0", "--clip", "64x48", "--clip-seconds", "0.25",
                                   "--model", "lite", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert [(r["model"], r["backend"]) for r in data["results"]] == [("lite", "onnxruntime")]
    convert = data["extra"]["lite/onnxruntime"]["convert"]
    assert convert["clip"] == "64x48" and convert["frames"] == 6 and convert["fps"] > 0
    assert "ms/frame" in res.output


def test_cli_no_convert(tmp_path):
    out = tmp_path / "tmp.json"
    res = CliRunner().invoke(app, ["bench", "--backends", "onnxruntime", "--resolutions", "64x64", "--iters", "1",
                                   "--warmup", "0", "--no-convert", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "extra" not in json.loads(out.read_text())


def test_cli_calibrate_redoes_the_cpu_choice_and_says_it(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLESTREAM_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["bench", "--backends", "onnxruntime", "--resolutions", "64x64", "--iters", "1",
                                   "--warmup", "0", "--no-convert", "--model", "lite", "--clip", "96x64",
                                   "--calibrate", "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 0, res.output
    (saved,) = (tmp_path / "cache" / "calibration").glob("lite-*.json")
    best = json.loads(saved.read_text())["best"]
    assert "auto on this CPU, lite at" in res.output and f": {best} (" in res.output
