"""What the user changes while a live stream runs: style, strength, smoothing, view, screenshot, quit.

The window sink feeds key presses in (`handle_key`) on the sink thread; the stream loop reads the state
on the stylize thread every frame. One lock guards it all; every read and change is a few assignments.

Hotkeys (lower case; cv2.waitKey gives the low byte of the key code):
    n ]  next style        p [  previous style     1..9  style by number
    + =  alpha up 0.1      -    alpha down 0.1
    t    smoothing on/off  s    side-by-side on/off
    c    screenshot        h    HUD on/off          q Esc quit
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from streamer.alpha import clamp_alpha

ALPHA_STEP = 0.1
ESC = 27

HELP = "n/p style  +/- alpha  t smooth  s side  c shot  h hud  q quit"


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


class LiveControls:
    """Thread-safe live state. Properties read under the lock; methods change it and say what changed."""

    def __init__(self, styles: Sequence[str], alpha: float = 1.0, smoothing: bool = False,
                 side_by_side: bool = False, hud: bool = True, style_index: int = 0):
        self._lock = threading.Lock()
        self._styles = list(styles)
        self._style_index = style_index % len(self._styles) if self._styles else 0
        self._alpha = clamp_alpha(alpha)
        self._smoothing = bool(smoothing)
        self._side_by_side = bool(side_by_side)
        self._hud = bool(hud)
        self._screenshot = False
        self._quit = False

    # -- reads ----------------------------------------------------------------------------------

    @property
    def styles(self) -> list[str]:
        return list(self._styles)

    @property
    def style_index(self) -> int:
        with self._lock:
            return self._style_index

    @property
    def style_name(self) -> str:
        with self._lock:
            return self._styles[self._style_index] if self._styles else ""

    @property
    def alpha(self) -> float:
        with self._lock:
            return self._alpha

    @property
    def smoothing(self) -> bool:
        with self._lock:
            return self._smoothing

    @property
    def side_by_side(self) -> bool:
        with self._lock:
            return self._side_by_side

    @property
    def hud(self) -> bool:
        with self._lock:
            return self._hud

    @property
    def quit(self) -> bool:
        with self._lock:
            return self._quit

    @property
    def screenshot_requested(self) -> bool:
        """Peek at the flag; the sink that takes the screenshot uses `take_screenshot_request`."""
        with self._lock:
            return self._screenshot

    # -- changes (each returns a short description for the log / HUD) -----------------------------

    def next_style(self) -> str:
        return self._step_style(+1)

    def previous_style(self) -> str:
        return self._step_style(-1)

    def select_style(self, index: int) -> str | None:
        """Style by position (0-based); None when there is no such style."""
        with self._lock:
            if not 0 <= index < len(self._styles):
                return None
            self._style_index = index
            return f"style {self._styles[index]} ({index + 1}/{len(self._styles)})"

    def _step_style(self, step: int) -> str:
        with self._lock:
            if not self._styles:
                return "no styles"
            self._style_index = (self._style_index + step) % len(self._styles)
            return f"style {self._styles[self._style_index]} ({self._style_index + 1}/{len(self._styles)})"

    def alpha_up(self, step: float = ALPHA_STEP) -> str:
        return self._set_alpha(step)

    def alpha_down(self, step: float = ALPHA_STEP) -> str:
        return self._set_alpha(-step)

    def _set_alpha(self, delta: float) -> str:
        with self._lock:
            self._alpha = clamp_alpha(self._alpha + delta)
            return f"alpha {self._alpha:.1f}"

    def toggle_smoothing(self) -> str:
        with self._lock:
            self._smoothing = not self._smoothing
            return f"smoothing {_on_off(self._smoothing)}"

    def toggle_side_by_side(self) -> str:
        with self._lock:
            self._side_by_side = not self._side_by_side
            return f"side-by-side {_on_off(self._side_by_side)}"

    def toggle_hud(self) -> str:
        with self._lock:
            self._hud = not self._hud
            return f"HUD {_on_off(self._hud)}"

    def request_screenshot(self) -> str:
        with self._lock:
            self._screenshot = True
            return "screenshot"

    def take_screenshot_request(self) -> bool:
        """True once per request: reads and clears the flag in one step."""
        with self._lock:
            requested, self._screenshot = self._screenshot, False
            return requested

    def request_quit(self) -> str:
        with self._lock:
            self._quit = True
            return "quit"

    def handle_key(self, key: int) -> str | None:
        """Apply a hotkey (a cv2.waitKey code); None for no key (-1) or a key without a meaning."""
        if key is None or not 0 <= key <= 0xFF:
            return None
        if key == ESC:
            return self.request_quit()
        ch = chr(key)
        if "1" <= ch <= "9":
            return self.select_style(int(ch) - 1)
        action = _KEYS.get(ch)
        return action(self) if action else None

    def snapshot(self) -> dict:
        """Everything at once, consistent (one lock), for a HUD or a stats line."""
        with self._lock:
            return {"style": self._styles[self._style_index] if self._styles else "",
                    "style_index": self._style_index, "alpha": self._alpha, "smoothing": self._smoothing,
                    "side_by_side": self._side_by_side, "hud": self._hud, "quit": self._quit}


_KEYS = {
    "n": LiveControls.next_style, "]": LiveControls.next_style,
    "p": LiveControls.previous_style, "[": LiveControls.previous_style,
    "+": LiveControls.alpha_up, "=": LiveControls.alpha_up,
    "-": LiveControls.alpha_down,
    "t": LiveControls.toggle_smoothing,
    "s": LiveControls.toggle_side_by_side,
    "c": LiveControls.request_screenshot,
    "h": LiveControls.toggle_hud,
    "q": LiveControls.request_quit,
}
