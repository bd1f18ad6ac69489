"""The stream loop: moves frames between its threads; the work on them is the stylize step's and the sinks'.
(A little over 300 lines: the threads, their shutdown and the live/file policies belong together.)

    reader thread --q_in--> main thread (StylizeStep.start) [--q_mid--> smoother thread (StylizeStep.finish)]
                  --q_out--> sink thread (every sink, in order)

- The smoother thread exists where the step has host work after the network: flow blending on a CPU
  (`step.smooths_on_host`), or the upscale of a live stream whose working size the governor lowers
  (streamer.working_size). That work for one batch then runs beside the network's next one.
- Files: bounded queues with blocking puts, so nothing is dropped and order is kept; frames are
  batched for throughput.
- Live: the source already keeps only its newest frame, and the stylizer's input is a streamer.latest
  holder, whose frame a newer one replaces ("latest wins"), so the stylizer never works on a stale frame.
  q_mid holds one batch, so a slow blend holds the network back instead of adding latency.
- The stylizer runs on the main thread, which also owns the signal handlers: the first Ctrl-C or
  SIGTERM stops reading, finishes the batch being stylized and hands every stylized frame to the
  sinks (frames read but not yet stylized are let go: the output is cut short anyway, and the user
  is waiting); a second one stops at once. Either way every sink is closed, so a file written so
  far is a playable video. `RunResult.signal` says which signal ended the run.
- An error anywhere stops everything; sinks are then aborted (a video sink removes its partial file).

What a running stream reports (--stats lines, the progress bar of a file) is in streamer.stats.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engines.errors import StylestreamError
from streamer.frame import Frame, StreamInfo
from streamer.latest import Closed, Latest
from streamer.signals import on_stop_signals
from streamer.stats import FileProgress, StatsPrinter
from streamer.stylize import NamedStyle, Pending, StylizeStep
from streamer.temporal import needs_reset
from streamer.timing import StageTimes, stage
from streamer.working_size import Governor

log = logging.getLogger(__name__)
_END = object()  # end-of-stream marker on the queues
SLOW_LIVE_MS = 200.0  # a live stream whose network takes longer per frame (under 5 fps) gets a hint, once


@dataclass
class RunResult:
    frames_in: int = 0
    frames_out: int = 0
    interrupted: bool = False
    signal: int | None = None     # SIGINT / SIGTERM when one stopped the run
    dropped: int = 0              # live: frames replaced by a newer one before the stylizer took them
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    stages: dict | None = None    # with `timings`: StageTimes.summary (ms per frame per stage)

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0


class StreamLoop:
    """source -> step -> sinks. `batch`: frames per step call (files; live streams take one at a time);
    `alpha`: the style strength (live controls override it); `stats`: one JSON line per second on
    stdout; `progress`: a bar for files; `controls`: live keys (style, strength, smoothing, quit)."""

    def __init__(self, source, step: StylizeStep, styles: Sequence[NamedStyle], sinks: Sequence, *,
                 batch: int = 1, alpha: float = 1.0, stats: bool = False, progress: bool = True,
                 queue_size: int = 8, controls=None, on_frame: Callable[[Frame], None] | None = None,
                 timings: bool = False, governor: Governor | None = None):
        self.source = source
        self.step = step
        self.engine = step.engine
        self.styles = list(styles)
        self.sinks = list(sinks)
        self.batch = 1 if source.info.live else max(1, batch)
        self.alpha = alpha
        self.stats = stats
        self.progress = progress
        self.controls = controls
        self.on_frame = on_frame
        self.live = bool(source.info.live)
        self.stop = threading.Event()       # stop reading; finish frames in flight
        self.abort = threading.Event()      # stop now
        self.error: BaseException | None = None
        self.result = RunResult()
        self.stylize_ms: deque[float] = deque(maxlen=120)
        # Stage times (streamer.timing): decode here, upload..download in the step, encode in the sinks.
        self.times = StageTimes(getattr(self.engine, "device", None)) if timings else None
        step.times = self.times
        self._speed_checked = False
        w, h = step.out_size or (source.info.width, source.info.height)
        self.out_info = StreamInfo(w, h, source.info.fps, source.info.time_base, source.info.frame_count,
                                   source.info.duration, source.info.path, source.info.live, source.info.name)
        self.q_in: queue.Queue = queue.Queue(maxsize=max(queue_size, 2 * self.batch))  # files
        self.latest_in: Latest[Frame] = Latest()  # live
        self.q_out: queue.Queue = queue.Queue(maxsize=queue_size)
        self.governor = governor
        # decided once: live controls may toggle the smoothing
        self._blends_apart = step.smooths_on_host or (governor is not None and not governor.fixed)
        self.q_mid: queue.Queue = queue.Queue(maxsize=1 if self.live else max(2, queue_size // max(self.batch, 1)))

    # -- public -------------------------------------------------------------------------------

    def run(self) -> RunResult:
        start = time.monotonic()
        sinks_open = threading.Event()
        sink_thread = threading.Thread(target=self._guard, args=(self._sink_worker, sinks_open),
                                       name="sinks", daemon=True)
        sink_thread.start()
        sinks_open.wait()
        if self.error is None:
            reader = threading.Thread(target=self._guard, args=(self._reader,), name="reader", daemon=True)
            reader.start()
            smoother = None
            if self._blends_apart:
                smoother = threading.Thread(target=self._guard, args=(self._smoother_worker,), name="smoother",
                                            daemon=True)
                smoother.start()
            with on_stop_signals(self._interrupt):
                self._guard(self._stylize_worker)
                if smoother is not None:  # still handling signals: a second Ctrl-C while it drains aborts
                    self._put(self.q_mid, _END)
                    while smoother.is_alive():
                        smoother.join(timeout=0.1)
            self._put(self.q_out, _END)
            reader.join(timeout=5)
        sink_thread.join()
        self.result.seconds = time.monotonic() - start
        if self.times is not None:
            self.result.stages = self.times.summary(self.result.frames_out)
        if self.error is not None:
            if isinstance(self.error, StylestreamError):
                raise self.error
            raise RuntimeError(f"stream failed: {self.error!r}") from self.error
        return self.result

    def request_stop(self) -> None:
        self.stop.set()
        self.source.stop()

    # -- threads ------------------------------------------------------------------------------

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread and re-raised there
            if self.error is None:
                self.error = e
            self.abort.set()
            self.request_stop()
            if args and isinstance(args[0], threading.Event):
                args[0].set()

    def _interrupt(self, signum: int) -> None:
        if self.stop.is_set():
            log.warning("stopping now")
            self.abort.set()
        else:
            again = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            log.warning("stopping: finishing the frames in flight (%s again to stop at once)", again)
        self.result.interrupted = True
        self.result.signal = signum
        self.request_stop()

    def _reader(self) -> None:
        try:
            frames = iter(self.source)
            while True:
                with stage(self.times, "decode"):
                    frame = next(frames, None)
                if frame is None or self.stop.is_set():
                    break
                self.result.frames_in += 1
                if self.live:
                    self.latest_in.put(frame)
                    self.result.dropped = self.latest_in.dropped
                elif not self._put(self.q_in, frame, until=self.stop):
                    break
        finally:
            if self.live:
                self.latest_in.close()
            else:
                self._put(self.q_in, _END, until=self.stop)  # after a stop the stylizer no longer reads

    def _stylize_worker(self) -> None:
        batch_size = self.batch
        done = False
        while not done and not self.stop.is_set():
            frames = []
            while len(frames) < batch_size:
                item = self._get_input(block=not frames)
                if item is None:
                    break
                if item is _END:
                    done = True
                    break
                frames.append(item)
            if frames:
                if self._blends_apart:
                    if not self._put(self.q_mid, self._start(frames)):
                        return
                else:
                    for out in self._frames(*self._start(frames)):
                        if not self._put(self.q_out, out):
                            return
                self._hint_if_slow()
            if self.controls is not None and self.controls.quit:
                self.request_stop()

    def _start(self, frames: list[Frame]) -> tuple[list[Frame], Pending, dict]:
        """The network's part of a batch (StylizeStep.start), on the main thread."""
        t0 = time.perf_counter()
        style, alpha = self._current_style()
        resets = [needs_reset(f.meta) for f in frames]
        if self.governor is not None:
            self.step.work_size = self.governor.size
        pending = self.step.start([f.image for f in frames], style.code, alpha, resets)
        ms = (time.perf_counter() - t0) * 1000 / len(frames)
        self.stylize_ms.append(ms)
        meta = {"style": style.name, "alpha": alpha, "smoothing": self.step.smoothing}
        if self.governor is not None:
            meta["working_size"] = self.step.work_size
        return frames, pending, meta, ms

    def _frames(self, frames: list[Frame], pending: Pending, meta: dict, start_ms: float) -> list[Frame]:
        """The batch's output frames, after the host work still to do (StylizeStep.finish). The governor
        hears what each thread spent per frame (the sum, where one thread did both)."""
        t0 = time.perf_counter()
        images = self.step.finish(pending)
        if self.governor is not None:
            ms = (time.perf_counter() - t0) * 1000 / len(frames)
            size = meta["working_size"]
            if self._blends_apart:
                self.governor.observe(start_ms, "network", size)
                self.governor.observe(ms, "host", size)
            else:
                self.governor.observe(start_ms + ms, "network", size)
        return [Frame(f.index, f.pts, f.time, f.captured, np.ascontiguousarray(im), f.image, {**f.meta, **meta})
                for f, im in zip(frames, images, strict=True)]

    def _smoother_worker(self) -> None:
        """Blends each started batch in order, then hands its frames to the sinks."""
        while not self.abort.is_set():
            item = self._get(self.q_mid, block=True)
            if item is _END:
                return
            if item is None:
                continue
            for out in self._frames(*item):
                if not self._put(self.q_out, out):
                    return

    def _hint_if_slow(self) -> None:
        """Once, after the first frames of a live stream: if the network alone keeps it under 5 fps
        (a CPU at the default size), say so with the measured time and what helps."""
        if not self.live or self._speed_checked or len(self.stylize_ms) < 5:
            return
        self._speed_checked = True
        ms = float(np.median(self.stylize_ms))
        if ms > SLOW_LIVE_MS:
            w, h = self.out_info.width, self.out_info.height
            advice = ("a smaller --size is faster (the work grows with the pixel count); " if min(w, h) > 256
                      else "")
            log.warning("live: %.0f ms per frame (%.1f fps at most) at %dx%d with %s on %s; %san NVIDIA GPU is "
                        "much faster", ms, 1000 / ms, w, h, self.engine.name, getattr(self.engine, "device", "?"),
                        advice)

    def _current_style(self) -> tuple[NamedStyle, float]:
        if self.controls is None:
            return self.styles[0], self.alpha
        if self.step.smoother is not None:
            self.step.smoother.enabled = self.controls.smoothing
        return self.styles[self.controls.style_index % len(self.styles)], self.controls.alpha

    def _sink_worker(self, opened: threading.Event) -> None:
        opened_sinks = []
        progress = None
        stats = StatsPrinter(self.stats, self)
        failed = True
        try:
            try:
                for sink in self.sinks:
                    sink.open(self.out_info)
                    opened_sinks.append(sink)
            finally:
                opened.set()
            progress = FileProgress(self.out_info) if self.progress and not self.live else None
            while not self.abort.is_set():
                item = self._get(self.q_out, block=True)
                if item is _END:
                    break
                if item is None:
                    continue
                with stage(self.times, "encode"):
                    for sink in opened_sinks:
                        sink.write(item)
                latency = (time.monotonic() - item.captured) * 1000
                self.result.frames_out += 1
                self.result.latencies_ms.append(latency)
                stats.tick(latency)
                if progress:
                    progress.advance()
                if self.on_frame:
                    self.on_frame(item)
            failed = self.error is not None and not isinstance(self.error, KeyboardInterrupt)
        finally:
            if progress:
                progress.close()
            stats.close()
            for sink in opened_sinks:  # also those opened before another failed to open
                try:
                    sink.abort() if failed else sink.close()
                except Exception as e:  # noqa: BLE001 - close the others anyway
                    log.error("closing %s failed: %s", getattr(sink, "name", sink), e)
                    if self.error is None:
                        self.error = e

    # -- queue helpers (wake up regularly to notice a stop or an abort) -----------------------

    def _get_input(self, block: bool):
        """The next frame to stylize, _END, or None (as _get)."""
        if not self.live:
            return self._get(self.q_in, block)
        while True:
            try:
                frame = self.latest_in.take(timeout=0.1 if block else 0)
            except Closed:
                return _END
            if frame is not None or not block or self.abort.is_set() or self.stop.is_set():
                return frame

    def _put(self, q: queue.Queue, item, until: threading.Event | None = None) -> bool:
        """Blocking put; False (item not queued) once `until` (default: abort) is set."""
        until = until or self.abort
        while not until.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def _get(self, q: queue.Queue, block: bool):
        """The next item, or None: at once without `block`, else when the loop aborts (or stops, for q_in)."""
        while True:
            try:
                return q.get(timeout=0.1) if block else q.get_nowait()
            except queue.Empty:
                if not block or self.abort.is_set() or (q is self.q_in and self.stop.is_set()):
                    return None
