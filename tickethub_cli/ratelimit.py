"""Anti-enumeration: a token that keeps scanning codes we do not know is stopped for a while.

Counted in the database (table token_misses), inside the scan's own write transaction, so
every worker process sees the same count and the check and the scan cannot interleave with
another process's. A token may get at most LIMIT UNKNOWN or MALFORMED results in any WINDOW;
after that each scan is refused (and the refusal recorded) until enough of those results
are older than the window. A refused scan is not judged: it admits nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Session

LIMIT = 60
WINDOW_US = 60_000_000
MISSES = ("UNKNOWN", "MALFORMED")


_COUNT = "SELECT count(*) FROM token_misses WHERE token_id = ? AND at_us > ? AND kind <> 'REFUSED'"


def count_query(token_id: int, now_us: int) -> tuple[str, tuple[Any, ...]]:
    """The count `retry_after` reads, as a query giving one value, for a caller inside a
    group commit that reads several facts in one statement; hand the value to `prime`."""
    return _COUNT, (token_id, now_us - WINDOW_US)


def prime(s: Session, token_id: int, now_us: int, misses: int) -> None:
    """Keep a count read by `count_query(token_id, now_us)` for the rest of the group (as
    `retry_after` keeps the one it reads), unless one is already kept."""
    if s.group is not None:
        s.group.setdefault(("misses", token_id), [now_us, misses])


def retry_after(s: Session, token_id: int, now_us: int) -> int | None:
    """Seconds until the token may scan again, or None when it may scan now.

    Inside a group commit (`s.group`) the count is read once per token and kept up to date
    by `record`: later in the same transaction the window can only have lost old misses
    and gained this group's own (no other writer commits meanwhile), so the kept count is
    an upper bound, and below LIMIT it answers without a query."""
    group = s.group
    kept = group.get(("misses", token_id)) if group is not None else None
    if kept is not None and kept[0] <= now_us and kept[1] < LIMIT:
        return None
    conn = s.conn
    since = now_us - WINDOW_US
    misses = conn.execute(_COUNT, (token_id, since)).fetchone()[0]
    if group is not None:
        group[("misses", token_id)] = [now_us, misses]
    if misses < LIMIT:
        return None
    # free again once all but LIMIT - 1 of these misses have left the window
    oldest_needed = conn.execute(
        "SELECT at_us FROM token_misses WHERE token_id = ? AND at_us > ? AND kind <> 'REFUSED'"
        " ORDER BY at_us LIMIT 1 OFFSET ?",
        (token_id, since, misses - LIMIT),
    ).fetchone()[0]
    return max(1, math.ceil((oldest_needed + WINDOW_US - now_us) / 1_000_000))


def record(s: Session, token_id: int, kind: str, now_us: int) -> None:
    """Count a miss (UNKNOWN, MALFORMED) or record a refusal (REFUSED)."""
    s.conn.execute(
        "INSERT INTO token_misses (token_id, at_us, kind) VALUES (?, ?, ?)",
        (token_id, now_us, kind),
    )
    kept = s.group.get(("misses", token_id)) if s.group is not None else None
    if kept is not None and kind != "REFUSED":
        kept[1] += 1
