"""Virtual camera output (pyvirtualcam): the stylized stream as a webcam for Zoom, Meet, OBS, browsers.

A thin boundary: everything up to `pyvirtualcam.Camera` is ours (lazy import, format, errors that say how
to get a device); frame preparation is the pure function `prepare_frame`.
"""

from __future__ import annotations

import logging
import sys

import cv2
import numpy as np

from engines.errors import OutputError
from streamer.frame import Frame, StreamInfo
from streamer.sinks import Sink

log = logging.getLogger(__name__)

INSTALL = "pip install 'stylestream[vcam]'"
DEFAULT_FPS = 30.0


def how_to_get_a_device(platform: str | None = None) -> str:
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return ("create one with: sudo modprobe v4l2loopback devices=1 exclusive_caps=1 "
                "card_label=stylestream (package v4l2loopback-dkms), "
                "or set live.vcam.device to an existing loopback device")
    return "install OBS Studio and start its virtual camera once (Start Virtual Camera, then stop it)"


def prepare_frame(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` as the camera takes it: height x width x 3 uint8 BGR, C-contiguous (resized if needed)."""
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    h, w = image.shape[:2]
    if (w, h) != (width, height):
        area = w * h > width * height  # shrinking: area averaging, no aliasing
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


def _import_pyvirtualcam():
    try:
        import pyvirtualcam
    except ImportError:
        raise OutputError(f"The virtual camera needs pyvirtualcam: {INSTALL}") from None
    return pyvirtualcam


class VirtualCameraSink(Sink):
    """Sends frames to a virtual camera. Size is fixed by the first `open(info)`; other sizes are resized.

    `device`: e.g. /dev/video10 (Linux), None = the first virtual camera found. `fps`: what the camera
    advertises (None: the stream's rate). `backend`: a pyvirtualcam backend name (v4l2loopback, obs,
    unitycapture), None = try each.
    """

    name = "vcam"

    def __init__(self, device: str | None = None, fps: float | None = None, backend: str | None = None):
        self.device = device
        self.fps = fps
        self.backend = backend
        self._cam = None
        self.size: tuple[int, int] | None = None

    def open(self, info: StreamInfo) -> None:
        if self._cam is not None:
            return
        pyvirtualcam = _import_pyvirtualcam()
        if self.backend is not None and self.backend not in pyvirtualcam.camera.BACKENDS:
            known = ", ".join(sorted(pyvirtualcam.camera.BACKENDS)) or "none on this system"
            raise OutputError(f"Unknown virtual camera backend {self.backend!r}; available: {known}")
        fps = float(self.fps or info.fps or DEFAULT_FPS)
        width, height = info.width, info.height
        try:
            self._cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                            device=self.device, backend=self.backend)
        except RuntimeError as e:  # pyvirtualcam's "no device" (one line per backend tried)
            reason = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
            where = f" {self.device}" if self.device else ""
            raise OutputError(f"No virtual camera{where} ({reason}): {how_to_get_a_device()}") from None
        self.size = (width, height)
        log.info("virtual camera %s (%s) %dx%d at %.4g fps", self._cam.device, self._cam.backend,
                 width, height, fps)

    def write(self, frame: Frame) -> None:
        if self._cam is None or self.size is None:
            raise RuntimeError("VirtualCameraSink.write() before open()")
        # no sleep_until_next_frame: the stream loop sets the pace
        self._cam.send(prepare_frame(frame.image, *self.size))

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            cam.close()
