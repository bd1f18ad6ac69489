"""The WebRTC video track a tab receives: its newest input frame, stylized with its settings.

Input is the tab's own camera (the browser's track, received over WebRTC) or the server's source. Either
way only the newest frame is stylized: a pump task keeps taking the browser's frames and holds the last
one, so when the engine is slower than the camera, frames are skipped instead of queueing up (latency
stays one frame's work, not a growing backlog). The output frame keeps the input's timestamp.
"""

from __future__ import annotations

import asyncio
import logging
import time
from fractions import Fraction

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from streamer.latest import Closed, Latest
from streamer.serve.studio import Session, SourceHub, Studio

log = logging.getLogger(__name__)
VIDEO_CLOCK = Fraction(1, 90000)


class BrowserFrames:
    """The newest frame of a browser track (streamer.latest), taken by a pump task as fast as the track
    delivers."""

    def __init__(self, track: MediaStreamTrack):
        self.track = track
        self.latest: Latest[tuple[av.VideoFrame, float]] = Latest()  # (frame, monotonic arrival)
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.latest.put((frame, time.monotonic()))
        except MediaStreamError:
            pass
        finally:
            self.latest.close()

    async def take(self) -> tuple[av.VideoFrame, float]:
        try:
            return await self.latest.take_async()
        except Closed:
            raise MediaStreamError from None

    def stop(self) -> None:
        self._task.cancel()


class StylizedTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, studio: Studio, session: Session, browser: BrowserFrames | None = None,
                 hub: SourceHub | None = None):
        super().__init__()
        self.studio = studio
        self.session = session
        self.browser = browser
        self.hub = hub
        self._hub_seq = 0
        self._start = time.monotonic()

    async def _next_input(self):
        """(BGR image, pts, time base, monotonic arrival) of the newest input frame."""
        if self.browser is not None:
            frame, arrived = await self.browser.take()
            return frame.to_ndarray(format="bgr24"), frame.pts, frame.time_base, arrived
        self._hub_seq, arrived, image = await self.hub.next_after(self._hub_seq)
        return image, int((arrived - self._start) / VIDEO_CLOCK), VIDEO_CLOCK, arrived

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live" or self.session.closed:
            raise MediaStreamError
        image, pts, time_base, arrived = await self._next_input()
        out = await self.studio.stylize(self.session, image)
        self.session.delivered(out, arrived)
        frame = av.VideoFrame.from_ndarray(out, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame

    def stop(self) -> None:
        super().stop()
        if self.browser is not None:
            self.browser.stop()
