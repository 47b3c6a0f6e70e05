"""API tokens for `tickethub serve`: a role, optionally one event, and a secret shown once.

Only the sha256 of a secret is stored: the secret is 32 random bytes, so a hash cannot be
guessed back and needs no slow KDF. A presented secret is found by its hash (an indexed
lookup) and the stored hash is then compared in constant time. Revocation is read on every
request, so it takes effect on the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from . import audit, clock
from . import validation as v
from .db import Row, transaction
from .errors import invalid, not_found, ref
from .session import Session

ROLES = ("admin", "box-office", "gate", "viewer")
PREFIX = "th_"
_COLUMNS = "id, role, event_id, name, created_at, revoked_at"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _token_dict(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "role": row["role"],
        "event_id": row["event_id"],
        "name": row["name"],
        "created_at": row["created_at"],
        "revoked_at": row["revoked_at"],
    }


def create_token(
    s: Session, *, role: str, event_id: object | None = None, name: str | None = None
) -> tuple[dict[str, Any], str]:
    """A new token and its secret (the only time the secret exists outside the caller)."""
    role = str(role).strip().lower()
    if role not in ROLES:
        raise invalid(f"role must be one of {', '.join(ROLES)}")
    if event_id is not None and role != "gate":
        # only the gate routes check a token's event: a bound box-office or admin token
        # would still act on every other event's orders and tickets
        raise invalid(
            f"{ref('event')} binds gate tokens only (role {role} acts on every event)",
            field="event",
        )
    label = v.optional_text(name, "token name")
    secret = PREFIX + secrets.token_urlsafe(32)
    with transaction(s.conn) as c:
        eid = None
        if event_id is not None:
            eid = v.parse_id(event_id, "event")
            if c.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone() is None:
                raise not_found("event", eid)
        token_id = c.execute(
            "INSERT INTO api_tokens (role, event_id, name, secret_sha256, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (role, eid, label, _hash(secret), clock.now_text()),
        ).fetchone()[0]
        audit.record(
            c, s.operator, "token", token_id, "create", data={"role": role, "event_id": eid}
        )
        row = c.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    token = _token_dict(row)
    del token["revoked_at"]
    return token, secret


def list_tokens(s: Session) -> list[dict[str, Any]]:
    rows = s.conn.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY id").fetchall()
    return [_token_dict(r) for r in rows]


def revoke_token(s: Session, token_id: object) -> dict[str, Any]:
    """Revoke (idempotent: revoking a revoked token changes nothing and says so)."""
    tid = v.parse_id(token_id, "token")
    with transaction(s.conn) as c:
        row = c.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?", (tid,)).fetchone()
        if row is None:
            raise not_found("token", tid)
        if row["revoked_at"] is None:
            c.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (clock.now_text(), tid))
            audit.record(c, s.operator, "token", tid, "revoke")
        row = c.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE id = ?", (tid,)).fetchone()
    return _token_dict(row)


def authenticate(s: Session, secret: str) -> dict[str, Any] | None:
    """The live token a secret belongs to, or None (unknown, revoked or not even shaped like
    one). Reads only."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    digest = _hash(secret)
    row = s.conn.execute(
        "SELECT id, role, event_id, name, secret_sha256, revoked_at FROM api_tokens"
        " WHERE secret_sha256 = ?",
        (digest,),
    ).fetchone()
    if row is None or not hmac.compare_digest(row["secret_sha256"], digest):
        return None
    if row["revoked_at"] is not None:
        return None
    return {"id": row["id"], "role": row["role"], "event_id": row["event_id"], "name": row["name"]}


_LIVE = "SELECT revoked_at IS NULL FROM api_tokens WHERE id = ?"  # 1 live, 0 revoked, none


def is_live(s: Session, token_id: int) -> bool:
    """Not revoked (for a unit of work that checks its token in its own transaction)."""
    row = s.conn.execute(_LIVE, (token_id,)).fetchone()
    return row is not None and row[0] == 1


def live_query(token_id: int) -> tuple[str, tuple[Any, ...]]:
    """`is_live` as a query giving one value (1: live), for a caller that reads several
    facts in one statement (see checkin.ScanSet)."""
    return _LIVE, (token_id,)
