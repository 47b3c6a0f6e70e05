"""Admission at the gate: validate a code, admit it once, log every scan, undo a mistake.

Checks run in a fixed order: malformed, unknown, wrong event, void, already used, admit.
Admission is one conditional UPDATE inside BEGIN IMMEDIATE, so two gates scanning the same
code at the same instant admit it once. A failed scan never touches the real ticket.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from . import audit, clock, codes, inventory
from . import validation as v
from .db import transaction, translate, write_later
from .errors import ErrorCode, TicketHubError, invalid, not_found
from .session import Session

RESULTS = ("ADMITTED", "ALREADY_USED", "UNKNOWN", "WRONG_EVENT", "VOID", "MALFORMED")
REJECTIONS = tuple(r for r in RESULTS if r != "ADMITTED")
NOT_JUDGED = "ERROR"  # a gate scan the database could not judge (busy): scan it again
SHOWN_INPUT = 64  # what of an input we echo and store; the rest is only hashed
MAX_INPUT = 4096  # longer input is MALFORMED without being read further
_RETURNING = sqlite3.sqlite_version_info >= (3, 35)  # else: SELECT, then UPDATE
# judging a group's scans set-based (ScanSet) needs UPDATE … FROM (3.33) and json_each,
# built in since 3.38; older libraries judge each scan on its own (Gate.scan_in_transaction)
SET_BASED = sqlite3.sqlite_version_info >= (3, 38)
_LOOKUP = (  # all rows as ONE JSON text: sqlite3 hands the GIL over once per row it steps
    "SELECT coalesce(json_group_array(json_object('code', code, 'id', id, 'event_id', event_id,"
    " 'status', status, 'checked_in_at', checked_in_at, 'checked_in_gate', checked_in_gate)), '[]')"
    " FROM tickets WHERE code IN (SELECT value FROM json_each(?))"
)
_ADMIT_ALL = (  # [[ticket id, at, gate], …]: each ticket admitted at its own scan's time
    "UPDATE tickets SET checked_in_at = json_extract(j.value, '$[1]'),"
    " checked_in_gate = json_extract(j.value, '$[2]') FROM json_each(?) AS j"
    " WHERE tickets.id = json_extract(j.value, '$[0]') AND tickets.status = 'valid'"
    " AND tickets.checked_in_at IS NULL"
)
_INSERT_SCAN = (
    "INSERT INTO scans (at, at_us, event_id, gate, operator, input, input_sha256,"
    " ticket_id, result, dry_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class ScanResult:
    """One scan's outcome (a plain class: a gate builds thousands of them)."""

    __slots__ = (
        "code",
        "dry_run",
        "error",
        "event_id",
        "event_name",
        "first_used_at",
        "gate",
        "holder",
        "result",
        "ticket_id",
        "ticket_type",
    )

    def __init__(
        self,
        code: str,
        result: str,
        ticket_id: int | None = None,
        event_id: int | None = None,
        first_used_at: str | None = None,
        gate: str | None = None,
        dry_run: bool = False,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.result = result
        self.ticket_id = ticket_id
        self.event_id = event_id
        self.first_used_at = first_used_at
        self.gate = gate
        self.dry_run = dry_run
        self.error = error
        # filled by `describe` for a person looking at the gate, never on the hot path
        self.ticket_type: str | None = None
        self.holder: str | None = None
        self.event_name: str | None = None  # of the ticket's event (WRONG_EVENT: the other)

    @property
    def admitted(self) -> bool:
        return self.result == "ADMITTED"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "result": self.result,
            "ticket_id": self.ticket_id,
            "event_id": self.event_id,
            "first_used_at": self.first_used_at,
            "gate": self.gate,
        }
        if self.dry_run:
            body["dry_run"] = True
        if self.error is not None:
            body["error"] = self.error
        return body


def _shown(raw: str) -> str:
    """The input as we echo and store it: printable (no terminal escapes, no undecodable
    bytes, which SQLite and JSON could not even encode), bounded."""
    if len(raw) <= SHOWN_INPUT and raw.isprintable():  # every real scan: no copy
        return raw
    text = "".join(ch if ch.isprintable() else "\ufffd" for ch in raw[:SHOWN_INPUT])
    return text + ("…" if len(raw) > SHOWN_INPUT else "")


def _logged(raw: str, code: str) -> tuple[str, str | None]:
    """What the scan log keeps of an input: the canonical form (so the same mistyped or
    forged code matches across gates however it was typed), printable and bounded; plus a
    sha256 of the raw input whenever that text is not the whole input, so fraud checks can
    still match an input too long or too strange to store."""
    kept = _shown(code or raw)
    if kept in (code, raw):
        return kept, None
    import hashlib

    return kept, hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


_EVENT = "SELECT 1 FROM events WHERE id = ?"


def check_event(s: Session, event_id: object) -> int:
    eid = v.parse_id(event_id, "event")
    if s.conn.execute(_EVENT, (eid,)).fetchone() is None:
        raise not_found("event", eid)
    return eid


def event_query(event_id: int) -> tuple[str, tuple[Any, ...]]:
    """`check_event`'s read as a query giving one value (1: the event exists), for a
    ScanSet's facts; a Gate built with `event_known=True` then skips it."""
    return _EVENT, (event_id,)


def check_gate_name(gate: str | None) -> str | None:
    """A gate name is a label in the log: printable, bounded; empty means no gate."""
    if gate is None or gate == "":
        return None
    if not gate.isprintable():  # also bytes that are not UTF-8 (surrogates from argv)
        raise invalid("gate name must be printable text")
    return v.name(gate, "gate name")


class Gate:
    """One gate's scanner session: keeps the connection, one transaction per scan."""

    def __init__(
        self,
        s: Session,
        event_id: object,
        gate: str | None = None,
        *,
        dry_run: bool = False,
        event_known: bool = False,  # the caller read, in this transaction, that it exists
    ) -> None:
        self.s = s
        self.event_id = v.parse_id(event_id, "event") if event_known else check_event(s, event_id)
        self.gate = check_gate_name(gate)
        self.dry_run = dry_run

    def scan(self, raw: str) -> ScanResult:
        return self.scan_many([raw])[0]

    def scan_many(self, raws: list[str]) -> list[ScanResult]:
        """Judge scans that arrived together in one transaction (group commit): each answer
        is returned only after the commit, so every ADMITTED the caller prints is durable.
        A scanner typing one code at a time gets one transaction per scan."""
        results = []
        with transaction(self.s.conn) as c:
            for raw in raws:
                results.append(self._scan_one(c, raw))
        return results

    def scan_in_transaction(self, raw: str) -> ScanResult:
        """One scan inside a transaction the caller already holds (a group commit run by
        someone else, e.g. the HTTP server's writer); durable only once that commits."""
        return self._scan_one(self.s.conn, raw)

    def answer_many(self, raws: list[str]) -> list[ScanResult]:
        """Like scan_many, for the scanner loop, which must answer every line and go on: the
        transaction has already retried the write lock for the whole busy budget; if the
        database is still busy, each of these scans (none of them was written) is answered
        with a DB_BUSY error to scan again, instead of ending the gate."""
        try:
            return self.scan_many(raws)
        except TicketHubError as err:
            busy = err
        except sqlite3.OperationalError as exc:  # busy at COMMIT, after the same budget
            busy = translate(exc, self.s.conn)
        if busy.code is not ErrorCode.DB_BUSY:
            raise busy
        error = {"code": str(busy.code), "message": f"{busy.message}; scan again"}
        return [
            ScanResult(_shown(raw), NOT_JUDGED, event_id=self.event_id, gate=self.gate, error=error)
            for raw in raws
        ]

    def _scan_one(self, c: Any, raw: str) -> ScanResult:
        """Judge one input and log it, inside the caller's transaction."""
        now = clock.now_us()
        at = clock.text_of_us(now)
        code = code_of(raw)
        shown = _shown(raw)
        if not codes.is_well_formed(code):
            result = ScanResult(shown, "MALFORMED", gate=self.gate, dry_run=self.dry_run)
        else:
            result = self._admit(c, code, shown, at) or self._judge(c, code, shown, at)
        self._insert_scan(c, result, raw, code, now, at)
        if result.admitted and not self.dry_run:
            self._audit_admission(c, result, at)
        return result

    def scan_looked_up(self, found: ScanSet, raw: str, code: str, operator: str) -> ScanResult:
        """One scan of a group judged set-based (see ScanSet): the same checks in the same
        order as `_scan_one`, on the row `found` read for the whole group and updated by
        this group's own earlier admissions; the admission itself is written by
        `found.finish`, the scan-log and audit rows with the group's others."""
        now = clock.now_us()
        at = clock.text_of_us(now)
        shown = _shown(raw)
        if not codes.is_well_formed(code):
            result = ScanResult(shown, "MALFORMED", gate=self.gate, dry_run=self.dry_run)
        else:
            result = self._decide(found.rows.get(code), shown, at)
            if result.admitted and not self.dry_run:
                found.admit(code, at, self.gate)
        c = self.s.conn
        self._insert_scan(c, result, raw, code, now, at, operator)
        if result.admitted and not self.dry_run:
            self._audit_admission(c, result, at, operator)
        return result

    def _audit_admission(
        self, c: Any, result: ScanResult, at: str, operator: str | None = None
    ) -> None:
        """An admission changes a ticket's state, so it is in the append-only audit log
        like every other change (the scan log answers "what was scanned", this one "who
        changed what"); one INSERT, in the scan's own transaction."""
        audit.record(
            c,
            self.s.operator if operator is None else operator,
            "ticket",
            result.ticket_id,
            "checkin",
            data={"gate": self.gate, "event_id": self.event_id},
            at=at,
            group=self.s.group,
        )

    def _admit(self, c: Any, code: str, shown: str, at: str) -> ScanResult | None:
        """The common case in one statement: the conditional UPDATE admits a ticket only if
        it is known, of this event, valid and unused, i.e. exactly when every earlier check
        passes, so the check order is kept. None: not admitted, `_judge` says why."""
        if self.dry_run or not _RETURNING:
            return None
        rows = c.execute(
            "UPDATE tickets SET checked_in_at = ?, checked_in_gate = ?"
            " WHERE code = ? AND event_id = ? AND status = 'valid' AND checked_in_at IS NULL"
            " RETURNING id",
            (at, self.gate, code, self.event_id),
        ).fetchall()
        if not rows:
            return None
        return ScanResult(shown, "ADMITTED", rows[0][0], self.event_id, at, self.gate)

    def _judge(self, c: Any, code: str, shown: str, at: str) -> ScanResult:
        """Why a code was not admitted (or, in a dry run, whether it would be), in the fixed
        order: unknown, wrong event, void, already used."""
        row = c.execute(
            "SELECT id, event_id, status, checked_in_at, checked_in_gate"
            " FROM tickets WHERE code = ?",
            (code,),
        ).fetchone()
        return self._verdict(c, row, shown, at)

    def _verdict(self, c: Any, row: Any, shown: str, at: str) -> ScanResult:
        result = self._decide(row, shown, at)
        if not result.admitted or self.dry_run:
            return result
        admitted = c.execute(
            "UPDATE tickets SET checked_in_at = ?, checked_in_gate = ?"
            " WHERE id = ? AND status = 'valid' AND checked_in_at IS NULL",
            (at, self.gate, row["id"]),
        ).rowcount
        if admitted != 1:  # cannot happen under the write lock; never admit twice anyway
            raise TicketHubError(ErrorCode.INTERNAL, f"ticket {row['id']} changed under a lock")
        return result

    def _decide(self, row: Any, shown: str, at: str) -> ScanResult:
        """The verdict on a well-formed code's ticket row (None: no such ticket), in the
        fixed order: unknown, wrong event, void, already used, admitted (at `at`, which
        the caller then writes unless this is a dry run). Reads and writes nothing."""
        gate = self.gate
        if row is None:
            return ScanResult(shown, "UNKNOWN", gate=gate, dry_run=self.dry_run)
        base = {"ticket_id": row["id"], "event_id": row["event_id"], "dry_run": self.dry_run}
        if row["event_id"] != self.event_id:
            return ScanResult(shown, "WRONG_EVENT", gate=gate, **base)
        if row["status"] != "valid":
            return ScanResult(shown, "VOID", gate=gate, **base)
        if row["checked_in_at"] is not None:
            return ScanResult(
                shown,
                "ALREADY_USED",
                first_used_at=row["checked_in_at"],
                gate=row["checked_in_gate"],
                **base,
            )
        if self.dry_run:
            return ScanResult(shown, "ADMITTED", gate=gate, **base)
        return ScanResult(shown, "ADMITTED", first_used_at=at, gate=gate, **base)

    def _insert_scan(
        self,
        c: Any,
        result: ScanResult,
        raw: str,
        code: str,
        now_us: int,
        at: str,
        operator: str | None = None,
    ) -> None:
        kept, digest = _logged(raw, code)
        write_later(  # in a group commit: one executemany per group (HTTP writer)
            self.s.group,
            c,
            _INSERT_SCAN,
            (
                at,
                now_us,
                self.event_id,
                self.gate,
                self.s.operator if operator is None else operator,
                kept,
                digest,
                result.ticket_id,
                result.result,
                int(self.dry_run),
            ),
        )


def code_of(raw: str) -> str:
    """The canonical code of an input ("" for input too long to read: MALFORMED)."""
    return codes.canonical(raw) if len(raw) <= MAX_INPUT else ""


class ScanSet:
    """The tickets of a whole group of scans, read in ONE statement, and their admissions
    written in ONE, inside a group commit (store.writer) that holds the write lock: no other
    writer can change a ticket between the read and the commit, so each scan is judged in
    arrival order on the row read, as this group's own earlier admissions left it (the same
    code twice: ADMITTED, then ALREADY_USED with the first one's time and gate), by the
    checks `Gate._scan_one` makes, with the same answers. Per scan the writer then runs no
    statement of its own: per statement it hands the GIL to the event loop and back (and
    waits to get it back), so `facts`, queries giving one value each (e.g.
    tokens.live_query), are read in the same statement; their values are in `self.facts`."""

    __slots__ = ("admitted", "conn", "facts", "rows")

    def __init__(
        self, s: Session, codes_: list[str], facts: Sequence[tuple[str, Sequence[Any]]] = ()
    ) -> None:
        import json

        self.conn = conn = s.conn
        wanted = sorted({code for code in codes_ if codes.is_well_formed(code)})
        sql = "".join([f"SELECT ({_LOOKUP})", *(f", ({query})" for query, _ in facts)])
        params = [json.dumps(wanted)]
        for _, values in facts:
            params.extend(values)
        row = conn.execute(sql, params).fetchone()
        self.rows: dict[str, Any] = {r["code"]: r for r in json.loads(row[0])}
        self.facts = tuple(row[1:])
        self.admitted: list[tuple[int, str, str | None]] = []

    def admit(self, code: str, at: str, gate: str | None) -> None:
        """Mark a valid, unused ticket admitted by a scan of this group (written by finish)."""
        row = self.rows[code]
        self.admitted.append((row["id"], at, gate))
        row["checked_in_at"], row["checked_in_gate"] = at, gate

    def finish(self) -> None:
        """Write the group's admissions in one guarded UPDATE (each only if still valid and
        unused); a count short of them cannot happen under the write lock, and is an error
        that rolls the group back rather than admitting a ticket twice."""
        if not self.admitted:
            return
        import json

        done = self.conn.execute(_ADMIT_ALL, (json.dumps(self.admitted),)).rowcount
        if done != len(self.admitted):
            raise TicketHubError(
                ErrorCode.INTERNAL, f"{len(self.admitted) - done} tickets changed under a lock"
            )
        self.admitted = []


def validate(
    s: Session, raw: str, event_id: object, *, gate: str | None = None, dry_run: bool = False
) -> ScanResult:
    return Gate(s, event_id, gate, dry_run=dry_run).scan(raw)


def undo(s: Session, raw: str, event_id: object, *, reason: str | None = None) -> dict[str, Any]:
    """Revert a mistaken admission; audited with operator and reason."""
    eid = check_event(s, event_id)
    code = codes.canonical(raw[:MAX_INPUT])
    if not codes.is_well_formed(code):
        raise invalid(f"{_shown(raw)!r} is not a well-formed ticket code")
    why = v.optional_text(reason, "reason") or "undo of a mistaken admission"
    with transaction(s.conn) as c:
        row = c.execute(
            "SELECT id, event_id, ticket_type_id, status, checked_in_at, checked_in_gate"
            " FROM tickets WHERE code = ?",
            (code,),
        ).fetchone()
        if row is None or row["event_id"] != eid:
            raise not_found("ticket", f"{codes.pretty(code)} of event {eid}")
        if row["checked_in_at"] is None:
            raise TicketHubError(
                ErrorCode.INVALID_STATE, f"ticket {codes.pretty(code)} is not checked in"
            )
        c.execute(
            "UPDATE tickets SET checked_in_at = NULL, checked_in_gate = NULL WHERE id = ?",
            (row["id"],),
        )
        if row["status"] == "void":  # its order was cancelled: the seat was kept only
            inventory.unsell(c, row["ticket_type_id"], 1)  # because the person was inside
        audit.record(
            c,
            s.operator,
            "ticket",
            row["id"],
            "checkin_undo",
            reason=why,
            data={"was_checked_in_at": row["checked_in_at"], "gate": row["checked_in_gate"]},
        )
    return {
        "result": "UNDONE",
        "ticket_id": row["id"],
        "code": codes.pretty(code),
        "was_checked_in_at": row["checked_in_at"],
        "gate": row["checked_in_gate"],
    }


class Counters:
    """Running totals of a gate session."""

    def __init__(self) -> None:
        self.scanned = 0
        self.admitted = 0
        self.rejected = dict.fromkeys(REJECTIONS, 0)
        self.errors = 0  # lines answered with an error (not judged), part of `scanned`

    def add(self, result: ScanResult) -> None:
        self.scanned += 1
        if result.error is not None:
            self.errors += 1
        elif result.admitted:
            self.admitted += 1
        else:
            self.rejected[result.result] += 1

    def to_json(self) -> dict[str, Any]:
        body = {"scanned": self.scanned, "admitted": self.admitted, **self.rejected}
        if self.errors:
            body["errors"] = self.errors
        return body


DOUBLE_READ_SECONDS = 10  # the same code again this soon at the same gate: a double read


def event_label(s: Session, event_id: int) -> tuple[str, str]:
    """The event's name and IANA time zone, for a gate's header and the times it shows (one
    read at start, not per scan)."""
    row = s.conn.execute("SELECT name, timezone FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise not_found("event", event_id)
    return str(row[0]), str(row[1])


def describe(s: Session, results: list[ScanResult]) -> None:
    """Fill in the ticket type, the holder's name and the ticket's event name of scans that
    found a ticket: what a person at the gate reads. One read after the scans' commit, and
    only when a person is looking: the scan itself (and JSON Lines) never pays for it."""
    ids = sorted({r.ticket_id for r in results if r.ticket_id is not None})
    if not ids:
        return
    found: dict[int, Any] = {}
    for i in range(0, len(ids), 500):  # well below SQLite's bound on parameters
        part = ids[i : i + 500]
        rows = s.conn.execute(
            "SELECT t.id, tt.name AS type_name, o.name AS holder, e.name AS event_name"
            " FROM tickets t JOIN ticket_types tt ON tt.id = t.ticket_type_id"
            " JOIN orders o ON o.id = t.order_id JOIN events e ON e.id = t.event_id"
            f" WHERE t.id IN ({', '.join('?' * len(part))})",
            part,
        )
        found.update((row["id"], row) for row in rows)
    for r in results:
        row = found.get(r.ticket_id) if r.ticket_id is not None else None
        if row is not None:
            r.ticket_type, r.holder, r.event_name = (
                row["type_name"],
                row["holder"],
                row["event_name"],
            )


def seconds_since_first_use(result: ScanResult, now_us: int) -> float | None:
    """How long ago an ALREADY_USED ticket was admitted (never negative: gates' clocks may
    differ a little); None for any other result or an unreadable stored time."""
    if result.result != "ALREADY_USED" or result.first_used_at is None:
        return None
    from datetime import datetime

    try:
        first = datetime.fromisoformat(result.first_used_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, now_us / 1_000_000 - first.timestamp())


def is_double_read(result: ScanResult, gate: str | None, now_us: int) -> bool:
    """The same ticket read again within seconds at the gate that admitted it: the scanner
    read twice (or the holder presented it twice), not a second person at another door."""
    ago = seconds_since_first_use(result, now_us)
    return ago is not None and ago <= DOUBLE_READ_SECONDS and result.gate == gate
