"""TicketHub: a command-line box office on one SQLite file.

The library does everything the CLI does::

    import tickethub_cli as th
    s, _, _ = th.init_session("box.db", operator="alice")
    event = th.events.create_event(s, name="Gig", starts_at="2027-06-01T20:00:00+02:00")
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "ErrorCode": ("errors", "ErrorCode"),
    "TicketHubError": ("errors", "TicketHubError"),
    "Session": ("session", "Session"),
    "Settings": ("settings", "Settings"),
    "init_session": ("session", "init_session"),
    "open_session": ("session", "open_session"),
}
_MODULES = {
    "batch",
    "callbacks",
    "checkin",
    "clock",
    "codes",
    "db",
    "doctor",
    "errors",
    "event_cancel",
    "events",
    "ledger",
    "money",
    "order_requests",
    "orders",
    "payments",
    "qr",
    "ratelimit",
    "reconcile",
    "reports",
    "settings",
    "ticket_print",
    "tickets",
    "tokens",
}


def __getattr__(name: str) -> Any:
    """Load on first use: a one-shot command pays only for the modules it touches."""
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(f".{module}", __name__), attr)
    if name in _MODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ErrorCode",
    "Session",
    "Settings",
    "TicketHubError",
    "clock",
    "db",
    "errors",
    "events",
    "init_session",
    "money",
    "open_session",
]
__version__ = "0.1.0"
