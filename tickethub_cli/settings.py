"""Settings taken from the environment, each read, parsed and bounded in one place.

An environment variable is input like any other: a value that cannot be right is refused
with INVALID_INPUT before anything is written, never guessed at or left to crash later.
"""

from __future__ import annotations

import math
import os

from .errors import invalid

# Ten years either way is plenty for drills and expiry tests, and keeps every time this
# process stamps inside what datetime, SQLite integers and 4-digit years can represent.
MAX_CLOCK_OFFSET_S = 10 * 366 * 86400


def clock_offset_seconds() -> float:
    """TICKETHUB_CLOCK_OFFSET: seconds added to the clock (0 when unset)."""
    raw = os.environ.get("TICKETHUB_CLOCK_OFFSET", "").strip()
    if not raw:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise invalid(f"TICKETHUB_CLOCK_OFFSET must be seconds, got {raw[:40]!r}") from None
    return check_clock_offset(seconds)


def check_clock_offset(seconds: float) -> float:
    """A finite shift of at most MAX_CLOCK_OFFSET_S either way."""
    if not math.isfinite(seconds) or abs(seconds) > MAX_CLOCK_OFFSET_S:
        raise invalid(
            f"TICKETHUB_CLOCK_OFFSET must be within ±{MAX_CLOCK_OFFSET_S} seconds (10 years)",
            hint="unset it to use the real clock",
        )
    return seconds


def webhook_secret() -> str:
    """TICKETHUB_WEBHOOK_SECRET: a blank secret signs nothing, so it counts as missing."""
    secret = os.environ.get("TICKETHUB_WEBHOOK_SECRET", "")
    if not secret.strip():
        raise invalid(
            "TICKETHUB_WEBHOOK_SECRET is not set (or blank)",
            hint="export the provider's signing secret",
        )
    if not is_utf8(secret):
        raise invalid("TICKETHUB_WEBHOOK_SECRET must be UTF-8 text")
    return secret


def is_utf8(text: str) -> bool:
    """False for text holding surrogates: bytes that were not UTF-8 in argv or the
    environment (Python keeps them as lone surrogates, which nothing can store or print)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
