"""MJPEG over HTTP (aiohttp): the multipart stream of newest frames, one JPEG per part.

The one MJPEG server code: `live --mjpeg` (streamer.sinks.mjpeg) serves it, and the studio sends each tab's
stylized stream with it (GET /api/sessions/ID/mjpeg, for OBS). Each frame is JPEG-encoded at most once, by
the first viewer that asks for it, not per viewer and not at all while nobody watches. Every viewer is sent
the newest frame when it is ready for one (streamer.latest): a slow viewer skips frames instead of building
up a backlog. Closing the feed ends every viewer's stream with the closing boundary.
"""

from __future__ import annotations

import asyncio
import threading

import cv2
import numpy as np
from aiohttp import web

from engines.errors import OutputError
from streamer.latest import Closed, Latest

BOUNDARY = "frame"
NO_CACHE = "no-cache, no-store, must-revalidate"


class JpegFeed:
    """The newest frame and its JPEG, encoded lazily and once. `put` and `close` from any thread."""

    def __init__(self, quality: int = 85):
        self.quality = quality
        self.frames: Latest[np.ndarray] = Latest()
        self.viewers = 0                  # streams being sent right now
        self._encode_lock = threading.Lock()
        self._jpeg: tuple[int, bytes] | None = None

    def put(self, image: np.ndarray) -> None:
        self.frames.put(image)  # kept by reference: nobody changes a frame once it is handed on

    def close(self) -> None:
        self.frames.close()

    def jpeg(self) -> tuple[int, bytes] | None:
        """(sequence number, JPEG bytes) of the newest frame; None before the first frame."""
        with self._encode_lock:
            newest = self.frames.peek()
            if newest is None:
                return None
            seq, image = newest
            if self._jpeg is None or self._jpeg[0] != seq:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise OutputError(f"JPEG encoding failed for a {image.shape} frame")
                self._jpeg = (seq, buf.tobytes())
            return self._jpeg


async def stream(request: web.Request, feed: JpegFeed) -> web.StreamResponse:
    """multipart/x-mixed-replace of `feed`'s frames until it closes or the viewer goes away."""
    response = web.StreamResponse(headers={"Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                                           "Cache-Control": NO_CACHE, "Pragma": "no-cache"})
    await response.prepare(request)
    feed.viewers += 1
    sent = 0
    try:
        while True:
            try:
                await feed.frames.after_async(sent)
            except Closed:
                await response.write(f"--{BOUNDARY}--\r\n".encode())  # the end of the multipart body
                break
            sent, data = await asyncio.to_thread(feed.jpeg)  # off the event loop: other viewers go on
            await response.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}"
                                 "\r\n\r\n".encode() + data + b"\r\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the viewer went away; nothing to clean up but the count
    finally:
        feed.viewers -= 1
    return response
