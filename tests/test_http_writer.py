"""The group-commit writer behind `tickethub serve` (tickethub_cli/store/writer.py): units
queued together share one BEGIN IMMEDIATE and one commit, each in its own savepoint (a unit
that fails is undone alone), and nobody is answered before that commit."""

from __future__ import annotations

import pytest
from support import WriteLock, count, seed

import tickethub_cli as th
from tickethub_cli import audit
from tickethub_cli.errors import ErrorCode, TicketHubError, invalid
from tickethub_cli.store.writer import Writer, run_units


@pytest.fixture
def db(make_db):
    path = make_db("w")
    seed(path)
    return path


def _note(n: int):
    def unit(s):
        audit.record(s.conn, s.operator, "test", n, "note")
        return n

    return unit


def test_units_queued_together_share_one_commit(db):
    writer = Writer(lambda: th.open_session(db, operator="w"))
    locker = WriteLock(db).hold()  # the writer's first round waits; the rest queue up
    futures = [writer.unit(_note(i), f"op{i}") for i in range(50)]
    assert not any(f.done() for f in futures)  # nothing answered before its commit
    locker.release()
    assert [f.result(timeout=30) for f in futures] == list(range(50))
    assert writer.commits <= 2
    writer.close()
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'test'") == 50
    operators = count(db, "SELECT count(DISTINCT operator) FROM audit_log WHERE entity = 'test'")
    assert operators == 50  # each unit acted as its own caller


def test_a_failing_unit_is_undone_alone(db):
    def fails(s):
        audit.record(s.conn, s.operator, "test", 99, "note")
        raise invalid("no")

    s = th.open_session(db, operator="w")
    results = run_units(s, [_note(1), fails, _note(2)])
    s.close()
    assert [r for r, _ in results] == [1, None, 2]
    assert isinstance(results[1][1], TicketHubError)
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'test'") == 2


def test_a_busy_group_tells_every_caller_and_keeps_nothing(db, monkeypatch):
    monkeypatch.setenv("TICKETHUB_BUSY_TIMEOUT", "0.2")
    writer = Writer(lambda: th.open_session(db, operator="w"))
    with WriteLock(db):
        futures = [writer.unit(_note(i), "w") for i in range(3)]
        errors = [f.exception(timeout=30) for f in futures]
    assert all(isinstance(e, TicketHubError) and e.code is ErrorCode.DB_BUSY for e in errors)
    writer.close()
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'test'") == 0


def test_asyncio_callers_of_one_round_are_answered_in_one_hop(db):
    import asyncio

    writer = Writer(lambda: th.open_session(db, operator="w"))
    hops = []

    async def main():
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def counted(fn, *args):
            hops.append(len(args[0]) if args else 0)
            return real(fn, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        locker = WriteLock(db).hold()  # the first round waits; the rest queue up
        futures = [writer.unit(_note(i), "w", loop) for i in range(40)]
        locker.release()
        return await asyncio.gather(*futures)

    assert asyncio.run(main()) == list(range(40))
    writer.close()
    assert sum(hops) == 40 and len(hops) == writer.commits <= 2  # one hop per commit


def test_units_of_one_group_share_its_facts_and_rate_limits_still_count(db):
    from tickethub_cli import ratelimit, tokens

    s = th.open_session(db, operator="w")
    _, secret = tokens.create_token(s, role="gate")
    token_id = tokens.authenticate(s, secret)["id"]
    seen = []

    def miss(session):
        seen.append(session.group is not None)
        now = 1_000_000_000_000
        if ratelimit.retry_after(session, token_id, now) is not None:
            return "REFUSED"
        ratelimit.record(session, token_id, "UNKNOWN", now)
        return "UNKNOWN"

    results = run_units(s, [miss] * (ratelimit.LIMIT + 5))
    assert s.group is None and all(seen)
    outcomes = [r for r, _ in results]
    assert outcomes == ["UNKNOWN"] * ratelimit.LIMIT + ["REFUSED"] * 5  # counted in the group
    s.close()


def test_a_failing_unit_replays_the_group_and_facts_are_read_again(db):
    runs = []

    def remembers(s):
        runs.append(dict(s.group))
        s.group["fact"] = 1
        audit.record(s.conn, s.operator, "test", 1, "note")
        return 1

    def fails(s):
        raise invalid("no")

    s = th.open_session(db, operator="w")
    results = run_units(s, [remembers, fails])
    s.close()
    assert [r for r, _ in results] == [1, None]
    assert runs == [{}, {}]  # run again after the rollback, with nothing remembered
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'test'") == 1


def test_rows_written_later_keep_their_order_and_share_their_units_fate(db):
    """Scan-log and audit rows of a group leave as a few multi-row INSERTs before the
    commit (db.write_later): every row of a unit that succeeded is kept, in order, with
    its unit's operator; the rows of a unit that failed are undone with it."""

    def later(n: int, fail: bool = False):
        def unit(s):
            s.operator = f"op{n}"
            audit.record(s.conn, s.operator, "test", n, "note", group=s.group)
            if fail:
                raise invalid("no")
            return n

        return unit

    s = th.open_session(db, operator="w")
    ok = run_units(s, [later(i) for i in range(70)])  # 64 + 4 + 1 + 1 rows
    assert [r for r, _ in ok] == list(range(70))
    mixed = run_units(s, [later(100), later(101, fail=True), later(102)])
    assert [r for r, _ in mixed] == [100, None, 102]
    assert s.group is None
    rows = s.conn.execute(
        "SELECT entity_id, operator FROM audit_log WHERE entity = 'test' ORDER BY id"
    ).fetchall()
    s.close()
    assert [tuple(r) for r in rows] == [(i, f"op{i}") for i in [*range(70), 100, 102]]


def test_a_statement_the_database_refuses_undoes_its_unit_alone(db):
    """On PostgreSQL a failed statement aborts the whole transaction: the group must get
    back to its savepoint (not continue in the aborted transaction) so the other units of
    the group still commit."""

    def refused(s):
        audit.record(s.conn, s.operator, "test", 99, "note")
        s.conn.execute("INSERT INTO api_tokens (role) VALUES (?)", ("no-such-role",))
        return 99

    s = th.open_session(db, operator="w")
    results = run_units(s, [_note(1), refused, _note(2)])
    again = run_units(s, [_note(3)])  # the session is usable afterwards
    s.close()
    assert [r for r, _ in results] == [1, None, 2] and again == [(3, None)]
    assert results[1][1] is not None
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'test'") == 3
