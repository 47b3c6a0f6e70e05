"""Fault points for crash tests: TICKETHUB_FAULT=<name> kills the process right there.

`os._exit` skips every finally block and rollback, as `kill -9` would.
"""

from __future__ import annotations

import os
import sys

POINTS = ("after_reserve", "after_charge", "before_issue")
_ACTIVE = os.environ.get("TICKETHUB_FAULT", "").strip()


def point(name: str) -> None:
    if name == _ACTIVE:
        sys.stdout.flush()
        os._exit(137)
