"""Fault points for crash tests: TICKETHUB_FAULT=<name> kills the process right there, or
(`busy_point`) makes that step fail as if the database had stayed locked.

`os._exit` skips every finally block and rollback, as `kill -9` would.
"""

from __future__ import annotations

import os
import sys

from .settings import fault_from_env

POINTS = ("after_reserve", "after_charge", "before_issue", "busy_after_charge", "after_refund")
# Process-wide on purpose: a crash test kills the whole process at the point, whichever
# session reaches it. Read once, through settings, like every other variable.
_ACTIVE = fault_from_env()


def point(name: str) -> None:
    if name == _ACTIVE:
        sys.stdout.flush()
        os._exit(137)


def busy_point(name: str) -> None:
    """The step fails as DB_BUSY would after the busy budget (another process held the lock)."""
    if name == _ACTIVE:
        from .errors import ErrorCode, TicketHubError

        raise TicketHubError(
            ErrorCode.DB_BUSY, f"database stayed locked (fault point {name}); step rolled back"
        )


def arm(name: str) -> None:
    """Set the active fault point in this process (for in-process tests; "" disarms)."""
    global _ACTIVE
    _ACTIVE = name
