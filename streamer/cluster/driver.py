"""`stylestream convert --ray`: plan the work units, hand them to workers, join, report.

- The driver reads each input's packet index (no frames) to plan it, starts one ConvertWorker per GPU
  (or per `cpus_per_worker` cores on CPU-only nodes), and gives each idle worker the longest unit
  left. Workers read inputs and write outputs themselves, so every node must see the same storage.
- A split file is joined (on a worker) once all its segments are written.
- A worker that dies (killed, out of memory, node lost) is restarted by Ray; its unit is queued again,
  for any worker, up to `retries` times.
- A file that cannot be read fails alone, with the error plain `convert` gives; the others go on.
- A rerun skips outputs that exist (they are complete: files are renamed into place when finished),
  and reuses the finished segments of a long file if the input and settings are unchanged.
- Ctrl-C / SIGTERM: the workers are killed, partial files removed; finished segments are kept for a
  rerun in a hidden folder beside the output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from engines.errors import InputError, OutputError
from streamer.cluster.plan import FilePlan, plan_file
from streamer.cluster.scheduler import ClusterSummary, RayUnavailable, Scheduler
from streamer.config import RayConfig, StreamConfig
from streamer.convert import plan_conversions
from streamer.sinks.video_file import VideoFileSink

log = logging.getLogger(__name__)
INSTALL = "pip install 'stylestream[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def run_ray_convert(cfg: StreamConfig, inputs: list[Path], output: Path, bar: bool = True) -> ClusterSummary:
    """Convert `inputs` on Ray (cfg.ray: address, segment length, warm-up, retries); the summary."""
    ray = import_ray()
    rc = cfg.ray or RayConfig()
    started = time.monotonic()
    summary = ClusterSummary()
    plans: list[FilePlan] = []
    owned = False
    try:
        plans = _plan_all(cfg, rc, plan_conversions(inputs, output), summary)
        if plans:
            owned = _connect(ray, rc.address)
            Scheduler(ray, cfg, plans, summary, bar, started).run()
    finally:
        _remove_unused_parts(plans)
        if owned:
            ray.shutdown()
    summary.seconds = time.monotonic() - started
    return summary


def _plan_all(cfg: StreamConfig, rc: RayConfig, pairs, summary: ClusterSummary) -> list[FilePlan]:
    plans = []
    for src, dst in pairs:
        VideoFileSink(dst, audio=False, overwrite=True).check()  # a folder where the file should go
        if dst.exists() and not cfg.video.overwrite:
            summary.skipped.append(dst)
            continue
        try:
            plan = plan_file(src, dst, rc.segment_seconds, rc.warmup_frames)
        except InputError as e:
            summary.failed[src] = str(e)
            continue
        if plan.split:
            _prepare_parts(plan, cfg)
        plans.append(plan)
    return plans


def _prepare_parts(plan: FilePlan, cfg: StreamConfig) -> None:
    """Keep the finished segments of an earlier run when the input and settings are the same; else start over."""
    settings = cfg.model_dump(mode="json", exclude={"ray": True, "live": True, "stats": True,
                                                    "video": {"overwrite"}})
    fingerprint = plan.fingerprint(settings)
    manifest = plan.parts_dir / "plan.json"
    try:
        same = json.loads(manifest.read_text()).get("fingerprint") == fingerprint
    except (OSError, ValueError):
        same = False
    if plan.parts_dir.exists() and (cfg.video.overwrite or not same):
        shutil.rmtree(plan.parts_dir)
    try:
        plan.parts_dir.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"src": str(plan.src), "fingerprint": fingerprint}))
    except OSError as e:
        raise OutputError(f"Cannot write {plan.parts_dir}: {e.strerror}") from None


def _remove_unused_parts(plans: list[FilePlan]) -> None:
    """Parts folders that hold no finished segment (a run that stopped before one was written)."""
    for plan in plans:
        if plan.split and plan.parts_dir.is_dir() and not any(plan.segment_path(s).exists() for s in plan.segments):
            shutil.rmtree(plan.parts_dir, ignore_errors=True)


def _connect(ray, address: str | None) -> bool:
    """Connect (or start a local Ray); True when this call started it and should shut it down."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:  # "local": a new Ray here, even where `ray start` has left a cluster that plain ray.init() would join
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise RayUnavailable(f"Cannot start or reach {where}: {str(e).splitlines()[0]}; check the address "
                             f"(`ray status` on the head node)") from None
    return True
