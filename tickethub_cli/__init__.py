"""TicketHub: a command-line box office on one SQLite file.

The library does everything the CLI does::

    import tickethub_cli as th
    s, _, _ = th.init_session("box.db", operator="alice")
    event = th.events.create_event(s, name="Gig", starts_at="2027-06-01T20:00:00+02:00")
"""

from . import clock, db, errors, events, money
from .errors import ErrorCode, TicketHubError
from .session import Session, init_session, open_session

__all__ = [
    "ErrorCode",
    "Session",
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
