"""A camera by index."""

from __future__ import annotations

import sys

import cv2

from streamer.sources.capture import LiveCaptureSource, QuietOpenCV


def _camera_hint() -> str:
    if sys.platform.startswith("linux"):
        return "list cameras with `v4l2-ctl --list-devices` (or `ls /dev/video*`)"
    if sys.platform == "darwin":
        return "list cameras with `system_profiler SPCameraDataType` and allow camera access for the terminal"
    return "see the cameras in the Device Manager (Windows) and close other programs using them"


class CameraSource(LiveCaptureSource):
    """A camera by index (0 = the default camera), optionally asking for a size and frame rate."""

    def __init__(self, index: int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, backoff: tuple[float, float] = (0.5, 5.0)):
        self.index = index
        self.requested = (width, height, fps)
        missing = (f"No camera at index {index}: check it is connected and not used by another program; "
                   f"{_camera_hint()}")
        super().__init__(self._make, name=f"camera {index}", missing=missing, fps=fps, backoff=backoff)

    def _make(self) -> cv2.VideoCapture:
        with QuietOpenCV():
            cap = cv2.VideoCapture(self.index)
        width, height, fps = self.requested
        if cap.isOpened():
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where supported: fewer stale frames queued in the driver
        return cap
