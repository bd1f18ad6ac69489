"""StreamLoop with a stand-in engine (the loop is what is tested, not the network): order, batching,
latest-wins for live sources, stop and abort, sinks closed or aborted, --stats lines."""

from __future__ import annotations

import json
import signal
import threading
import time

import numpy as np
import pytest
import torch

from engines.adain import StyleCode
from engines.backends.base import Engine
from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.loop import StreamLoop
from streamer.sinks import Sink
from streamer.stylize import NamedStyle, StylizeStep, output_size

W, H = 32, 24
STYLE = [NamedStyle("test", StyleCode(torch.zeros(512), torch.ones(512)))]


class InvertEngine(Engine):
    """Stylizes by inverting the image; records its batch sizes; optionally slow."""

    name = "invert"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.batches: list[int] = []

    def encode(self, batch):
        raise NotImplementedError

    def decode(self, *args):
        raise NotImplementedError

    def stylize(self, batch, style, alpha):
        self.batches.append(batch.shape[0])
        time.sleep(self.delay)
        return 1 - batch


class ListSource:
    """`n` frames whose pixels hold their index; live ones come every `period` seconds."""

    def __init__(self, n: int, live: bool = False, period: float = 0.0):
        self.n, self.period = n, period
        self.info = StreamInfo(W, H, 25.0, live=live, name="list")
        self.stopped = threading.Event()
        self.dropped = 0

    def stop(self):
        self.stopped.set()

    def __iter__(self):
        for i in range(self.n):
            if self.stopped.is_set():
                return
            time.sleep(self.period)
            yield Frame(i, i, i / 25, time.monotonic(), np.full((H, W, 3), i % 256, np.uint8))


class RecordingSink(Sink):
    def __init__(self, fail_open: bool = False, fail_at: int | None = None):
        self.fail_open, self.fail_at = fail_open, fail_at
        self.frames: list[Frame] = []
        self.state = "new"

    def open(self, info: StreamInfo) -> None:
        if self.fail_open:
            raise OutputError("cannot open")
        self.state = "open"

    def write(self, frame: Frame) -> None:
        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise OutputError("disk full")
        self.frames.append(frame)

    def close(self) -> None:
        self.state = "closed"

    def abort(self) -> None:
        self.state = "aborted"


def run(source, sinks, engine=None, **settings) -> tuple[StreamLoop, float]:
    loop = StreamLoop(source, StylizeStep(engine or InvertEngine()), STYLE, sinks, progress=False, **settings)
    start = time.monotonic()
    loop.run()
    return loop, time.monotonic() - start


def index_of(frame: Frame) -> int:
    return 255 - int(frame.image[0, 0, 0])  # inverted by the engine


def test_file_frames_all_arrive_in_order_batched_and_stylized():
    engine = InvertEngine(delay=0.01)  # the reader fills the queue meanwhile: full batches follow
    sink = RecordingSink()
    loop, _ = run(ListSource(10), [sink], engine, batch=4)
    assert [f.index for f in sink.frames] == list(range(10))
    assert [index_of(f) for f in sink.frames] == list(range(10))
    assert sum(engine.batches) == 10 and max(engine.batches) == 4
    assert sink.frames[3].original is not None and sink.frames[3].original[0, 0, 0] == 3
    assert sink.state == "closed"
    assert loop.result.frames_in == loop.result.frames_out == 10 and not loop.result.interrupted


def test_live_source_latest_wins_when_the_stylizer_is_slow():
    sink = RecordingSink()
    loop, _ = run(ListSource(40, live=True, period=0.005), [sink], InvertEngine(delay=0.03))
    got = [f.index for f in sink.frames]
    assert got == sorted(got) and len(got) < 40 and got[-1] == 39  # the newest, never a stale one
    assert loop.result.dropped == 40 - len(got)


def test_a_slow_live_stream_gets_one_hint_with_the_measured_time(monkeypatch, caplog):
    import streamer.loop as loop_module

    run(ListSource(10, live=True, period=0.025), [RecordingSink()], InvertEngine(delay=0.02))
    assert "ms per frame" not in caplog.text  # 20 ms a frame: fast enough
    monkeypatch.setattr(loop_module, "SLOW_LIVE_MS", 10.0)
    run(ListSource(10, live=True, period=0.025), [RecordingSink()], InvertEngine(delay=0.02))
    hints = [r.getMessage() for r in caplog.records if "ms per frame" in r.getMessage()]
    assert len(hints) == 1 and f"{W}x{H} with invert" in hints[0] and "GPU" in hints[0]
    assert "--size" not in hints[0]  # 32x24 is as small as it gets
    ms = float(hints[0].split("live: ")[1].split(" ms")[0])
    assert 15 <= ms < 200  # the engine's own 20 ms, measured
    caplog.clear()
    run(ListSource(12), [RecordingSink()], InvertEngine(delay=0.02))  # files: no hint, every frame is kept
    assert "ms per frame" not in caplog.text


def test_interrupt_finishes_what_is_in_flight_closes_the_sinks_and_says_which_signal():
    sink = RecordingSink()
    loop = StreamLoop(ListSource(500), StylizeStep(InvertEngine(delay=0.005)), STYLE, [sink], progress=False,
                      on_frame=lambda f: f.index == 5 and loop._interrupt(signal.SIGTERM))
    result = loop.run()
    assert result.interrupted and result.signal == signal.SIGTERM
    assert 6 <= result.frames_out < 30  # a batch or two more at most, not the queued input
    assert [f.index for f in sink.frames] == list(range(result.frames_out))
    assert sink.state == "closed"  # kept: an interrupted conversion is a playable file


def test_a_sink_error_stops_everything_and_aborts_every_sink():
    good, bad = RecordingSink(), RecordingSink(fail_at=3)
    with pytest.raises(OutputError, match="disk full"):
        run(ListSource(1000), [good, bad])
    assert good.state == bad.state == "aborted"


def test_a_sink_that_cannot_open_aborts_those_already_open():
    first, second = RecordingSink(), RecordingSink(fail_open=True)
    with pytest.raises(OutputError, match="cannot open"):
        run(ListSource(5), [first, second])
    assert first.state == "aborted" and not first.frames


def test_an_engine_error_is_raised_on_the_callers_thread():
    class Broken(InvertEngine):
        def stylize(self, batch, style, alpha):
            raise RuntimeError("boom")

    sink = RecordingSink()
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="boom"):
        run(ListSource(1000), [sink], Broken())
    assert sink.state == "aborted" and time.monotonic() - start < 5


def test_stats_print_json_lines_including_a_last_one(capsys):
    run(ListSource(60), [RecordingSink()], InvertEngine(delay=0.02), stats=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) >= 2  # one per second, then the last frames
    assert lines[-1]["frames"] == 60
    assert {"fps", "latency_ms_p50", "latency_ms_max", "stylize_ms", "dropped"} <= set(lines[-1])


def test_output_size_is_even_and_only_downscales():
    assert output_size(1920, 1080, 480) == (854, 480)
    assert output_size(64, 48, 480) == (64, 48)
    assert all(v % 2 == 0 for v in output_size(65, 49, 0))
