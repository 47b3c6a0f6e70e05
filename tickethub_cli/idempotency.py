"""Idempotency keys in the manner of Stripe, with brandur's recovery points and a lease.

A key row remembers the request's fingerprint, its order, how far the work got
(`recovery_point`), which worker holds it (`locked_by` = "host:pid", until `locked_until_us`)
and, once finished, the final outcome. A retry with the key either replays that outcome, is
told IN_PROGRESS while a live worker holds the lease, or resumes a dead worker's order.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import sqlite3
import unicodedata
from dataclasses import dataclass
from typing import Any

from . import clock
from . import validation as v
from .errors import invalid

MAX_KEY = 255  # the HTTP Idempotency-Key's bound too (1-255 printable ASCII there)
LEASE_US = 30_000_000  # a worker's lease: at most 30 s without a sign of life
_HOST = socket.gethostname()


def worker_id() -> str:
    return f"{_HOST}:{os.getpid()}"


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


def _record(row: sqlite3.Row | None) -> KeyRecord | None:
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


def get(conn: sqlite3.Connection, key: str) -> KeyRecord | None:
    return _record(
        conn.execute(f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
    )


def for_order(conn: sqlite3.Connection, order_id: int) -> KeyRecord | None:
    """The key of an order, by the order's own column (the key's primary key: no scan)."""
    return _record(
        conn.execute(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE key ="
            " (SELECT idempotency_key FROM orders WHERE id = ?)",
            (order_id,),
        ).fetchone()
    )


def insert(conn: sqlite3.Connection, key: str, fp: str, order_id: int, *, finished: bool) -> None:
    now_us, now = clock.now_us(), clock.now_text()
    locked_by, until = (None, None) if finished else (worker_id(), now_us + LEASE_US)
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


def holder_alive(rec: KeyRecord, now_us: int) -> bool:
    """Is another worker still working on this key? Ours (same process) never blocks us."""
    if rec.locked_by is None or rec.locked_until_us is None or rec.locked_until_us <= now_us:
        return False
    if rec.locked_by == worker_id():
        return False
    host, _, pid = rec.locked_by.rpartition(":")
    if host == _HOST and pid.isdigit():
        return _pid_alive(int(pid))
    return True  # another host: trust its lease until it runs out


def claim(conn: sqlite3.Connection, key: str, point: str = "reserved") -> None:
    now_us = clock.now_us()
    conn.execute(
        "UPDATE idempotency_keys SET recovery_point = ?, locked_by = ?, locked_until_us = ?,"
        " last_seen_us = ?, updated_at = ? WHERE key = ?",
        (point, worker_id(), now_us + LEASE_US, now_us, clock.now_text(), key),
    )


def release(conn: sqlite3.Connection, key: str) -> None:
    """Let go of the lease without finishing (outcome unknown: a retry may resume at once)."""
    conn.execute(
        "UPDATE idempotency_keys SET locked_by = NULL, locked_until_us = NULL,"
        " last_seen_us = ?, updated_at = ? WHERE key = ?",
        (clock.now_us(), clock.now_text(), key),
    )


def finish(
    conn: sqlite3.Connection, key: str, code: str | None = None, message: str | None = None
) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET recovery_point = 'finished', locked_by = NULL,"
        " locked_until_us = NULL, result_code = ?, result_message = ?, last_seen_us = ?,"
        " updated_at = ? WHERE key = ?",
        (code, message, clock.now_us(), clock.now_text(), key),
    )
