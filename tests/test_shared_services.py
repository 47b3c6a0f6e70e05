"""Services shared between requests in one process (the prerequisites of `serve`): each
unit of work holds its own idempotency lease, settings travel with the session, errors
carry codes and fields that each transport maps, and no transport touches the connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest
from support import OK_CARD, WriteLock, count, healthy, raw_execute, seed

import tickethub_cli as th
from tickethub_cli import orders
from tickethub_cli.errors import ErrorCode, TicketHubError


@pytest.fixture
def shop(make_db):
    db = make_db("shop")
    return db, seed(db)


def _card_request(ids: dict[str, int], key: str) -> orders.OrderRequest:
    return orders.OrderRequest.parse(
        items=[f"{ids['ga']}:1"], pay="card", card=OK_CARD, idempotency_key=key
    )


# ------------------------------------------------------------------ one lease per unit of work


def test_a_key_in_flight_in_this_process_is_in_progress_for_another_unit_of_work(shop):
    """Two requests in one server process with one key: the second used to count as the
    same worker (`host:pid`) and resume the order the first was still charging."""
    db, ids = shop
    entered, go = threading.Event(), threading.Event()
    done: dict[str, Any] = {}

    def first_request() -> None:
        s = th.open_session(db, operator="web-1")
        real = s.provider.charge

        def slow_charge(*args: Any, **kw: Any) -> Any:
            entered.set()
            assert go.wait(30)
            return real(*args, **kw)

        s.provider.charge = slow_charge  # type: ignore[method-assign]
        try:
            done["result"] = orders.purchase(s, _card_request(ids, "K-shared"))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            done["error"] = exc
        finally:
            s.close()

    worker = threading.Thread(target=first_request)
    worker.start()
    try:
        assert entered.wait(30)
        second = th.open_session(db, operator="web-2")
        try:
            with pytest.raises(TicketHubError) as busy:
                orders.purchase(second, _card_request(ids, "K-shared"))
        finally:
            second.close()
    finally:
        go.set()
        worker.join(30)
    assert busy.value.code == ErrorCode.IN_PROGRESS, busy.value
    assert "error" not in done, done
    assert done["result"].order["status"] == "PAID"
    assert count(db, "SELECT count(*) FROM payments") == 1  # never a second attempt
    again = th.open_session(db)
    try:
        replay = orders.purchase(again, _card_request(ids, "K-shared"))
    finally:
        again.close()
    assert replay.replayed and replay.order["id"] == done["result"].order["id"]
    healthy(db)


def test_a_unit_of_work_that_ended_mid_flow_is_resumed_at_once_in_the_same_process(shop):
    """A request that failed after the charge (its lease still in the row) is over: a retry
    in the same process resumes at once, as after its process died, and charges nothing new."""
    from tickethub_cli import faults

    db, ids = shop
    s = th.open_session(db)
    try:
        faults.arm("busy_after_charge")
        try:
            with pytest.raises(TicketHubError) as busy:
                orders.purchase(s, _card_request(ids, "K-mid"))
        finally:
            faults.arm("")
        assert busy.value.code == ErrorCode.DB_BUSY
        holder = count(db, "SELECT locked_by FROM idempotency_keys WHERE key = 'K-mid'")
        assert holder and holder.startswith(f"{socket.gethostname()}:{os.getpid()}:")
        again = orders.purchase(s, _card_request(ids, "K-mid"))
    finally:
        s.close()
    assert again.order["status"] == "PAID"
    assert count(db, "SELECT count(*) FROM mockpay_charges WHERE status = 'captured'") == 1
    healthy(db)


def _hold_key(db: str, key: str, holder: str, *, seconds: float = 30) -> None:
    """Leave `key` mid-flow (seats held, attempt open) with `holder` in its lease."""
    from tickethub_cli import clock

    raw_execute(
        db,
        "UPDATE idempotency_keys SET locked_by = ?, locked_until_us = ? WHERE key = ?",
        holder,
        clock.now_us() + int(seconds * 1_000_000),
        key,
    )


def _reserved(db: str, ids: dict[str, int], key: str) -> None:
    """A purchase whose process died right after reserving (a real process, killed)."""
    from support import proc

    args = ["purchase", "-i", f"{ids['ga']}:1", "--pay", "card", "--card", OK_CARD, "-k", key]
    assert proc(db, *args, env={"TICKETHUB_FAULT": "after_reserve"}).code == 137


@pytest.mark.parametrize(
    ("holder", "outcome"),
    [
        ("live-old", ErrorCode.IN_PROGRESS),  # `host:pid` of a live process (version 1 row)
        ("dead-old", "PAID"),  # `host:pid` of a process that is gone: resumed at once
        ("live-new", ErrorCode.IN_PROGRESS),  # `host:pid:token` of a live process
        ("dead-new", "PAID"),
        ("other-host", ErrorCode.IN_PROGRESS),  # another host: its lease is trusted
        ("other-host-old", ErrorCode.IN_PROGRESS),
    ],
)
def test_lease_holders_old_and_new_are_read_alike(shop, holder, outcome):
    db, ids = shop
    _reserved(db, ids, "K-lease")
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        token = {
            "live-old": f"{host}:{sleeper.pid}",
            "dead-old": f"{host}:{gone.pid}",
            "live-new": f"{host}:{sleeper.pid}:0a1b2c3d",
            "dead-new": f"{host}:{gone.pid}:0a1b2c3d",
            "other-host": f"not-{host}:{os.getpid()}:0a1b2c3d",
            "other-host-old": f"not-{host}:{os.getpid()}",
        }[holder]
        _hold_key(db, "K-lease", token)
        s = th.open_session(db)
        try:
            if isinstance(outcome, ErrorCode):
                with pytest.raises(TicketHubError) as err:
                    orders.purchase(s, _card_request(ids, "K-lease"))
                assert err.value.code == outcome
            else:
                assert orders.purchase(s, _card_request(ids, "K-lease")).order["status"] == outcome
        finally:
            s.close()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_expired_lease_of_another_host_is_resumed(shop):
    db, ids = shop
    _reserved(db, ids, "K-expired")
    _hold_key(db, "K-expired", f"not-{socket.gethostname()}:1:ff", seconds=-1)
    s = th.open_session(db)
    try:
        assert orders.purchase(s, _card_request(ids, "K-expired")).order["status"] == "PAID"
    finally:
        s.close()


# ------------------------------------------------------------------ settings, not process state

PACKAGE = os.path.join(os.path.dirname(th.__file__))


def _sources() -> list[tuple[str, str]]:
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as fh:
                    found.append((os.path.relpath(path, PACKAGE), fh.read()))
    return found


def test_only_settings_reads_the_environment():
    readers = [
        rel
        for rel, text in _sources()
        if any(word in text for word in ("os.environ", "getenv", "environ.get", "environb"))
    ]
    assert readers == ["settings.py"], readers


def test_no_module_keeps_the_current_database_in_a_global():
    from tickethub_cli import db

    assert not hasattr(db, "_current_path")


def test_two_sessions_in_one_process_keep_their_own_settings(make_db, monkeypatch):
    """Each session carries its own settings: the database its errors name and its busy
    budget, whatever another session opened later, or the environment, says."""
    import sqlite3

    from tickethub_cli import db
    from tickethub_cli.settings import Settings
    from tickethub_cli.store.url import display

    a, b = make_db("a"), make_db("b")
    seed(a)
    seed(b)
    first = th.open_session(Settings(db_path=a, busy_timeout_s=0.05), operator="one")
    second = th.open_session(Settings(db_path=b, busy_timeout_s=5), operator="two")
    monkeypatch.setenv("TICKETHUB_BUSY_TIMEOUT", "3600")  # read at start-up only
    with WriteLock(a), pytest.raises(TicketHubError) as busy, db.transaction(first.conn):
        pass
    assert busy.value.code == ErrorCode.DB_BUSY and "0.05 s" in busy.value.message
    if first.conn.dialect == "sqlite":
        lost = db.translate(sqlite3.OperationalError("disk I/O error"), first.conn)
        assert a in lost.message and b not in lost.message
    else:  # PostgreSQL names the database in the busy error itself
        assert display(a) in busy.value.message and display(b) not in busy.value.message
    assert (first.operator, second.operator) == ("one", "two")
    assert first.settings.db_path == a and second.settings.db_path == b
    first.close()
    second.close()


def test_the_webhook_secret_comes_from_the_session_settings(shop, monkeypatch):
    from tickethub_cli import callbacks
    from tickethub_cli.settings import Settings

    db, ids = shop
    monkeypatch.delenv("TICKETHUB_WEBHOOK_SECRET", raising=False)
    with th.open_session(Settings(db_path=db, webhook_secret="s3cret")) as s:
        oid = orders.create_order(
            s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
        ).order["id"]
        body = b'{"id": "cb1", "order_id": %d, "status": "failed", "amount_minor": 2000}' % oid
        order = callbacks.handle(s, body, callbacks.sign(body, "s3cret"))
    assert order["status"] == "FAILED"
    with th.open_session(db) as s, pytest.raises(TicketHubError) as missing:
        callbacks.handle(s, body, callbacks.sign(body, "s3cret"))
    assert missing.value.code == ErrorCode.INVALID_INPUT


def test_a_session_closes_twice_and_as_a_context(shop):
    db, _ = shop
    with th.open_session(db) as s:
        assert s.provider is not None
    s.close()


# ------------------------------------------------------------------ errors: codes and fields


def _string_constants(text: str) -> list[str]:
    """Every string literal of a module but its docstrings."""
    import ast

    tree = ast.parse(text)
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_no_domain_message_names_a_cli_flag():
    import re

    flag = re.compile(r"(^|[\s`'\"(])--[a-z]")
    named = {
        rel: hits
        for rel, text in _sources()
        if not rel.startswith(("cli", "http")) and rel != "render.py"  # transports spell flags
        for hits in [[c for c in _string_constants(text) if flag.search(c)]]
        if hits
    }
    assert named == {}, named


def test_exit_codes_live_in_the_cli_only():
    from tickethub_cli import checkin, errors
    from tickethub_cli.cli import errors as shown

    assert not hasattr(errors, "EXIT_CODES") and not hasattr(errors.TicketHubError, "exit_code")
    assert not hasattr(checkin.ScanResult, "exit_code")
    assert set(shown.EXIT_CODES) == set(ErrorCode)
    assert set(shown.RESULT_EXIT_CODES) == set(checkin.RESULTS)


def test_an_error_names_its_field_and_each_transport_spells_it():
    from tickethub_cli.cli import errors as shown

    with pytest.raises(TicketHubError) as missing:
        orders.OrderRequest.parse(items=["1:1"])
    err = missing.value
    assert (err.code, err.field) == (ErrorCode.INVALID_INPUT, "pay")
    assert err.message == "pay is required: card (with card NUMBER) or cash"
    assert shown.message(err) == "--pay is required: card (with --card NUMBER) or cash"
    assert err.to_dict(lambda f: f'"{f}"')["message"].startswith('"pay" is required')


def test_after_a_charge_the_error_carries_what_a_retry_needs_and_the_cli_its_hint(shop):
    from tickethub_cli import faults
    from tickethub_cli.cli import errors as shown

    db, ids = shop
    with th.open_session(db) as s:
        faults.arm("busy_after_charge")
        try:
            with pytest.raises(TicketHubError) as busy:
                orders.purchase(s, _card_request(ids, "K-hint"))
        finally:
            faults.arm("")
    err = busy.value
    assert err.details == {"idempotency_key": "K-hint", "payment_may_exist": True}
    assert err.order_id is not None and "--" not in (err.hint or "")
    cli_hint = shown.as_dict(err)["hint"]
    assert "--idempotency-key K-hint" in cli_hint
    assert f"`tickethub reconcile --order {err.order_id}`" in cli_hint


# ------------------------------------------------------------------ no transport touches conn


def test_no_transport_touches_the_connection():
    """Neither the CLI nor the HTTP routes touch a session's connection: they call services
    (the storage layer, store/, owns connections and transactions)."""
    import re

    touching = [
        rel
        for rel, text in _sources()
        if rel.startswith(("cli", "http")) and re.search(r"\.conn\b|sqlite3\.connect", text)
    ]
    assert touching == [], touching


def test_ticket_show_is_a_service(shop):
    from support import buy

    from tickethub_cli import tickets

    db, ids = shop
    with th.open_session(db) as s:
        code = buy(s, [f"{ids['ga']}:1"]).order["tickets"][0]["code"]
        assert tickets.show(s, code.lower())["code"] == code
        with pytest.raises(TicketHubError) as bad:
            tickets.show(s, "nope")
        assert (bad.value.code, bad.value.field) == (ErrorCode.INVALID_INPUT, "code")
        with pytest.raises(TicketHubError) as unknown:
            tickets.show(s, "K7QF-3M2A-98XC-TP4D-ZN6W-R2BE")
        assert unknown.value.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_INPUT)


# ------------------------------------------------------------------ state shared by threads


def test_the_time_text_cache_is_read_once_while_other_threads_replace_it(monkeypatch):
    """Requests on several threads stamp rows at once: the per-second prefix cache must be
    read once, or a thread could pair its second's check with another second's prefix."""
    from tickethub_cli import clock

    now = 1_800_000_000

    class Replaced(tuple):
        def __getitem__(self, i):  # another thread swaps the cache right after our check
            value = tuple.__getitem__(self, i)
            monkeypatch.setattr(clock, "_text_cache", (now + 1, "2027-01-15T08:00:01"))
            return value

    monkeypatch.setattr(
        clock, "_text_cache", Replaced((now, clock.fmt(clock.from_us(now * 10**6))[:-1]))
    )
    assert clock.text_of_us(now * 1_000_000 + 5) == clock.fmt(clock.from_us(now * 1_000_000 + 5))
