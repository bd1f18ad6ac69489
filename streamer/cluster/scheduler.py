"""The scheduling loop of `convert --ray`: workers, units, retries, progress, Ctrl-C.

One worker per GPU (or per `cpus_per_worker` cores on a cluster without GPUs), each given the
longest unit left when it is idle. A split file's join is queued as soon as its last segment is in.
A worker that dies is restarted by Ray; its unit goes back to the queue for any worker, and the
worker gets work again once a probe finds it back. Ctrl-C / SIGTERM kills the workers (and waits
until they are gone) before partial files are removed.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from engines.errors import OutputError, StylestreamError
from streamer.cluster.plan import FilePlan, segment_complete
from streamer.cluster.progress import ClusterProgress
from streamer.config import RayConfig, StreamConfig
from streamer.partial_files import glob_escape
from streamer.pipeline import Interrupted
from streamer.signals import on_stop_signals, raise_keyboard_interrupt

log = logging.getLogger(__name__)
RESTART_PROBE_S = 1.0


class RayUnavailable(StylestreamError):
    """Ray is not installed, or the cluster cannot be reached."""


@dataclass
class ClusterSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)   # complete outputs from an earlier run
    failed: dict[Path, str] = field(default_factory=dict)  # input -> the one-line error
    frames: int = 0
    seconds: float = 0.0
    retried: int = 0                                    # units run again after their worker died
    startup: float = 0.0                                # seconds until the first worker was ready
    cpu_seconds: float = 0.0                            # CPU time the workers spent in units and joins
    workers: dict[str, dict] = field(default_factory=dict)  # name -> node, pid, frames, units

    def line(self) -> str:
        total = len(self.written) + len(self.skipped) + len(self.failed)
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"ray: {len(self.written)} of {total} files converted ({self.frames} frames in {self.seconds:.1f} s, "
                f"{fps:.1f} fps, {len(self.workers)} workers), {len(self.skipped)} already complete, "
                f"{len(self.failed)} failed" + (f", {self.retried} units run again after a worker died"
                                                if self.retried else ""))


@dataclass
class _Unit:
    plan_no: int
    plan: FilePlan
    seg: object | None      # a Segment, or None for the join
    tries: int = 0

    @property
    def key(self) -> str:
        return f"{self.plan_no}/{'join' if self.seg is None else self.seg.index}"


class Scheduler:
    def __init__(self, ray, cfg: StreamConfig, plans: list[FilePlan], summary: ClusterSummary, bar: bool,
                 started: float):
        from streamer.cluster.worker import RemoteBoard

        self.ray = ray
        self.started = started
        self.cfg = cfg
        self.rc = cfg.ray or RayConfig()
        self.plans = plans
        self.summary = summary
        self.board = RemoteBoard.remote()
        self.done: dict[int, set[int]] = {}
        self.failed: set[int] = set()
        self.pending: deque[_Unit] = deque()
        units = []
        for no, plan in enumerate(plans):
            finished = {s.index for s in plan.segments if plan.split and segment_complete(plan, s)}
            self.done[no] = finished
            units += [_Unit(no, plan, s) for s in plan.segments if s.index not in finished]
            if plan.split and len(finished) == len(plan.segments):
                units.append(_Unit(no, plan, None))
        units.sort(key=lambda u: -(u.seg.frames if u.seg is not None else 0))  # longest first
        self.pending.extend(units)
        total = sum(u.seg.frames for u in units if u.seg is not None)
        self.progress = ClusterProgress(total, cfg.stats, bar)
        self.workers: dict[int, tuple] = {}   # worker no -> (handle, name)
        self.running: dict = {}               # ObjectRef -> (worker no, unit | None)
        self.deaths: dict[int, int] = {}
        self.probe_at: dict[int, float] = {}  # worker no -> when to ask a restarting worker whether it is back

    # -- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        stop = on_stop_signals(raise_keyboard_interrupt)
        try:
            with stop:
                self._start_workers()
                self._loop()
        except KeyboardInterrupt:
            self.progress.close()
            self._stop_workers()
            self._remove_partials()
            kept = sum(len(d) for n, d in self.done.items() if self.plans[n].split)
            raise Interrupted(f"interrupted: workers stopped, partial files removed; {len(self.summary.written)} "
                              f"files finished, {kept} finished segments kept for a rerun", stop.signum) from None
        finally:
            self.progress.close()
            self._stop_workers()
        for no in self.failed:
            if self.plans[no].split:
                shutil.rmtree(self.plans[no].parts_dir, ignore_errors=True)

    def _loop(self) -> None:
        while self.pending or self.running:
            now = time.monotonic()
            for w in [w for w, t in self.probe_at.items() if t <= now]:  # a restarted worker: alive again?
                del self.probe_at[w]
                self.running[self.workers[w][0].where.remote()] = (w, None)
            busy = {no for no, _ in self.running.values()} | set(self.probe_at)
            for w in [w for w in self.workers if w not in busy]:
                if not self.pending:
                    break
                self._submit(w, self.pending.popleft())
            if not self.running and not self.probe_at:
                raise OutputError("no Ray worker is left to convert the remaining files; see the errors above")
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.5) if self.running else ([], [])
            for ref in ready:
                self._collect(ref)
            self.progress.update(self.ray.get(self.board.snapshot.remote()))
        self.progress.update(self.ray.get(self.board.snapshot.remote()), final=True)

    def _submit(self, w: int, unit: _Unit) -> None:
        handle, name = self.workers[w]
        unit.tries += 1
        attempt = f"{unit.key}#{unit.tries}"
        if unit.seg is None:
            ref = handle.join.remote(unit.plan)
        else:
            self.progress.attempt(unit.key, attempt)
            ref = handle.convert.remote(unit.plan, unit.seg, self.board, attempt, name)
        self.running[ref] = (w, unit)

    def _collect(self, ref) -> None:
        w, unit = self.running.pop(ref)
        name = self.workers[w][1]
        try:
            result = self.ray.get(ref)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError) as e:
            self._worker_died(w, unit, e)
            return
        except self.ray.exceptions.RayTaskError as e:
            if unit is None:
                self._worker_died(w, None, e)
                return
            result = {"error": f"{unit.plan.src.name}: {str(e.cause or e).splitlines()[0]}"}
        self.deaths[w] = 0
        if unit is None:  # a worker's start-up call
            self._started(w, result)
            return
        if unit.plan_no in self.failed:
            return
        if "error" in result:
            self._fail(unit, result["error"])
            return
        info = self.summary.workers[name]
        info["units"] += 1
        self.summary.cpu_seconds += result.get("cpu_s", 0.0)
        if unit.seg is None or not unit.plan.split:
            self.summary.written.append(unit.plan.dst)
        if unit.seg is not None:
            self.progress.finish(f"{unit.key}#{unit.tries}", name, result["frames"])
            info["frames"] += result["frames"]
            self.summary.frames += result["frames"]
            done = self.done[unit.plan_no]
            done.add(unit.seg.index)
            if unit.plan.split and len(done) == len(unit.plan.segments):
                self.pending.appendleft(_Unit(unit.plan_no, unit.plan, None))

    def _worker_died(self, w: int, unit: _Unit | None, e: BaseException) -> None:
        """A worker died in a unit (Ray restarts it): the unit goes back to the queue, for any worker, and
        the worker gets work again once a probe finds it back. `unit` None: a probe (or the start)."""
        name = self.workers[w][1]
        restarting = isinstance(e, self.ray.exceptions.ActorUnavailableError)
        if unit is not None:
            self.deaths[w] = self.deaths.get(w, 0) + 1
        if self.deaths.get(w, 0) > self.rc.retries + 1 or (unit is None and not restarting):
            log.warning("ray: worker %s is lost (%s)", name, str(e).splitlines()[0])
            del self.workers[w]
        else:
            self.probe_at[w] = time.monotonic() + RESTART_PROBE_S
        if unit is None or unit.plan_no in self.failed:
            return
        if unit.tries > self.rc.retries:
            self._fail(unit, f"{unit.plan.src.name}: the worker died {unit.tries} times converting it (last: "
                             f"{str(e).splitlines()[0]})")
            return
        log.warning("ray: worker %s died during %s of %s; running it again", name,
                    "the join" if unit.seg is None else f"segment {unit.seg.index}", unit.plan.src.name)
        self.summary.retried += 1
        self.pending.appendleft(unit)

    def _fail(self, unit: _Unit, message: str) -> None:
        self.failed.add(unit.plan_no)
        self.summary.failed[unit.plan.src] = message
        self.pending = deque(u for u in self.pending if u.plan_no != unit.plan_no)

    # -- workers --------------------------------------------------------------------------------

    def _start_workers(self) -> None:
        """One worker per GPU on GPU nodes; on a cluster without GPUs, one per `cpus_per_worker` cores."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from streamer.cluster.worker import RemoteWorker

        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        gpus = any(n["Resources"].get("GPU", 0) >= 1 for n in nodes)
        for node in nodes:
            res = node["Resources"]
            if gpus:
                count, threads = int(res.get("GPU", 0)), None
                options = {"num_gpus": 1, "num_cpus": 1 if res.get("CPU", 0) >= count else 0}
            else:
                per = min(self.rc.cpus_per_worker, int(res.get("CPU", 0)))
                count, threads = (int(res.get("CPU", 0)) // per if per else 0), per
                options = {"num_cpus": per}
            strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=True)
            for _ in range(count):
                w = len(self.workers)
                name = f"w{w}@{node['NodeManagerAddress']}"
                handle = RemoteWorker.options(**options, max_restarts=-1, max_task_retries=0,
                                              scheduling_strategy=strategy).remote(self.cfg, threads)
                self.workers[w] = (handle, name)
                self.summary.workers[name] = {"node": node["NodeID"], "frames": 0, "units": 0}
                self.running[handle.where.remote()] = (w, None)
        if not self.workers:
            raise RayUnavailable("the Ray cluster has no CPU or GPU to run a worker on")

    def _started(self, w: int, where: dict) -> None:
        name = self.workers[w][1]
        if "error" in where:
            log.warning("ray: worker %s could not start: %s", name, where["error"])
            del self.workers[w]
            return
        self.summary.workers[name].update(pid=where["pid"], host=where["host"], engine=where["engine"])
        if not self.summary.startup:
            self.summary.startup = time.monotonic() - self.started

    def _stop_workers(self) -> None:
        """Kill every worker and wait (a few seconds at most) until they are gone, so none writes on."""
        handles = [h for h, _ in self.workers.values()]
        for h in handles:
            try:
                self.ray.kill(h, no_restart=True)
            except Exception as e:  # noqa: BLE001 - Ray itself may be going down (Ctrl-C reaches its processes)
                log.debug("ray.kill: %s", e)
        deadline = time.monotonic() + 10
        for h in handles:
            try:
                self.ray.get(h.where.remote(), timeout=max(0.1, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - dead is what we wait for; a timeout we accept
                pass
        self.workers.clear()

    def _remove_partials(self) -> None:
        """Partial files and the output locks of the killed workers (stale now: they are gone)."""
        for plan in self.plans:
            leftovers = [*plan.dst.parent.glob(f".{glob_escape(plan.dst.stem)}.partial*"),
                         plan.dst.with_name(f".{plan.dst.name}.lock")]
            if plan.split and plan.parts_dir.is_dir():
                leftovers += [*plan.parts_dir.glob(".*.partial*"), *plan.parts_dir.glob(".*.lock")]
            for path in leftovers:
                path.unlink(missing_ok=True)
