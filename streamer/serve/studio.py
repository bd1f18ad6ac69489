"""The sessions around one engine.

Each browser tab is a `Session` with its own style state, smoother, uploads and peer connection. All tabs
share one engine, which runs on one worker thread (torch, CUDA graphs and TensorRT contexts are not shared
between threads); frames of different tabs queue for it in arrival order. A tab that closes or drops (its
WebSocket ends) closes its session: the peer connection, the smoother and its uploaded styles are let go.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import cv2
import numpy as np

from engines.adain import StyleCode
from engines.backends.base import Engine
from engines.errors import StylestreamError
from engines.presets import load_preset, preset_names
from streamer.latest import Closed, Latest
from streamer.mjpeg import JpegFeed
from streamer.serve.render import StyleState, render
from streamer.stylize import StylizeStep, output_size
from streamer.temporal import TemporalSmoother
from streamer.working_size import Governor

log = logging.getLogger(__name__)

THUMB_SIZE = (192, 108)   # preset thumbnails: the demo clip's landscape stylized with each preset
DEFAULT_FPS = 30.0        # the rate a tab's stream is held at without --fps: a webcam's usual rate
JPEG_QUALITY = 85


class StudioFull(StylestreamError):
    """Every session slot is taken."""


class Session:
    """One tab: what it has chosen, and what it holds."""

    def __init__(self, session_id: str, state: StyleState):
        self.id = session_id
        self.state = state
        self.step: StylizeStep | None = None  # its own stylize step and smoother, made on the engine thread
        self.governor: Governor | None = None  # its working size, made with the first frame (its size)
        self.uploads: dict[str, StyleCode] = {}
        self.pc = None                      # its RTCPeerConnection, once it has sent an offer
        self.closed = False
        self.frames_out: deque[float] = deque(maxlen=240)   # monotonic time of each frame sent
        self.server_ms: deque[float] = deque(maxlen=60)     # frame arrival -> stylized, per frame
        self.output = JpegFeed(JPEG_QUALITY)                 # its stylized frames, as MJPEG for OBS
        self._restart_smoother = False

    def update(self, **changes) -> None:
        """Change the style state; the next frame uses it. The smoother restarts, so that the change shows
        in full on that frame instead of being blended with frames made under the old settings."""
        self.state = replace(self.state, **changes)
        self._restart_smoother = True  # done on the engine thread, which may be using the smoother now

    def render(self, engine: Engine, image: np.ndarray, size: int, fps: float | None = None,
               adaptive: bool = True, sharing: int = 1) -> np.ndarray:
        """On the engine thread. `sharing`: the tabs streaming through the engine now, whose frames take
        turns on it (each tab's governor counts its frame's time that many times)."""
        state = self.state
        if self.step is None:
            self.step = StylizeStep(engine)
        if state.smooth and self.step.smoother is None:
            self.step.smoother = TemporalSmoother()
        elif not state.smooth:
            self.step.smoother = None
        elif self._restart_smoother:
            self.step.smoother.reset()
        self._restart_smoother = False
        out_size = output_size(image.shape[1], image.shape[0], size)
        if self.governor is None or self.governor.out_size != out_size:  # the first frame, or a new camera
            self.governor = Governor(out_size, fps or DEFAULT_FPS, fixed=not adaptive)
        work = self.governor.size
        t0 = time.perf_counter()
        out = render(self.step, image, state, out_size, work)
        self.governor.observe((time.perf_counter() - t0) * 1000 * sharing, "network", work)
        return out

    def delivered(self, image: np.ndarray, arrived: float) -> None:
        now = time.monotonic()
        self.frames_out.append(now)
        self.server_ms.append((now - arrived) * 1000)
        self.output.put(image)

    def fps(self, window: float = 5.0) -> float:
        now = time.monotonic()
        recent = [t for t in self.frames_out if now - t <= window]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def describe(self) -> dict:
        s = self.state
        ms = sorted(self.server_ms)
        return {"id": self.id, "style": s.style, "alpha": s.alpha, "preserve_color": s.preserve_color,
                "smooth": s.smooth, "side_by_side": s.side_by_side, "fps": round(self.fps(), 2),
                "server_ms": round(ms[len(ms) // 2], 1) if ms else None, "frames": len(self.frames_out),
                "uploads": sorted(self.uploads), "connected": self.pc is not None,
                "working_size": self.governor.describe() if self.governor else None}


class Studio:
    """The engine, its worker thread, the sessions and the preset thumbnails."""

    def __init__(self, engine: Engine, *, size: int = 360, max_sessions: int = 4, default_style: str = "",
                 source_hub: SourceHub | None = None, fps: float | None = None, adaptive_size: bool = True):
        self.engine = engine
        self.size = size
        self.fps = fps                      # the rate each tab is held at (None: DEFAULT_FPS)
        self.adaptive_size = adaptive_size  # lower a tab's working size to hold it
        self.max_sessions = max_sessions
        self.default_style = default_style or preset_names()[0]
        self.default_code = load_preset(self.default_style)
        self.source_hub = source_hub
        self.sessions: dict[str, Session] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._thumbnails: dict[str, bytes] = {}

    # -- sessions -------------------------------------------------------------------------------

    def open_session(self) -> Session:
        if len(self.sessions) >= self.max_sessions:
            raise StudioFull(f"The studio is full: {len(self.sessions)} tabs are connected and the limit is "
                             f"{self.max_sessions} (stylestream serve --max-sessions). Close another tab, then "
                             "reload this one.")
        session = Session(secrets.token_hex(8), StyleState(self.default_style, self.default_code))
        self.sessions[session.id] = session
        log.info("session %s opened (%d of %d)", session.id, len(self.sessions), self.max_sessions)
        return session

    async def close_session(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        session.closed = True
        session.output.close()  # an MJPEG viewer's stream ends
        if session.pc is not None:
            await session.pc.close()
        session.pc = None
        session.step = None
        session.uploads.clear()
        log.info("session %s closed (%d left)", session.id, len(self.sessions))

    # -- work on the engine thread --------------------------------------------------------------

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def stylize(self, session: Session, image: np.ndarray) -> np.ndarray:
        sharing = max(1, sum(1 for s in self.sessions.values() if s.pc is not None))
        return await self.run(session.render, self.engine, image, self.size, self.fps, self.adaptive_size, sharing)

    async def encode_style(self, rgb: np.ndarray, name: str) -> StyleCode:
        from engines.backends.base import STYLE_SIZE
        from engines.images import to_tensor

        return await self.run(self.engine.encode_style, to_tensor(rgb), STYLE_SIZE, name)

    async def thumbnail(self, name: str) -> bytes:
        """JPEG of the demo landscape in preset `name` (made once, on first request)."""
        if name not in self._thumbnails:
            self._thumbnails[name] = await self.run(self._make_thumbnail, name)
        return self._thumbnails[name]

    def _make_thumbnail(self, name: str) -> bytes:
        from streamer.democlip import render_frame

        w, h = THUMB_SIZE
        state = StyleState(name, load_preset(name), smooth=False)
        image = render(StylizeStep(self.engine), render_frame(1.0, w, h), state, (w, h))
        return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.source_hub is not None:
            self.source_hub.close()


class SourceHub:
    """The server's own source (camera, file, stream), read on a thread; tabs that choose it take its newest
    frame (a slow tab skips frames, it never gets a backlog)."""

    def __init__(self, source):
        self.source = source
        self.name = source.info.name
        self.latest: Latest[tuple[float, np.ndarray]] = Latest()  # (monotonic arrival, BGR)
        self.error: str | None = None
        self._thread = threading.Thread(target=self._read, name="server-source", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self.source:
                for frame in self.source:
                    self.latest.put((time.monotonic(), frame.image))
        except StylestreamError as e:
            self.error = str(e)
            log.error("server source: %s", e)
            self.latest.close()

    async def next_after(self, seq: int) -> tuple[int, float, np.ndarray]:
        """(sequence, monotonic arrival, BGR) of the newest frame after sequence `seq` (waits for one)."""
        try:
            seq, (arrived, image) = await self.latest.after_async(seq)
        except Closed:
            raise StylestreamError(f"the server's source stopped: {self.error}") from None
        return seq, arrived, image

    def close(self) -> None:
        self.source.stop()
