"""POST /tickets/validate judges a whole commit group set-based (routes.scan_group: one read
of every code's ticket with the token and event facts, one guarded UPDATE of the group's
admissions, the scan-log rows in one INSERT). Its answers, and everything it writes, must be
exactly those of judging each scan on its own in arrival order (routes.scan_one, the path
of an SQLite without json_each's UPDATE … FROM), whatever the group mixes."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest
from support import buy, seed

import tickethub_cli as th
from tickethub_cli import checkin, clock, codes, ratelimit, tokens
from tickethub_cli.errors import TicketHubError, invalid
from tickethub_cli.http import models as m
from tickethub_cli.http import routes
from tickethub_cli.store.writer import Gathered, Writer, run_units

NOW_US = 1_900_000_000_123_456  # one fixed instant: both paths stamp the same times


@pytest.fixture
def shop(tmp_path, monkeypatch):
    monkeypatch.setattr(clock, "now_us", lambda: NOW_US)
    path = str(tmp_path / "g.db")
    ids = seed(path)
    s = th.open_session(path, operator="tester")
    mine = [t["code"] for t in buy(s, [f"{ids['ga']}:4"]).order["tickets"]]
    other = buy(s, [f"{ids['other']}:1"]).order["tickets"][0]["code"]
    s.conn.execute("UPDATE tickets SET status = 'void' WHERE code = ?", (codes.canonical(mine[3]),))
    gate = {}
    for name in ("a", "b", "revoked"):
        token, _ = tokens.create_token(s, role="gate", name=name)
        gate[name] = token["id"]
    tokens.revoke_token(s, gate["revoked"])
    s.close()
    return {"db": path, "ids": ids, "mine": mine, "other": other, "gate": gate}


def _scan(code: str, event: int, gate: str | None = "north", dry_run: bool = False):
    return m.ValidateIn(code=code, event_id=event, gate=gate, dry_run=dry_run)


def _answer(out):
    """What the client is told: the result's JSON, a 429's wait, a 401, or an error."""
    if isinstance(out, checkin.ScanResult):
        return out.to_json()
    if isinstance(out, TicketHubError):
        return ("error", str(out.code), out.message)
    return ("wait", out) if isinstance(out, int) else out


def _dump(path: str) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("tickets", "scans", "audit_log", "token_misses")
        }
    finally:
        conn.close()


def _both(shop, tmp_path, items):
    """Run `items` ([(token id, ValidateIn)]) as one group both ways, each on its own copy
    of the database; return (set-based answers, one-by-one answers), having checked that
    both left the very same rows behind."""
    answers = {}
    for way in ("set", "one"):
        path = str(tmp_path / f"{way}.db")
        shutil.copy(shop["db"], path)
        s = th.open_session(path, operator="http")
        if way == "set":
            step = Gathered(routes.scan_group, [(f"token:{t}", (t, b)) for t, b in items])
            outcomes = run_units(s, [step])
        else:

            def unit(t, b):
                def run(session):
                    session.operator = f"token:{t}"
                    return routes.scan_one(session, t, b)

                return run

            outcomes = run_units(s, [unit(t, b) for t, b in items])
        s.close()
        answers[way] = [_answer(err if err is not None else out) for out, err in outcomes]
    assert _dump(str(tmp_path / "set.db")) == _dump(str(tmp_path / "one.db"))
    return answers["set"], answers["one"]


def test_the_same_code_twice_in_one_group_is_admitted_once(shop, tmp_path):
    a, event = shop["gate"]["a"], shop["ids"]["event"]
    code = shop["mine"][0]
    items = [
        (a, _scan(code, event)),
        (a, _scan(codes.pretty(code).lower(), event, gate="south")),  # as typed at a gate
        (a, _scan(code, event)),
    ]
    got, expected = _both(shop, tmp_path, items)
    assert got == expected
    assert [r["result"] for r in got] == ["ADMITTED", "ALREADY_USED", "ALREADY_USED"]
    first = got[0]["first_used_at"]
    assert first == clock.text_of_us(NOW_US)
    assert all(r["first_used_at"] == first and r["gate"] == "north" for r in got[1:])
    conn = sqlite3.connect(str(tmp_path / "set.db"))
    admitted = conn.execute(
        "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL"
    ).fetchone()[0]
    audits = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'checkin'").fetchone()[0]
    conn.close()
    assert (admitted, audits) == (1, 1)


def test_a_mixed_group_answers_exactly_as_scans_judged_one_by_one(shop, tmp_path):
    g, ids = shop["gate"], shop["ids"]
    event, mine = ids["event"], shop["mine"]
    unknown = codes.generate()
    items = [
        (g["a"], _scan(mine[0], event)),  # admitted
        (g["a"], _scan(unknown, event)),  # UNKNOWN (a miss)
        (g["b"], _scan(mine[0], event, gate=None)),  # ALREADY_USED, by another token
        (g["a"], _scan(shop["other"], event)),  # WRONG_EVENT
        (g["b"], _scan(mine[3], event)),  # VOID
        (g["a"], _scan("not a code", event)),  # MALFORMED (a miss)
        (g["a"], _scan("x" * 5000, event)),  # MALFORMED, too long to read
        (g["b"], _scan(mine[1], event, dry_run=True)),  # would admit, admits nothing
        (g["b"], _scan(mine[1], event)),  # admitted after the dry run
        (g["a"], _scan(mine[2], 999)),  # no such event: 404 for this scan alone
        (g["a"], _scan(mine[2], event, gate="\x1b[2J")),  # a bad gate name: 400
        (g["revoked"], _scan(mine[2], event)),  # revoked: 401, not judged
        (g["a"], _scan(shop["other"], ids["event2"])),  # the other event's gate admits it
        (g["b"], _scan(mine[2], event, gate="south")),  # admitted
    ]
    got, expected = _both(shop, tmp_path, items)
    assert got == expected
    results = [r["result"] if isinstance(r, dict) else r for r in got]
    assert results[:9] == [
        "ADMITTED",
        "UNKNOWN",
        "ALREADY_USED",
        "WRONG_EVENT",
        "VOID",
        "MALFORMED",
        "MALFORMED",
        "ADMITTED",
        "ADMITTED",
    ]
    assert got[7].get("dry_run") is True and got[7]["first_used_at"] is None
    assert got[9][:2] == ("error", "NOT_FOUND") and got[10][:2] == ("error", "INVALID_INPUT")
    assert got[11] is None
    assert results[12:] == ["ADMITTED", "ADMITTED"]


def test_rate_limit_counts_within_the_group_as_scans_one_by_one_do(shop, tmp_path):
    """A token that runs out of misses in the middle of a group is refused (429) from that
    scan on, valid codes included; another token in the same group is not."""
    g, event = shop["gate"], shop["ids"]["event"]
    conn = sqlite3.connect(shop["db"])
    conn.executemany(  # misses a little while ago, still in the window
        "INSERT INTO token_misses (token_id, at_us, kind) VALUES (?, ?, 'UNKNOWN')",
        [(g["a"], NOW_US - 1_000_000 - i) for i in range(ratelimit.LIMIT - 3)],
    )
    conn.commit()
    conn.close()
    items = [(g["a"], _scan(codes.generate(), event)) for _ in range(5)]
    items += [(g["a"], _scan(shop["mine"][0], event)), (g["b"], _scan(shop["mine"][1], event))]
    got, expected = _both(shop, tmp_path, items)
    assert got == expected
    assert [r["result"] for r in got[:3]] == ["UNKNOWN"] * 3
    assert got[3:6] == [("wait", 59)] * 3  # refused, the valid code too
    assert got[6]["result"] == "ADMITTED"


def test_the_writer_hands_each_gathered_job_its_own_answer(shop):
    """Gathered jobs of one round run as one call at the place of the first, among plain
    units; every caller gets its own answer, and a unit that fails sends the group into
    its replay, where each gathered job runs alone and is answered the same."""
    g, event, mine = shop["gate"], shop["ids"]["event"], shop["mine"]
    calls = []

    def judged(s, items):
        calls.append(len(items))
        return routes.scan_group(s, items)

    def fails(s):
        raise invalid("no")

    for failing in (False, True):
        calls.clear()
        writer = Writer(lambda: th.open_session(shop["db"], operator="w"))
        started, release = threading.Event(), threading.Event()

        def holds(s, started=started, release=release):
            started.set()  # the first round holds the writer until the rest have queued up
            release.wait(30)
            return "first"

        first = writer.unit(holds, "w")
        assert started.wait(30)
        futures = [
            writer.gather(judged, (g["a"], _scan(mine[0], event)), "token:a"),
            writer.unit(lambda s: "plain", "w"),
            writer.gather(judged, (g["a"], _scan(mine[0], event, gate="x")), "token:a"),
            writer.gather(judged, (g["a"], _scan(codes.generate(), event)), "token:a"),
        ]
        if failing:
            futures.append(writer.unit(fails, "w"))
        release.set()
        assert first.result(timeout=30) == "first"
        answers = [f.exception(timeout=30) or f.result() for f in futures]
        writer.close()
        assert answers[1] == "plain"
        scans = [answers[0], answers[2], answers[3]]
        expected = ["ALREADY_USED"] * 2 if failing else ["ADMITTED", "ALREADY_USED"]
        assert [r.result for r in scans] == [*expected, "UNKNOWN"]
        assert scans[1].gate == "north"  # where it was admitted
        assert calls == ([3, 1, 1, 1] if failing else [3])  # then each alone in the replay
        if failing:
            assert isinstance(answers[4], TicketHubError)


def test_an_older_sqlite_judges_each_scan_on_its_own(shop, monkeypatch):
    """Without json_each's UPDATE … FROM (SQLite < 3.38) the route runs scan_one per scan."""
    from fastapi.testclient import TestClient

    from tickethub_cli.http.app import create_app

    monkeypatch.setattr(checkin, "SET_BASED", False)
    s = th.open_session(shop["db"], operator="tester")
    secret = tokens.create_token(s, role="gate")[1]
    s.close()
    seen = []
    real = routes.scan_one
    monkeypatch.setattr(routes, "scan_one", lambda *a: seen.append(1) or real(*a))
    with TestClient(create_app(shop["db"], access_log=None)) as client:
        body = {"code": shop["mine"][0], "event_id": shop["ids"]["event"]}
        auth = {"Authorization": f"Bearer {secret}"}
        first = client.post("/tickets/validate", json=body, headers=auth).json()
        again = client.post("/tickets/validate", json=body, headers=auth).json()
    assert (first["result"], again["result"]) == ("ADMITTED", "ALREADY_USED")
    assert len(seen) == 2
