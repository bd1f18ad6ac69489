"""A network stream (RTSP, HTTP(S), ...) through OpenCV's FFmpeg backend."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import cv2

from streamer.sources.capture import LiveCaptureSource, QuietOpenCV


def redact_url(url: str) -> str:
    """The URL without a password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class UrlSource(LiveCaptureSource):
    """An RTSP / HTTP(S) / ... stream through OpenCV's FFmpeg backend; `timeout` for opening and reading."""

    def __init__(self, url: str, timeout: float = 10.0, backoff: tuple[float, float] = (0.5, 5.0)):
        self.url = url
        self.timeout = timeout
        shown = redact_url(url)
        missing = (f"Cannot open stream {shown}: check the address, the credentials and that the server "
                   f"is up (waited up to {timeout:g} s)")
        super().__init__(self._make, name=shown, missing=missing, backoff=backoff)

    def _make(self) -> cv2.VideoCapture:
        ms = int(self.timeout * 1000)
        with QuietOpenCV():
            return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG,
                                    [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
