"""The Ray actors: ConvertWorker (one per GPU, or per N CPU cores) and ProgressBoard (frame counts).

A ConvertWorker builds the engine and styles once, with the same code as plain `convert` (so TensorRT
and ONNX caches are used as there), and keeps them for every unit it is given. Workers read the
input and write their segment or output file themselves: frames never travel through Ray. Errors a
user can cause come back as {"error": message}; anything else is Ray's to report.

Importing this module imports Ray: only streamer.cluster.driver does, after checking Ray is there.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import ray

from engines.errors import StylestreamError
from streamer.cluster.join import join_segments
from streamer.cluster.plan import FilePlan, Segment
from streamer.cluster.segment import convert_unit

REPORT_EVERY_S = 0.5


class ConvertWorker:
    def __init__(self, cfg, cpu_threads: int | None):
        if cpu_threads:
            import cv2
            import torch

            torch.set_num_threads(cpu_threads)
            cv2.setNumThreads(cpu_threads)
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        from streamer.pipeline import build_engine, build_styles

        self.cfg = cfg
        self.engine = build_engine(cfg.engine)
        self.styles = build_styles(cfg, self.engine)
        self.node = ray.get_runtime_context().get_node_id()

    def where(self) -> dict:
        """Where this worker runs: node id, host, pid, engine."""
        return {"node": self.node, "host": socket.gethostname(), "pid": os.getpid(),
                "engine": self.engine.describe()}

    def convert(self, plan: FilePlan, seg: Segment, board, unit: str, name: str) -> dict:
        """Stylize one unit; {"frames", "seconds", "node", "pid"} or {"error"}. Reports progress to `board`."""
        start = last = time.monotonic()
        cpu = time.process_time()

        def report(frames: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= REPORT_EVERY_S:
                last = now
                board.report.remote(unit, name, frames)

        try:
            frames = convert_unit(self.cfg, self.engine, self.styles, plan, seg, report)
        except StylestreamError as e:
            return {"error": str(e)}
        board.report.remote(unit, name, frames)
        return {"frames": frames, "seconds": time.monotonic() - start, "cpu_s": time.process_time() - cpu,
                "node": self.node, "pid": os.getpid()}

    def join(self, plan: FilePlan) -> dict:
        """Join a split file's finished segments into its output; {"frames"} or {"error"}."""
        cpu = time.process_time()
        try:
            frames = join_segments(plan, self.cfg.video.audio)
            return {"frames": frames, "cpu_s": time.process_time() - cpu, "node": self.node, "pid": os.getpid()}
        except StylestreamError as e:
            return {"error": str(e)}


class ProgressBoard:
    """Frames written so far per unit attempt, as workers report them (a few times a second)."""

    def __init__(self):
        self.units: dict[str, tuple[str, int]] = {}

    def report(self, unit: str, worker: str, frames: int) -> None:
        self.units[unit] = (worker, frames)

    def snapshot(self) -> dict[str, tuple[str, int]]:
        return dict(self.units)


RemoteWorker = ray.remote(ConvertWorker)
RemoteBoard = ray.remote(num_cpus=0)(ProgressBoard)
