"""`live --mjpeg`: the stylized stream for browsers, VLC, OBS (media/browser source) and OpenCV.

    GET /  or /stream   multipart/x-mixed-replace; boundary=frame, one JPEG per part
    GET /snapshot.jpg   the latest frame
    GET /index.html     a page with the stream in an <img>

The server is the studio's MJPEG code (streamer.mjpeg: aiohttp, each frame encoded once whatever the number
of viewers, a slow viewer skips frames), on an event loop of its own in a thread beside the stream.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time

from aiohttp import web

from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.mjpeg import NO_CACHE, JpegFeed, stream
from streamer.sinks import Sink

log = logging.getLogger(__name__)

_ALL_INTERFACES = {"", "0.0.0.0", "::"}
_SNAPSHOT_WAIT = 2.0        # seconds /snapshot.jpg waits for a first frame

_INDEX = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>stylestream</title></head>
<body style="margin:0;background:#111;display:flex;justify-content:center;align-items:center;height:100vh">
<img src="/stream" alt="stylestream" style="max-width:100%;max-height:100%">
</body></html>
"""
_NOT_FOUND = "not found: try /stream, /snapshot.jpg or /index.html\n"


def _routes(feed: JpegFeed) -> web.Application:
    async def stream_page(request: web.Request) -> web.StreamResponse:
        log.info("mjpeg client %s connected", request.remote)
        try:
            return await stream(request, feed)
        finally:
            log.info("mjpeg client %s disconnected", request.remote)

    async def snapshot(request: web.Request) -> web.Response:
        if feed.jpeg() is None:
            try:
                await asyncio.wait_for(feed.frames.after_async(0), _SNAPSHOT_WAIT)
            except Exception:  # noqa: BLE001 - no frame in time, or closed: both are "no frame yet"
                pass
        item = await asyncio.to_thread(feed.jpeg)
        if item is None:
            return web.Response(status=503, text="no frame yet\n", headers={"Cache-Control": NO_CACHE})
        return web.Response(body=item[1], content_type="image/jpeg", headers={"Cache-Control": NO_CACHE})

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=_INDEX, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": NO_CACHE})

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404, text=_NOT_FOUND)

    app = web.Application()
    for path in ("/", "/stream"):
        app.router.add_get(path, stream_page)
    app.router.add_get("/snapshot.jpg", snapshot)
    for path in ("/index.html", "/index.htm"):
        app.router.add_get(path, index)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


class MjpegSink(Sink):
    """Serve the stylized frames as MJPEG over HTTP. `port=0` picks a free port (see `.url`)."""

    name = "mjpeg"

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 85):
        if not 1 <= quality <= 100:
            raise OutputError(f"MJPEG quality must be 1..100, got {quality}")
        if not 0 <= port <= 65535:
            raise OutputError(f"MJPEG port must be 0..65535, got {port}")
        self.host = host
        self.port = port
        self.quality = quality
        self._feed = JpegFeed(quality)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the stream is, e.g. http://127.0.0.1:8080/stream (the real port once open)."""
        host = "127.0.0.1" if self.host in _ALL_INTERFACES else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/stream"

    @property
    def clients(self) -> int:
        """Clients watching the stream right now."""
        return self._feed.viewers

    def open(self, info: StreamInfo) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(_routes(self._feed), access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, self.host or "0.0.0.0", self.port).start())
        except OSError as e:
            loop.run_until_complete(runner.cleanup())
            loop.close()
            raise OutputError(_bind_error(self.host, self.port, e)) from None
        self._loop, self._runner = loop, runner
        self.port = runner.addresses[0][1]
        self._thread = threading.Thread(target=loop.run_forever, name=f"mjpeg:{self.port}", daemon=True)
        self._thread.start()
        if self.host in _ALL_INTERFACES:
            log.warning("MJPEG server listens on all interfaces (%s:%d): anyone on your network can watch",
                        self.host or "0.0.0.0", self.port)
        log.info("MJPEG stream at %s (page: %s)", self.url, self.url.replace("/stream", "/index.html"))

    def write(self, frame: Frame) -> None:
        if self._loop is None:
            raise RuntimeError("MjpegSink.write() before open()")
        self._feed.put(frame.image)  # kept by reference: sinks never change a frame in place

    def close(self, timeout: float = 2.0) -> None:
        """Ends every client's stream with the closing boundary, then stops the server."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        self._feed.close()
        deadline = time.monotonic() + timeout
        while self._feed.viewers > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                loop.close()


def _bind_error(host: str, port: int, e: OSError) -> str:
    where = f"{host or '0.0.0.0'}:{port}"
    if e.errno == errno.EADDRINUSE:
        return f"Port {port} is in use ({where}): pick another with --mjpeg PORT, or 0 for any free port"
    if e.errno == errno.EACCES:
        return f"No permission to listen on {where}: use a port above 1023"
    if isinstance(e, socket.gaierror) or e.errno == errno.EADDRNOTAVAIL:
        return (f"Cannot listen on {where}: {host!r} is not an address of this machine; "
                "use 127.0.0.1 or 0.0.0.0")
    return f"Cannot listen on {where}: {e.strerror or e}"
