"""`tickethub serve` as a real uvicorn process (and two worker processes on one database),
on SQLite and on PostgreSQL: concurrent buyers for the last seats, concurrent scans of one
code, concurrent retries of one key, a graceful SIGTERM, kill -9 followed by `reconcile`,
and a password in a PostgreSQL URL that never leaves the server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from support import OK_CARD, WriteLock, count, healthy, proc, raw_query, seed, tickethub_exe

import tickethub_cli as th
from tickethub_cli import tokens


def _try(call):
    try:
        return call()
    except httpx.HTTPError:
        return None


class Server:
    """`tickethub serve --port 0` in its own process; ready once it printed its address."""

    def __init__(
        self, db: str, *, workers: int = 1, env: dict[str, str] | None = None, stderr=None
    ):
        self.proc = subprocess.Popen(
            [tickethub_exe(), "--db", db, "serve", "--port", "0", "--workers", str(workers)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until ready (or the process ended)
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def shop(make_db):
    db = make_db("box")
    ids = seed(db, capacity=10)
    s = th.open_session(db, operator="tester")
    secrets = {r: tokens.create_token(s, role=r)[1] for r in ("box-office", "gate")}
    s.close()
    return db, ids, secrets


def _together(n: int, fn):
    """Run fn(i) in n threads released at the same instant; their results in order."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def _purchase(url, secret, key, type_id, qty=1, pay="cash", card=None, client=None):
    body = {"items": [{"ticket_type_id": type_id, "quantity": qty}], "pay": pay}
    if card:
        body["card"] = card
    c = client or httpx
    return c.post(
        f"{url}/tickets/purchase",
        json=body,
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": key},
        timeout=60,
    )


def test_24_clients_for_the_last_10_seats_two_workers(shop):
    db, ids, secrets = shop
    server = Server(db, workers=2)
    try:
        answers = _together(
            24, lambda i: _purchase(server.url, secrets["box-office"], f"seat-{i}", ids["ga"])
        )
    finally:
        assert server.stop() == 0
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 10, 409: 14}, statuses
    assert all(a.json()["error"]["code"] == "SOLD_OUT" for a in answers if a.status_code == 409)
    assert count(db, "SELECT sold FROM ticket_types WHERE id = ?", ids["ga"]) == 10
    assert count(db, "SELECT count(*) FROM tickets WHERE ticket_type_id = ?", ids["ga"]) == 10
    healthy(db)


def test_8_clients_scanning_one_code_admit_it_once(shop):
    db, ids, secrets = shop
    server = Server(db, workers=2)
    try:
        sold = _purchase(server.url, secrets["box-office"], "door", ids["ga"])
        code = sold.json()["order"]["tickets"][0]["code"]
        answers = _together(
            8,
            lambda i: httpx.post(
                f"{server.url}/tickets/validate",
                json={"code": code, "event_id": ids["event"], "gate": f"g{i}"},
                headers={"Authorization": f"Bearer {secrets['gate']}"},
                timeout=60,
            ),
        )
    finally:
        assert server.stop() == 0
    assert {a.status_code for a in answers} == {200}
    results = Counter(a.json()["result"] for a in answers)
    assert results == {"ADMITTED": 1, "ALREADY_USED": 7}, results
    assert count(db, "SELECT count(*) FROM scans WHERE result = 'ADMITTED'") == 1


def test_16_clients_retrying_one_key_make_one_order_one_charge(shop):
    db, ids, secrets = shop
    server = Server(db, workers=2)

    def retry_until_answered(i):
        with httpx.Client() as client:
            while True:
                out = _purchase(
                    server.url,
                    secrets["box-office"],
                    "one-key",
                    ids["ga"],
                    qty=2,
                    pay="card",
                    card=OK_CARD,
                    client=client,
                )
                if out.status_code != 409:
                    return out
                assert out.json()["error"]["code"] == "IN_PROGRESS"
                assert out.headers["Retry-After"] == "1"

    try:
        answers = _together(16, retry_until_answered)
    finally:
        assert server.stop() == 0
    assert {a.status_code for a in answers} == {201}
    order_ids = {a.json()["order"]["id"] for a in answers}
    assert len(order_ids) == 1
    assert count(db, "SELECT count(*) FROM orders") == 1
    assert count(db, "SELECT count(*) FROM mockpay_charges") == 1
    assert count(db, "SELECT count(*) FROM payments") == 1
    fresh = [a for a in answers if "Idempotent-Replayed" not in a.headers]
    assert len(fresh) == 1
    stored = fresh[0].content.replace(b'"replayed":false}', b'"replayed":true}')
    assert all(a.content == stored for a in answers if a is not fresh[0])
    healthy(db)


def test_sigterm_finishes_the_request_in_flight_and_exits_0(shop):
    db, ids, secrets = shop
    server = Server(db, env={"TICKETHUB_BUSY_TIMEOUT": "60"})
    locker = WriteLock(db).hold()  # the server's write waits for this lock
    result: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: result.append(
            _purchase(server.url, secrets["box-office"], "drain", ids["ga"])
        )
    )
    sender.start()
    with httpx.Client() as probe:  # wait until the server holds that request
        while probe.get(f"{server.url}/healthz").json()["in_flight"] < 2:
            pass
    server.proc.send_signal(signal.SIGTERM)
    while True:  # it stops accepting new connections while the request is still open
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        except OSError:
            break
    assert server.proc.poll() is None
    locker.release()
    sender.join(60)
    assert server.proc.wait(timeout=60) == 0
    assert result and result[0].status_code == 201
    assert count(db, "SELECT count(*) FROM orders WHERE status = 'PAID'") == 1


def test_kill_9_then_reconcile_every_order_final_and_every_2xx_present(make_db):
    db = make_db("box")
    ids = seed(db, capacity=100_000, max_per_order=10)
    s = th.open_session(db, operator="tester")
    secret = tokens.create_token(s, role="box-office")[1]
    s.close()
    server = Server(db)
    answered: list[int] = []
    lock = threading.Lock()
    enough = threading.Event()

    def buyer(i):  # buys until the server is gone: some requests are cut mid-flight
        n = 0
        with httpx.Client() as client:
            while True:
                n += 1
                try:
                    out = _purchase(
                        server.url,
                        secret,
                        f"k9-{i}-{n}",
                        ids["ga"],
                        pay="card",
                        card=OK_CARD,
                        client=client,
                    )
                except httpx.HTTPError:
                    return
                if out.status_code == 201:
                    with lock:
                        answered.append(out.json()["order"]["id"])
                        if len(answered) >= 40:
                            enough.set()

    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(buyer, i) for i in range(12)]
        enough.wait(120)
        server.proc.kill()  # kill -9 while the buyers are mid-request
        server.proc.wait()
        for f in futures:
            f.result()
    # and a server that dies (as kill -9 would) after charging, before recording: those
    # buyers never get an answer
    crashing = Server(db, env={"TICKETHUB_FAULT": "after_charge"})
    cut = _together(
        8,
        lambda i: _try(
            lambda: _purchase(crashing.url, secret, f"cut-{i}", ids["ga"], card=OK_CARD, pay="card")
        ),
    )
    assert crashing.proc.wait(timeout=60) == 137
    assert all(a is None for a in cut)
    assert count(db, "SELECT count(*) FROM orders WHERE status = 'PENDING'") >= 1
    fixed = proc(db, "reconcile", "--stale-after", "0")
    assert fixed.code == 0, fixed.stderr
    assert fixed.json["repaired"]
    statuses = dict(raw_query(db, "SELECT id, status FROM orders"))
    open_payments = count(
        db, "SELECT count(*) FROM payments WHERE status IN ('pending', 'unknown')"
    )
    assert open_payments == 0
    assert set(statuses.values()) <= {"PAID", "FAILED", "CANCELLED"}, Counter(statuses.values())
    assert all(statuses.get(oid) == "PAID" for oid in answered)
    healthy(db)


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tickethub_exe(), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_gate_and_validate_against_a_server_print_what_the_local_ones_do(shop):
    db, ids, secrets = shop
    server = Server(db)
    try:
        sold = _purchase(server.url, secrets["box-office"], "remote", ids["ga"], qty=2)
        first, second = (t["code"] for t in sold.json()["order"]["tickets"])
        remote = ("--json", "--server", server.url, "--token", secrets["gate"])
        admitted = _cli(*remote, "validate", first, "--event", str(ids["event"]), "-g", "n")
        assert admitted.returncode == 0, admitted.stderr
        again = _cli(*remote, "validate", first, "--event", str(ids["event"]))
        assert again.returncode == 10
        local = _cli("--db", db, "--json", "validate", first, "--event", str(ids["event"]))
        assert local.returncode == 10 and local.stdout == again.stdout
        scanned = _cli(
            *remote, "gate", "--event", str(ids["event"]), "-g", "n", stdin=f"{second}\njunk\n"
        )
        assert scanned.returncode == 0, scanned.stderr
        lines = [json.loads(x) for x in scanned.stdout.splitlines()]
        assert [x.get("result") for x in lines[:2]] == ["ADMITTED", "MALFORMED"]
        assert lines[2]["summary"]["admitted"] == 1 and lines[2]["summary"]["MALFORMED"] == 1
        wrong_token = _cli(
            "--json",
            "--server",
            server.url,
            "--token",
            "th_x",
            "validate",
            first,
            "--event",
            str(ids["event"]),
        )
        assert wrong_token.returncode == 2
        assert json.loads(wrong_token.stderr)["error"]["code"] == "UNAUTHORIZED"
        not_gate = _cli(*remote, "event", "list")
        assert not_gate.returncode == 2 and "gate" in not_gate.stderr
    finally:
        assert server.stop() == 0
    assert count(db, "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL") == 2


def _password_role(pg_server) -> tuple[str, str, str]:
    """A database owned by a new role that logs in with a password: (URL with the password,
    the password as written in the URL, as the server knows it). On the suite's own server
    the role must give it (scram); a server of TICKETHUB_TEST_PG_URL keeps its own rules."""
    import psycopg

    plain = "S3cret@pass/word"  # '@' and '/' are percent-encoded in the URL
    in_url = "S3cret%40pass%2Fword"
    url = pg_server.new_database()
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    role = f"{name}_pw"  # unique as the database is
    with psycopg.connect(pg_server.url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{plain}'")
        admin.execute(f'ALTER DATABASE "{name}" OWNER TO {role}')
        hba = admin.execute("SHOW hba_file").fetchone()[0]
        if not os.environ.get("TICKETHUB_TEST_PG_URL") and os.access(hba, os.W_OK):
            with open(hba, encoding="utf-8") as fh:
                rules = fh.read()
            with open(hba, "w", encoding="utf-8") as fh:
                fh.write(f"local all {role} scram-sha-256\n{rules}")
            admin.execute("SELECT pg_reload_conf()")
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{role}:{in_url}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), in_url, plain


def test_a_password_in_the_url_never_leaves_the_server(pg_server, tmp_path):
    """`--db postgresql://user:secret@…`: the password reaches libpq only. Not in the access
    log, not in an error body (busy, unreachable), not in /healthz, not on stderr."""
    url, in_url, plain = _password_role(pg_server)
    wrong = url.replace(in_url, "not-the-password")
    for args in (("init",), ("serve", "--port", "0")):
        refused = proc(wrong, *args)
        assert refused.code == 7 and refused.error["code"] == "DB_ERROR", refused.stderr
        assert "not-the-password" not in refused.stdout + refused.stderr
    made = proc(url, "init")  # it printed the URL as given, password and all
    assert made.code == 0 and made.json["db"].startswith("postgresql://"), made.stderr
    bodies = [made.stdout, made.stderr]
    ids = seed(url)
    with th.open_session(url, operator="tester") as s:
        secret = tokens.create_token(s, role="box-office")[1]
    log = open(tmp_path / "stderr.txt", "w+b")  # noqa: SIM115 - read after the server ends
    server = Server(url, env={"TICKETHUB_BUSY_TIMEOUT": "0.3"}, stderr=log)
    try:
        health = httpx.get(f"{server.url}/healthz")
        assert health.json()["backend"] == "postgresql"
        bodies.append(health.text)
        sold = _purchase(server.url, secret, "pw-1", ids["ga"])
        assert sold.status_code == 201, sold.text
        with WriteLock(url):
            busy = _purchase(server.url, secret, "pw-2", ids["ga"])
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "DB_BUSY"
        bodies.append(busy.text)
        raw_query(
            pg_server.url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE usename = ? AND pid <> pg_backend_pid()",
            urlsplit(url).username,
        )
        # every connection of the server cut (a PostgreSQL restart): the write in flight on
        # the old connection fails (DB_ERROR, nothing kept), the server then reconnects;
        # it used to answer 500 to every request until it was restarted
        cut = [_purchase(server.url, secret, "pw-3", ids["ga"]) for _ in range(2)]
        bodies += [c.text for c in cut]
        assert cut[0].status_code in (201, 500) and cut[1].status_code == 201, cut[1].text
        if cut[0].status_code == 500:
            assert cut[0].json()["error"]["code"] == "DB_ERROR"
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        assert server.stop() == 0
    log.seek(0)
    text = log.read().decode("utf-8", "replace") + "".join(bodies)
    assert '"route":"/tickets/purchase"' in text  # the access log was read
    for secret_text in (in_url, plain, "S3cret"):
        assert secret_text not in text
    assert count(url, "SELECT count(*) FROM orders") == 2
