"""Idempotency keys in the manner of Stripe, with brandur's recovery points and a lease.

A key row remembers the request's fingerprint, its order, how far the work got
(`recovery_point`), which unit of work holds it (`locked_by`, until `locked_until_us`) and,
once finished, the final outcome. A retry with the key either replays that outcome, is told
IN_PROGRESS while a live unit of work holds the lease, or resumes a dead one's order.

A lease names one unit of work, not one process: `host:pid:nonce` (a `Lease`). A server
runs many requests in one process, and a second request with a key the first is still
working on must wait, not resume it. Rows written by version 1 hold `host:pid`; they are
read as before (that process's lease).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import clock
from . import validation as v
from .db import Connection, Row
from .errors import invalid

if TYPE_CHECKING:
    from .session import Session

MAX_KEY = 255  # the HTTP Idempotency-Key's bound too (1-255 printable ASCII there)
LEASE_US = 30_000_000  # a worker's lease: at most 30 s without a sign of life
_HOST = socket.gethostname()
# The leases of the units of work running in this process right now. Process-wide on
# purpose: it describes this process's threads, which every session in it shares.
_LIVE: set[str] = set()


class Lease:
    """One unit of work's hold on the keys it claims, live while its `with` block runs.

    Its token is `host:pid:nonce`. Another process judges it as before by host and pid
    (same host and the process gone: resume at once; another host: trust the lease until it
    runs out); this process knows exactly which of its own units of work are still running,
    so a unit that ended mid-flow (an error after the charge) is resumed at once too."""

    __slots__ = ("token",)

    def __init__(self) -> None:
        self.token = f"{_HOST}:{os.getpid()}:{secrets.token_hex(8)}"

    def __enter__(self) -> Lease:
        _LIVE.add(self.token)
        return self

    def __exit__(self, *exc: object) -> None:
        _LIVE.discard(self.token)


def _holder(locked_by: str) -> tuple[str, int | None, bool]:
    """(host, pid, per-unit token?) of a lease: `host:pid:nonce`, or version 1's `host:pid`."""
    parts = locked_by.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1]), True
    host, _, pid = locked_by.rpartition(":")
    return host, int(pid) if pid.isdigit() else None, False


def generate_key() -> str:
    return "auto-" + secrets.token_hex(10)


def check_key(key: str) -> str:
    """The one rule for keys: Unicode NFC, surrounding whitespace stripped. "K1", "K1 " and
    the NFD spelling of a key are one key, so a retry that differs only in what a person
    cannot see replays instead of charging again."""
    if v.has_surrogate(key):
        raise invalid("idempotency key must be UTF-8 text")
    key = unicodedata.normalize("NFC", key).strip()
    if not key:
        raise invalid("idempotency key must not be empty")
    if len(key) > MAX_KEY:
        raise invalid(f"idempotency key is longer than {MAX_KEY} characters")
    if v.has_control(key):
        raise invalid("idempotency key must not contain control characters")
    return key


LEGACY_FINGERPRINT = "legacy"  # version 1 kept whole card numbers in it; the upgrade erased it


def same_request(rec: KeyRecord, fp: str) -> bool:
    """Does a retry carry the request its key was first used for? A key from before the
    upgrade cannot tell any more: it replays (or resumes), which never charges twice."""
    return rec.fingerprint in (fp, LEGACY_FINGERPRINT)


def fingerprint(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    key: str
    fingerprint: str
    order_id: int | None
    recovery_point: str
    locked_by: str | None
    locked_until_us: int | None
    last_seen_us: int
    result_code: str | None
    result_message: str | None

    @property
    def finished(self) -> bool:
        return self.recovery_point == "finished"


def _record(row: Row | None) -> KeyRecord | None:
    if row is None:
        return None
    return KeyRecord(
        row["key"],
        row["fingerprint"],
        row["order_id"],
        row["recovery_point"],
        row["locked_by"],
        row["locked_until_us"],
        row["last_seen_us"],
        row["result_code"],
        row["result_message"],
    )


_COLUMNS = (
    "key, fingerprint, order_id, recovery_point, locked_by, locked_until_us, last_seen_us,"
    " result_code, result_message"
)


def get(conn: Connection, key: str) -> KeyRecord | None:
    return _record(
        conn.execute(f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
    )


def for_order(conn: Connection, order_id: int) -> KeyRecord | None:
    """The key of an order, by the order's own column (the key's primary key: no scan)."""
    return _record(
        conn.execute(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key ="
            " (SELECT idempotency_key FROM orders WHERE id = ?)",
            (order_id,),
        ).fetchone()
    )


def insert(conn: Connection, key: str, fp: str, order_id: int, *, lease: Lease | None) -> None:
    """A new key: finished at once (no lease: a PENDING order to pay later), or held by
    `lease` while its purchase goes on."""
    now_us, now = clock.now_us(), clock.now_text()
    finished = lease is None
    locked_by, until = (None, None) if lease is None else (lease.token, now_us + LEASE_US)
    conn.execute(
        "INSERT INTO idempotency_keys (key, fingerprint, order_id, recovery_point, locked_by,"
        " locked_until_us, last_seen_us, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            fp,
            order_id,
            "finished" if finished else "reserved",
            locked_by,
            until,
            now_us,
            now,
            now,
        ),
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is gone for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def holder_alive(rec: KeyRecord, now_us: int, lease: Lease | None = None) -> bool:
    """Is another unit of work still working on this key? `lease` (the asker's own) never
    blocks it. In this process: exactly the units still running; on this host: while their
    process lives; elsewhere: until the lease runs out."""
    if rec.locked_by is None or rec.locked_until_us is None or rec.locked_until_us <= now_us:
        return False
    if lease is not None and rec.locked_by == lease.token:
        return False
    host, pid, per_unit = _holder(rec.locked_by)
    if host != _HOST or pid is None:
        return True  # another host: trust its lease until it runs out
    if pid == os.getpid():  # ours; a version-1 row with our pid was a process now gone
        return per_unit and rec.locked_by in _LIVE
    return _pid_alive(pid)


def claim(conn: Connection, key: str, lease: Lease, point: str = "reserved") -> None:
    """Take the key's lease for `lease`'s unit of work (the caller checked holder_alive)."""
    now_us = clock.now_us()
    conn.execute(
        "UPDATE idempotency_keys SET recovery_point = ?, locked_by = ?, locked_until_us = ?,"
        " last_seen_us = ?, updated_at = ? WHERE key = ?",
        (point, lease.token, now_us + LEASE_US, now_us, clock.now_text(), key),
    )


def release(conn: Connection, key: str) -> None:
    """Let go of the lease without finishing (outcome unknown: a retry may resume at once)."""
    conn.execute(
        "UPDATE idempotency_keys SET locked_by = NULL, locked_until_us = NULL,"
        " last_seen_us = ?, updated_at = ? WHERE key = ?",
        (clock.now_us(), clock.now_text(), key),
    )


def finish(conn: Connection, key: str, code: str | None = None, message: str | None = None) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET recovery_point = 'finished', locked_by = NULL,"
        " locked_until_us = NULL, result_code = ?, result_message = ?, last_seen_us = ?,"
        " updated_at = ? WHERE key = ?",
        (code, message, clock.now_us(), clock.now_text(), key),
    )


def stored_response(s: Session, key: str) -> tuple[str, int, bytes] | None:
    """The response a transport stored for a key (request hash, status, body), if any: what
    HTTP replays byte for byte."""
    row = s.conn.execute(
        "SELECT request_sha256, status, body FROM http_responses WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else (row[0], row[1], row[2].encode("utf-8"))


def store_response(s: Session, key: str, digest: str, status: int, body: bytes) -> None:
    """Keep a key's first response (inside the caller's unit of work); a later one is
    ignored, so every replay shows the first."""
    s.conn.execute(
        "INSERT INTO http_responses (key, request_sha256, status, body, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (key, digest, status, body.decode("utf-8"), clock.now_text()),
    )
