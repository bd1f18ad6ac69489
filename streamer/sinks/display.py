"""Is there a display to open a window on? Checked before the first highgui call (see check_display)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import cv2

from engines.errors import OutputError

NO_DISPLAY = "No display for the preview window: run with --no-window or use --mjpeg/--vcam"


def check_display() -> None:
    """OutputError when there is no display to open a window on.

    On X11 systems this must be checked before the first highgui call: OpenCV's Qt backend aborts the
    whole process (no Python exception) when it cannot connect to the display.
    """
    if sys.platform in ("win32", "darwin"):
        return
    display = os.environ.get("DISPLAY", "")
    if not display:
        raise OutputError(NO_DISPLAY)
    if not x_display_reachable(display):
        raise OutputError(f"{NO_DISPLAY} (cannot connect to DISPLAY={display})")
    _quiet_qt_fonts()


def x_display_reachable(display: str, timeout: float = 1.0) -> bool:
    """Whether an X server answers at `display` ("[host]:N[.S]"): a socket connect, nothing more."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if not number.isdigit():
        return False
    if host.startswith("/"):  # a socket path, e.g. XQuartz launchd sockets
        return _connect(socket.AF_UNIX, f"{host}:{number}", timeout)
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        return _connect(socket.AF_UNIX, path, timeout) or _connect(socket.AF_UNIX, "\0" + path, timeout)
    return _connect(socket.AF_INET, (host, 6000 + int(number)), timeout)


def _connect(family: int, address, timeout: float) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(address)
        return True
    except OSError:
        return False


def _quiet_qt_fonts() -> None:
    # opencv-python's Qt ships no fonts and warns about it on every start; point it at the system's
    if "QT_QPA_FONTDIR" in os.environ or (Path(cv2.__file__).parent / "qt" / "fonts").is_dir():
        return
    for folder in ("/usr/share/fonts/truetype", "/usr/share/fonts"):
        if Path(folder).is_dir():
            os.environ["QT_QPA_FONTDIR"] = folder
            return
