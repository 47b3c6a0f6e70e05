"""The one clock and the one time format.

Times are stored and printed in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; comparisons that
matter (hold expiry, leases) use integer epoch microseconds so text formats never decide them.
``TICKETHUB_CLOCK_OFFSET`` (seconds) shifts the clock for drills and expiry tests.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from . import settings
from .errors import invalid, ref

_offset_us: int | None = None
_ISO_SHAPE = re.compile(  # [0-9], not \d: \d also matches other scripts' digits
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)


MAX_UTC_OFFSET = timedelta(hours=14)  # the widest offset any real zone uses (UTC+14)


def _offset() -> int:
    global _offset_us
    if _offset_us is None:
        _offset_us = int(settings.clock_offset_seconds() * 1_000_000)
    return _offset_us


def check_offset() -> None:
    """Refuse a bad TICKETHUB_CLOCK_OFFSET now, before a command writes anything (read
    lazily, it would first surface in the middle of a sale)."""
    _offset()


def set_offset(seconds: float) -> None:
    """Shift the clock (tests and drills); 0 puts it back. Bounded like the env variable."""
    global _offset_us
    _offset_us = int(settings.check_clock_offset(seconds) * 1_000_000)


def now_us() -> int:
    return time.time_ns() // 1000 + _offset()


def now() -> datetime:
    return from_us(now_us())


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def to_us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def fmt(dt: datetime) -> str:
    """Always a 4-digit year: strftime("%Y") writes year 999 as "999", which would sort
    after "2027" in the text columns."""
    dt = dt.astimezone(UTC)
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    return f"{text}.{dt.microsecond:06d}Z" if dt.microsecond else f"{text}Z"


_text_cache: tuple[int, str] = (-1, "")


def text_of_us(us: int) -> str:
    """Format epoch microseconds like fmt(), caching the per-second prefix: the hot path
    stamps several rows per purchase."""
    global _text_cache
    seconds, micro = divmod(us, 1_000_000)
    cached = _text_cache  # read once: another thread may replace it meanwhile
    if cached[0] != seconds:
        cached = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        _text_cache = cached
    prefix = cached[1]
    return f"{prefix}.{micro:06d}Z" if micro else f"{prefix}Z"


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo  # only times with a zone need the zone database

    return ZoneInfo(name)


def _local_in(naive: datetime, zone: str, text: str) -> datetime:
    """A wall-clock time in `zone`; refused where that wall-clock time does not exist (the
    hour skipped in spring) or exists twice (the hour repeated in autumn)."""
    tz = _zone(zone)
    first, second = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        raise invalid(
            f"{text[:60]!r} does not exist in {zone} (the clocks go forward)",
            hint="give a time before or after the change",
        )
    if first.utcoffset() != second.utcoffset():
        offsets = " or ".join(_offset_text(d) for d in (first, second))
        raise invalid(
            f"{text[:60]!r} happens twice in {zone} (the clocks go back)",
            hint=f"add the offset you mean: {offsets}",
        )
    return first.astimezone(UTC)


def _check_offset_in(dt: datetime, zone: str, text: str) -> None:
    """An explicit offset must be the zone's own at that instant: a summer offset copied
    into a winter date would move the event by an hour without a word."""
    local = dt.astimezone(_zone(zone))
    if local.utcoffset() != dt.utcoffset():
        wall = dt.replace(tzinfo=None)
        raise invalid(
            f"{text[:60]!r} has offset {_offset_text(dt)}, but {zone} is at"
            f" {_offset_text(local)} then: that is {local:%H:%M} there, not {wall:%H:%M}",
            hint=f"write {wall:%Y-%m-%dT%H:%M:%S} (local time) or use offset {_offset_text(local)}",
        )


def _offset_text(dt: datetime) -> str:
    minutes = int((dt.utcoffset() or timedelta(0)).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_text(
    utc_text: str | None,
    zone: str | None = "UTC",
    *,
    weekday: bool = False,
    form: Literal["full", "short", "time"] = "full",
) -> str:
    """A stored UTC time as people at the event read it: their zone, to the minute, with
    the zone's abbreviation ("2026-11-24 20:00 CET"); never microseconds. Human output only:
    JSON keeps the UTC text. A value that does not parse is shown as it is.
    `form`: "short" is "11-24 20:00" for a narrow table column (no year, no zone), "time"
    is "20:00 CET" for a moment of today (the gate)."""
    if not utc_text:
        return "-"
    try:
        dt = datetime.fromisoformat(utc_text.replace("Z", "+00:00"))
    except ValueError:
        return utc_text
    from zoneinfo import ZoneInfo  # only human output of times needs the zone database

    try:
        local = dt.astimezone(ZoneInfo(zone or "UTC"))
    except (ValueError, OSError, OverflowError, KeyError):
        local = dt
    if form == "short":
        return f"{local.month:02d}-{local.day:02d} {local:%H:%M}"
    if form == "time":
        return f"{local:%H:%M %Z}"
    day = f"{local:%a} " if weekday else ""
    return f"{day}{local.year:04d}-{local.month:02d}-{local.day:02d} {local:%H:%M} {local:%Z}"


def now_text() -> str:
    return text_of_us(now_us())


def parse(text: str, zone: str | None = None) -> datetime:
    """Parse ISO 8601 with an offset or Z; a time without one is refused, not guessed.

    With `zone` (an event's IANA zone), a time without an offset is that zone's local time
    (refused where the clocks skip it, or pass it twice, at a change of summer time), and a
    numeric offset must be the zone's own on that date: "19:30-04:00" for a January evening
    in New York is refused rather than silently stored as 18:30. `Z` is always a plain
    instant. The zone UTC (every event's default) reads like no zone: an offset is taken as
    given, and a bare time is refused as ambiguous."""
    value = text.strip()
    if zone == "UTC":
        zone = None
    if not _ISO_SHAPE.match(value):
        raise invalid(
            f"not an ISO 8601 time: {text[:60]!r}",
            hint="use e.g. 2027-06-01T20:00:00+02:00 or 2027-06-01T18:00:00Z",
        )
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid(f"impossible time {text[:60]!r}: {exc}") from None
    offset = dt.utcoffset() if dt.tzinfo is not None else None
    if offset is None and zone is not None:
        return _local_in(dt, zone, text)
    if offset is None:
        raise invalid(
            f"time {text[:60]!r} has no UTC offset",
            hint=f"add Z or an offset such as +02:00, or give the event's {ref('timezone')} and"
            " write the local time",
        )
    if zone is not None and not value.upper().endswith("Z"):
        _check_offset_in(dt, zone, text)
    if abs(offset) > MAX_UTC_OFFSET:
        raise invalid(f"time {text[:60]!r} has a UTC offset beyond ±14:00, which no place uses")
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise invalid(f"time {text[:60]!r} is out of range: {exc}") from None
