"""The style strength (alpha): 0 is the content as it is, 1 the full style.

One range for every way it comes in: --alpha, the YAML config's `alpha`, the studio's slider (checked:
a bad value is an error) and the live window's keys (clamped: a key press past the end stays at the end).
"""

from __future__ import annotations

from engines.errors import InputError

ALPHA_MIN, ALPHA_MAX = 0.0, 1.0


def check_alpha(alpha: float) -> float:
    if not ALPHA_MIN <= alpha <= ALPHA_MAX:
        raise InputError(f"strength must be {ALPHA_MIN:g}..{ALPHA_MAX:g}, got {alpha}")
    return alpha


def clamp_alpha(alpha: float) -> float:
    # rounded so that ten steps up from 0 land on exactly 1.0, not 0.9999999999999999
    return round(min(ALPHA_MAX, max(ALPHA_MIN, float(alpha))), 6)
