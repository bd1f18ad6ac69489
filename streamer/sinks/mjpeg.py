"""MJPEG over HTTP: the stylized stream for browsers, VLC, OBS (media/browser source) and OpenCV.

    GET /  or /stream   multipart/x-mixed-replace; boundary=frame, one JPEG per part
    GET /snapshot.jpg   the latest frame
    GET /index.html     a page with the stream in an <img>

The server (standard library ThreadingHTTPServer, one daemon thread per client) runs beside the stream.
Each frame is JPEG-encoded at most once, by the first client that asks for it, not per client and not at
all while nobody watches. Every client is sent the newest frame when it is ready for one: a slow client
skips frames instead of building up a backlog.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.sinks import Sink

log = logging.getLogger(__name__)

BOUNDARY = "frame"
_ALL_INTERFACES = {"", "0.0.0.0", "::"}
_CLIENT_TIMEOUT = 10.0      # seconds a client may stall a write before it is dropped
_SNAPSHOT_WAIT = 2.0        # seconds /snapshot.jpg waits for a first frame

_INDEX = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>stylestream</title></head>
<body style="margin:0;background:#111;display:flex;justify-content:center;align-items:center;height:100vh">
<img src="/stream" alt="stylestream" style="max-width:100%;max-height:100%">
</body></html>
"""


_NOT_FOUND = b"not found: try /stream, /snapshot.jpg or /index.html\n"


class _LatestFrame:
    """The newest frame and its JPEG, encoded lazily and once; clients wait on it for a newer one."""

    def __init__(self, quality: int):
        self.quality = quality
        self.cond = threading.Condition()
        self.closed = False
        self._image: np.ndarray | None = None
        self._seq = 0
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0
        self._encode_lock = threading.Lock()

    def put(self, image: np.ndarray) -> None:
        with self.cond:
            self._image = image
            self._seq += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def wait_newer(self, seq: int, timeout: float) -> int:
        """The current sequence number once it is past `seq` (0 on timeout or close)."""
        with self.cond:
            self.cond.wait_for(lambda: self.closed or self._seq > seq, timeout)
            return 0 if self.closed or self._seq <= seq else self._seq

    def jpeg(self) -> tuple[int, bytes] | None:
        """(sequence number, JPEG bytes) of the newest frame; None before the first frame."""
        with self._encode_lock:
            with self.cond:
                image, seq = self._image, self._seq
            if image is None:
                return None
            if self._jpeg_seq != seq:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise OutputError(f"JPEG encoding failed for a {image.shape} frame")
                self._jpeg, self._jpeg_seq = buf.tobytes(), seq
            return self._jpeg_seq, self._jpeg


class _Server(ThreadingHTTPServer):
    daemon_threads = True       # a stalled client never keeps the process alive
    block_on_close = False

    def __init__(self, address, latest: _LatestFrame):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.latest = latest
        self.clients = 0
        self.clients_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _CLIENT_TIMEOUT
    server_version = "stylestream"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        path = self.path.split("?", 1)[0]
        if path in ("/", "/stream"):
            self._stream()
        elif path == "/snapshot.jpg":
            self._snapshot()
        elif path in ("/index.html", "/index.htm"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", _INDEX)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain", _NOT_FOUND)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature from http.server
        log.debug("mjpeg %s: %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.end_headers()
        self.wfile.write(body)

    def _snapshot(self) -> None:
        latest = self.server.latest
        if latest.jpeg() is None:
            latest.wait_newer(0, _SNAPSHOT_WAIT)
        item = latest.jpeg()
        if item is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"no frame yet\n")
        else:
            self._send(HTTPStatus.OK, "image/jpeg", item[1])

    def _stream(self) -> None:
        latest = self.server.latest
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Pragma", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        with self.server.clients_lock:
            self.server.clients += 1
        log.info("mjpeg client %s connected", self.address_string())
        sent = 0
        try:
            while True:
                if not latest.wait_newer(sent, timeout=0.5):
                    if latest.closed:
                        self.wfile.write(f"--{BOUNDARY}--\r\n".encode())  # end of the multipart body
                        return
                    continue
                item = latest.jpeg()
                if item is None:
                    continue
                sent, data = item
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}"
                                 "\r\n\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
        except (OSError, ValueError):
            pass  # the client went away or stalled; nothing to clean up but the count
        finally:
            self.close_connection = True
            with self.server.clients_lock:
                self.server.clients -= 1
            log.info("mjpeg client %s disconnected", self.address_string())


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
        self._latest = _LatestFrame(quality)
        self._server: _Server | None = None
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
        return self._server.clients if self._server else 0

    def open(self, info: StreamInfo) -> None:
        if self._server is not None:
            return
        try:
            self._server = _Server((self.host, self.port), self._latest)
        except OSError as e:
            raise OutputError(_bind_error(self.host, self.port, e)) from None
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"mjpeg:{self.port}", daemon=True)
        self._thread.start()
        if self.host in _ALL_INTERFACES:
            log.warning("MJPEG server listens on all interfaces (%s:%d): anyone on your network can watch",
                        self.host or "0.0.0.0", self.port)
        log.info("MJPEG stream at %s (page: %s)", self.url, self.url.replace("/stream", "/index.html"))

    def write(self, frame: Frame) -> None:
        if self._server is None:
            raise RuntimeError("MjpegSink.write() before open()")
        self._latest.put(frame.image)  # kept by reference: sinks never change a frame in place

    def close(self, timeout: float = 2.0) -> None:
        """Ends every client's stream with the closing boundary, then stops the server."""
        server, self._server = self._server, None
        if server is None:
            return
        self._latest.close()
        deadline = time.monotonic() + timeout
        while server.clients > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)


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
