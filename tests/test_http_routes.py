"""`tickethub serve`, in process (FastAPI's TestClient): every route of HTTP_API.md and its
rules: tokens and roles (401/403 write nothing), the error → status table, Idempotency-Key
(replay byte-identical, mismatch, in flight, one key space with the CLI), the signed webhook
(timestamp tolerance, several v1, recorded refusals), 413, request ids and the access log,
and the per-token anti-enumeration limit."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient
from support import DECLINED_CARD, OK_CARD, WriteLock, cli, count, dump, healthy, seed

import tickethub_cli as th
from tickethub_cli import callbacks, clock, tokens
from tickethub_cli.db import transaction
from tickethub_cli.http.app import create_app

SECRET = "whsec_test"


@pytest.fixture
def api(make_db, backend, monkeypatch):
    """A seeded database, one token per role (+ a gate token bound to event 1), a client."""
    monkeypatch.setenv("TICKETHUB_WEBHOOK_SECRET", SECRET)
    db = make_db("box")
    ids = seed(db, capacity=10)
    s = th.open_session(db, operator="tester")
    secrets = {}
    for role in tokens.ROLES:
        secrets[role] = tokens.create_token(s, role=role, name=role)[1]
    secrets["gate1"] = tokens.create_token(s, role="gate", event_id=ids["event"])[1]
    s.close()
    log = io.StringIO()
    with TestClient(create_app(db, access_log=log), raise_server_exceptions=False) as client:
        yield Api(client, db, ids, secrets, log, backend)


class Api:
    def __init__(self, client, db, ids, secrets, log, backend):
        self.client, self.db, self.ids, self.secrets, self.log = client, db, ids, secrets, log
        self.backend = backend

    def call(self, method, path, role="admin", body=None, headers=None, **kw):
        h = dict(headers or {})
        if role is not None:
            h["Authorization"] = f"Bearer {self.secrets[role]}"
        if body is not None:
            kw["content"] = body if isinstance(body, bytes | str) else json.dumps(body)
            h.setdefault("content-type", "application/json")
        return self.client.request(method, path, headers=h, **kw)

    def buy(self, key, qty=1, pay="cash", card=None, role="box-office", type_key="ga"):
        body = {"items": [{"ticket_type_id": self.ids[type_key], "quantity": qty}], "pay": pay}
        if card:
            body["card"] = card
        return self.call("POST", "/tickets/purchase", role, body, headers={"Idempotency-Key": key})


def test_web_stack_is_loaded_by_serve_only(tmp_path):
    db = str(tmp_path / "b.db")
    seed(db)
    code = (
        "import sys\n"
        f"sys.argv = ['tickethub', '--db', {db!r}, '--json', 'event', 'list']\n"
        "from tickethub_cli.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'httpx')"
        " if m in sys.modules)\n"
        "sys.stderr.write('LOADED=' + ','.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert '"events"' in done.stdout
    assert done.stderr.strip().endswith("LOADED="), done.stderr


def test_health_and_openapi_need_no_token(api):
    health = api.client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {
        "ok": True,
        "backend": api.backend,
        "schema_version": 4,
        "in_flight": 1,
    }
    spec = api.client.get("/openapi.json").json()
    paths = {(p, meth.upper()) for p, ops in spec["paths"].items() for meth in ops}
    for route in [
        ("/events", "POST"),
        ("/events", "GET"),
        ("/events/{event_id}", "GET"),
        ("/events/{event_id}/ticket-types", "POST"),
        ("/ticket-types/{type_id}", "PATCH"),
        ("/tickets/purchase", "POST"),
        ("/orders", "POST"),
        ("/orders/{order_id}/pay", "POST"),
        ("/orders/{order_id}/cancel", "POST"),
        ("/orders/{order_id}", "GET"),
        ("/orders", "GET"),
        ("/tickets/validate", "POST"),
        ("/checkins/undo", "POST"),
        ("/tickets/{code}", "GET"),
        ("/events/{event_id}/report", "GET"),
        ("/payments/webhook", "POST"),
        ("/healthz", "GET"),
    ]:
        assert route in paths, route
    price = spec["components"]["schemas"]["TicketTypeIn"]["properties"]["price"]
    assert price["type"] == "string"


# ------------------------------------------------------------------------ tokens, roles


def test_token_cli_prints_secret_once_and_stores_a_hash(make_db):
    db = make_db("b")
    seed(db)
    out = cli(db, "token", "create", "--role", "gate", "--event", "1", "--name", "north")
    assert out.code == 0, out.stderr
    made = out.json
    assert made["secret"].startswith("th_") and len(made["secret"]) > 40
    assert set(made["token"]) == {"id", "role", "event_id", "name", "created_at"}
    assert made["token"]["role"] == "gate" and made["token"]["event_id"] == 1
    assert made["secret"] not in dump(db)  # only its hash is kept
    listed = cli(db, "token", "list")
    assert made["secret"] not in listed.stdout and listed.json["tokens"][0]["name"] == "north"
    assert cli(db, "token", "create", "--role", "root").code == 2
    assert cli(db, "token", "create", "--role", "gate", "--event", "99").code == 3
    revoked = cli(db, "token", "revoke", str(made["token"]["id"]))
    assert revoked.code == 0 and revoked.json["token"]["revoked_at"]
    assert count(db, "SELECT count(*) FROM audit_log WHERE entity = 'token'") == 2


def test_401_and_403_write_nothing(api):
    before = dump(api.db)
    body = {"name": "X", "starts_at": "2027-01-01T20:00:00Z"}
    missing = api.call("POST", "/events", None, body)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "UNAUTHORIZED"
    wrong = api.call("POST", "/events", None, body, headers={"Authorization": "Bearer th_nope"})
    assert wrong.status_code == 401
    basic = api.call("POST", "/events", None, body, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401
    for role in ("box-office", "gate", "viewer"):
        refused = api.call("POST", "/events", role, body)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    assert api.buy("k-viewer", role="viewer").status_code == 403
    assert api.buy("k-gate", role="gate").status_code == 403
    scan = {"code": "AAAA", "event_id": api.ids["event2"]}
    assert api.call("POST", "/tickets/validate", "gate1", scan).status_code == 403
    assert api.call("POST", "/tickets/validate", "viewer", scan).status_code == 403
    assert api.call("GET", "/orders", "viewer").status_code == 403
    assert api.call("GET", f"/events/{api.ids['event2']}/report", "gate1").status_code == 403
    assert dump(api.db) == before


def test_revoked_token_refused_on_next_request(api):
    assert api.call("GET", "/events", "viewer").status_code == 200
    s = th.open_session(api.db, operator="tester")
    viewer_id = next(t["id"] for t in tokens.list_tokens(s) if t["name"] == "viewer")
    tokens.revoke_token(s, viewer_id)
    s.close()
    assert api.call("GET", "/events", "viewer").status_code == 401
    scan = {"code": "AAAA", "event_id": api.ids["event"]}
    assert api.call("POST", "/tickets/validate", "gate", scan).status_code == 200
    s = th.open_session(api.db, operator="tester")
    gate_id = next(t["id"] for t in tokens.list_tokens(s) if t["name"] == "gate")
    tokens.revoke_token(s, gate_id)
    s.close()
    before = dump(api.db)
    refused = api.call("POST", "/tickets/validate", "gate", scan)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
    assert dump(api.db) == before


def test_only_gate_tokens_are_bound_to_an_event(api):
    """A box-office, admin or viewer token bound to one event was honoured on some routes
    only (GET /events/{id}, report) and could still sell, pay, cancel and look up orders and
    tickets of every other event: `--event` binds gate tokens, the only role it is checked
    for on every route, and is refused for the others (nothing written)."""
    before = dump(api.db)
    for role in ("box-office", "admin", "viewer"):
        out = cli(api.db, "token", "create", "--role", role, "--event", str(api.ids["event"]))
        assert out.code == 2 and out.error["code"] == "INVALID_INPUT", (role, out.stderr)
        assert "--event" in out.error["message"]
    assert dump(api.db) == before
    made = cli(api.db, "token", "create", "--role", "gate", "--event", str(api.ids["event"]))
    assert made.code == 0 and made.json["token"]["event_id"] == api.ids["event"]


def test_fast_path_refuses_what_the_routes_refuse(api):
    """The fast path's cache of known secrets skipped the scheme check: once a gate's
    secret had been seen, `Authorization: Basic <secret>` (or any word) was accepted on
    POST /tickets/validate, which every other route answers 401."""
    scan = {"code": "AAAA", "event_id": api.ids["event"]}
    assert api.call("POST", "/tickets/validate", "gate", scan).status_code == 200  # now cached
    before = dump(api.db)
    for scheme in ("Basic", "Token", "X"):
        header = {"Authorization": f"{scheme} {api.secrets['gate']}"}
        for kind in ("application/json", "text/plain"):  # fast path, then FastAPI's route
            out = api.call(
                "POST", "/tickets/validate", None, scan, headers={**header, "content-type": kind}
            )
            assert out.status_code == 401, (scheme, kind, out.text)
            assert out.json()["error"]["code"] == "UNAUTHORIZED"
    assert dump(api.db) == before


def test_no_token_is_401_even_with_a_broken_body(api):
    """FastAPI parses a JSON body before it runs the token dependency: a request without a
    valid token but with a broken body got 400 on every route but the two of the fast path
    (401 there). Missing or unknown token → 401 on every route, whatever the body."""
    before = dump(api.db)
    broken = (b"{not json", b'{"name":"\xff"}', b"[" * 5000 + b"]" * 5000)
    for path in ("/events", "/orders", "/orders/1/pay", "/checkins/undo", "/tickets/validate"):
        for body in broken:
            for auth in (None, "Bearer th_nope", "Basic eDp5"):
                headers = {"Authorization": auth} if auth else {}
                out = api.call("POST", path, None, body, headers=headers)
                assert out.status_code == 401, (path, body[:12], auth, out.text)
                assert out.json()["error"]["code"] == "UNAUTHORIZED"
    for body in broken:  # with a token: 400 INVALID_INPUT, as fast.py answers
        out = api.call("POST", "/events", "admin", body)
        assert out.status_code == 400 and out.json()["error"]["code"] == "INVALID_INPUT", body
    assert dump(api.db) == before


def test_roles_reach_their_routes(api):
    assert api.call("GET", "/events", "viewer").status_code == 200
    assert api.call("GET", f"/events/{api.ids['event']}/report", "viewer").status_code == 200
    assert api.call("GET", "/events", "box-office").status_code == 200
    assert api.call("GET", "/orders", "box-office").status_code == 200
    assert api.call("GET", "/orders", "admin").status_code == 200
    scan = {"code": "AAAA", "event_id": api.ids["event"]}
    assert api.call("POST", "/tickets/validate", "gate1", scan).status_code == 200
    assert api.call("POST", "/tickets/validate", "gate", scan).status_code == 200


# ------------------------------------------------------------------------ every route


def test_event_routes(api):
    made = api.call(
        "POST",
        "/events",
        body={"name": "Fest", "starts_at": "2027-08-01T18:00:00Z", "venue": "Park"},
    )
    assert made.status_code == 201, made.text
    event = made.json()["event"]
    assert event["name"] == "Fest" and event["venue"] == "Park" and event["currency"] == "EUR"
    tt = api.call(
        "POST",
        f"/events/{event['id']}/ticket-types",
        body={"name": "GA", "price": "25.50", "capacity": 100, "max_per_order": 4},
    )
    assert tt.status_code == 201, tt.text
    assert tt.json()["ticket_type"]["price_minor"] == 2550
    type_id = tt.json()["ticket_type"]["id"]
    patched = api.call("PATCH", f"/ticket-types/{type_id}", body={"capacity": 50, "price": "30"})
    assert patched.status_code == 200 and patched.json()["ticket_type"]["capacity"] == 50
    assert patched.json()["ticket_type"]["price_minor"] == 3000
    shown = api.call("GET", f"/events/{event['id']}", "viewer").json()["event"]
    assert [t["id"] for t in shown["ticket_types"]] == [type_id]
    listed = api.call("GET", "/events", "viewer").json()["events"]
    assert event["id"] in [e["id"] for e in listed]
    assert all("ticket_types" in e for e in listed)
    report = api.call("GET", f"/events/{event['id']}/report", "viewer")
    assert report.status_code == 200 and report.json()["totals"]["capacity"] == 50


def test_decimal_strings_only_and_other_400s(api):
    before = dump(api.db)
    path = f"/events/{api.ids['event']}/ticket-types"
    number = api.call("POST", path, body={"name": "N", "price": 25.5, "capacity": 1})
    assert number.status_code == 400 and number.json()["error"]["code"] == "INVALID_INPUT"
    assert number.json()["error"]["field"] == "price"
    assert (
        api.call("POST", path, body={"name": "N", "price": "abc", "capacity": 1}).status_code == 400
    )
    assert api.call("POST", path, body=b"{not json").status_code == 400
    extra = api.call("POST", path, body={"name": "N", "price": "1", "capacity": 1, "x": 1})
    assert extra.status_code == 400
    nothing = api.call("PATCH", f"/ticket-types/{api.ids['ga']}", body={})
    assert nothing.status_code == 400
    assert dump(api.db) == before


def test_not_found_and_conflicts(api):
    assert api.call("GET", "/events/999", "viewer").status_code == 404
    assert api.call("GET", "/events/abc", "viewer").status_code == 404
    assert api.call("GET", "/orders/999").json()["error"]["code"] == "NOT_FOUND"
    assert api.call("GET", "/nowhere").status_code == 404
    assert api.buy("k-most", qty=8).status_code == 201
    sold_out = api.buy("k-big", qty=3)
    assert sold_out.status_code == 409 and sold_out.json()["error"]["code"] == "SOLD_OUT"
    twin = api.call(
        "POST",
        f"/events/{api.ids['event']}/ticket-types",
        body={"name": "ga ", "price": "1", "capacity": 1},
    )
    assert twin.status_code == 409 and twin.json()["error"]["code"] == "INVALID_STATE"


def test_purchase_order_pay_cancel_show_list(api):
    sold = api.buy("k-card", qty=2, pay="card", card=OK_CARD)
    assert sold.status_code == 201, sold.text
    order = sold.json()["order"]
    assert order["status"] == "PAID" and sold.json()["replayed"] is False
    assert OK_CARD not in sold.text
    declined = api.buy("k-declined", pay="card", card=DECLINED_CARD)
    assert declined.status_code == 402
    err = declined.json()["error"]
    assert err["code"] == "PAYMENT_DECLINED" and isinstance(err["order_id"], int)
    reserved = api.call(
        "POST",
        "/orders",
        "box-office",
        {"items": [{"ticket_type_id": api.ids["vip"], "quantity": 1}], "email": "a@b.example"},
        headers={"Idempotency-Key": "k-create"},
    )
    assert reserved.status_code == 201 and reserved.json()["order"]["status"] == "PENDING"
    oid = reserved.json()["order"]["id"]
    paid = api.call("POST", f"/orders/{oid}/pay", "box-office", {"pay": "cash"})
    assert paid.status_code == 200 and paid.json()["order"]["status"] == "PAID"
    again = api.call("POST", f"/orders/{oid}/pay", "box-office", {"pay": "cash"})
    assert again.status_code == 409 and again.json()["error"]["order_id"] == oid
    shown = api.call("GET", f"/orders/{oid}", "box-office")
    assert shown.json()["order"]["id"] == oid
    page = api.call("GET", "/orders?status=PAID&limit=1", "box-office").json()
    assert page["total"] == 2 and len(page["orders"]) == 1 and page["next_cursor"]
    nxt = api.call("GET", f"/orders?status=PAID&limit=1&cursor={page['next_cursor']}", "box-office")
    assert nxt.json()["orders"][0]["id"] != page["orders"][0]["id"]
    assert api.call("GET", "/orders?limit=0", "box-office").status_code == 400
    assert api.call("GET", "/orders?limit=1001", "box-office").status_code == 400  # page it
    assert api.call("GET", "/orders?limit=1000", "box-office").status_code == 200
    assert api.call("GET", "/orders?status=nope", "box-office").status_code == 400
    cancelled = api.call("POST", f"/orders/{order['id']}/cancel", "box-office", {"reason": "ask"})
    assert cancelled.status_code == 200 and cancelled.json()["order"]["status"] == "CANCELLED"
    ticket = order["tickets"][0]["code"]
    got = api.call("GET", f"/tickets/{ticket}", "box-office")
    assert got.status_code == 200 and got.json()["ticket"]["status"] == "void"
    assert api.call("GET", "/tickets/not-a-code", "box-office").status_code == 400
    healthy(api.db)


def test_validate_and_undo(api):
    order = api.buy("k-door", qty=1).json()["order"]
    code = order["tickets"][0]["code"]
    eid = api.ids["event"]
    dry = api.call(
        "POST", "/tickets/validate", "gate1", {"code": code, "event_id": eid, "dry_run": True}
    )
    assert dry.status_code == 200 and dry.json()["result"] == "ADMITTED"
    first = api.call(
        "POST", "/tickets/validate", "gate1", {"code": code, "event_id": eid, "gate": "n"}
    )
    assert first.status_code == 200
    body = first.json()
    assert body["result"] == "ADMITTED" and body["ticket_id"] == order["tickets"][0]["id"]
    assert {"result", "ticket_id", "event_id", "first_used_at", "gate"} <= set(body)
    second = api.call("POST", "/tickets/validate", "gate1", {"code": code, "event_id": eid})
    assert second.status_code == 200 and second.json()["result"] == "ALREADY_USED"
    wrong = api.call(
        "POST", "/tickets/validate", "gate", {"code": code, "event_id": api.ids["event2"]}
    )
    assert wrong.json()["result"] == "WRONG_EVENT"
    undone = api.call("POST", "/checkins/undo", "gate1", {"code": code, "event_id": eid})
    assert undone.status_code == 200
    assert undone.json()["result"] == "UNDONE" and undone.json()["ticket_id"] == body["ticket_id"]
    not_in = api.call("POST", "/checkins/undo", "gate1", {"code": code, "event_id": eid})
    assert not_in.status_code == 409
    assert (
        api.call("POST", "/tickets/validate", "gate1", {"code": code, "event_id": 999}).status_code
        == 403
    )
    assert (
        api.call("POST", "/tickets/validate", "gate", {"code": code, "event_id": 999}).status_code
        == 404
    )
    ops = count(api.db, "SELECT count(*) FROM audit_log WHERE operator LIKE 'token:%'")
    assert ops >= 2  # the admission and the undo name the token that did them


# ------------------------------------------------------------------------ idempotency


def test_idempotency_key_required_and_checked(api):
    before = dump(api.db)
    body = {"items": [{"ticket_type_id": api.ids["ga"], "quantity": 1}], "pay": "cash"}
    missing = api.call("POST", "/tickets/purchase", "box-office", body)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["error"]["message"]
    for bad in ("x" * 256, "caf\u00e9".encode(), "tab\there", " "):
        out = api.call(
            "POST", "/tickets/purchase", "box-office", body, headers={"Idempotency-Key": bad}
        )
        assert out.status_code == 400, bad
    assert api.call("POST", "/orders", "box-office", {"items": body["items"]}).status_code == 400
    assert dump(api.db) == before
    assert api.buy("k" * 255).status_code == 201


def test_replay_is_byte_identical_and_mismatch_is_422(api):
    first = api.buy("k-replay", qty=2)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    orders_before = count(api.db, "SELECT count(*) FROM orders")
    again = api.buy("k-replay", qty=2)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content.replace(b'"replayed":false}', b'"replayed":true}')
    # the order changed since (cancelled): the replay is still the stored answer
    oid = first.json()["order"]["id"]
    api.call("POST", f"/orders/{oid}/cancel", "box-office", {})
    assert api.buy("k-replay", qty=2).content == again.content
    other = api.buy("k-replay", qty=1)
    assert other.status_code == 422 and other.json()["error"]["code"] == "IDEMPOTENCY_MISMATCH"
    path = api.call(
        "POST",
        "/orders",
        "box-office",
        {"items": [{"ticket_type_id": api.ids["ga"], "quantity": 2}]},
        headers={"Idempotency-Key": "k-replay"},
    )
    assert path.status_code == 422
    assert count(api.db, "SELECT count(*) FROM orders") == orders_before
    declined = api.buy("k-no", pay="card", card=DECLINED_CARD)
    declined_again = api.buy("k-no", pay="card", card=DECLINED_CARD)
    assert declined.status_code == declined_again.status_code == 402
    assert declined_again.content == declined.content.replace(
        b'"replayed":false}', b'"replayed":true}'
    )
    assert count(api.db, "SELECT count(*) FROM payments WHERE method = 'card'") == 1


def test_key_space_shared_with_cli(api):
    made = cli(api.db, "purchase", "-i", f"{api.ids['ga']}:1", "--pay", "cash", "-k", "shared-1")
    assert made.code == 0, made.stderr
    over_http = api.buy("shared-1", qty=1)
    assert over_http.status_code == 201 and over_http.headers["Idempotent-Replayed"] == "true"
    assert over_http.json()["order"]["id"] == made.json["order"]["id"]
    assert api.buy("shared-1", qty=3).status_code == 422
    http_first = api.buy("shared-2", qty=1)
    by_cli = cli(api.db, "purchase", "-i", f"{api.ids['ga']}:1", "--pay", "cash", "-k", "shared-2")
    assert by_cli.json["replayed"] is True
    assert by_cli.json["order"]["id"] == http_first.json()["order"]["id"]
    assert count(api.db, "SELECT count(*) FROM orders") == 2


def test_in_flight_key_is_409_with_retry_after(api):
    backend = api.client.app.state.backend
    backend.in_flight.add("k-busy")
    before = dump(api.db)
    busy = api.buy("k-busy")
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert busy.json()["error"]["code"] == "IN_PROGRESS"
    assert dump(api.db) == before
    backend.in_flight.discard("k-busy")
    assert api.buy("k-busy").status_code == 201


def test_db_busy_is_503_with_retry_after(api, monkeypatch):
    # a server started with a short busy budget (the fixture's server waited the default 10 s)
    monkeypatch.setenv("TICKETHUB_BUSY_TIMEOUT", "0.2")
    before = dump(api.db)
    with TestClient(create_app(api.db, access_log=None)) as client, WriteLock(api.db):
        out = client.post(
            "/events",
            json={"name": "B", "starts_at": "2027-01-01T20:00:00Z"},
            headers={"Authorization": f"Bearer {api.secrets['admin']}"},
        )
    assert dump(api.db) == before
    assert out.status_code == 503 and out.headers["Retry-After"] == "1"
    assert out.json()["error"]["code"] == "DB_BUSY"


# ------------------------------------------------------------------------ the edge


def test_413_for_large_bodies_by_length_and_by_stream(api):
    before = dump(api.db)
    big = b'{"name": "' + b"x" * (1 << 20) + b'"}'
    out = api.call("POST", "/events", body=big)
    assert out.status_code == 413
    assert out.json()["error"]["code"] == "INVALID_INPUT"

    def chunks():
        for _ in range(20):
            yield b"x" * 65536

    streamed = api.client.post(
        "/events",
        content=chunks(),
        headers={"Authorization": f"Bearer {api.secrets['admin']}"},
    )
    assert streamed.status_code == 413
    assert dump(api.db) == before


def test_request_id_and_access_log_without_secrets(api):
    sold = api.call(
        "POST",
        "/tickets/purchase",
        "box-office",
        {
            "items": [{"ticket_type_id": api.ids["ga"], "quantity": 1}],
            "pay": "card",
            "card": OK_CARD,
        },
        headers={"Idempotency-Key": "k-log", "X-Request-Id": "trace-42"},
    )
    assert sold.headers["X-Request-Id"] == "trace-42"
    code = sold.json()["order"]["tickets"][0]["code"]
    api.call("GET", f"/tickets/{code}", "box-office")
    fresh = api.client.get("/healthz")
    assert len(fresh.headers["X-Request-Id"]) >= 16
    lines = [json.loads(x) for x in api.log.getvalue().splitlines()]
    assert {"request_id", "method", "route", "status", "ms", "token_id"} <= set(lines[0])
    assert any(x["request_id"] == "trace-42" and x["status"] == 201 for x in lines)
    assert any(x["route"] == "/tickets/{code}" for x in lines)
    text = api.log.getvalue()
    for secret in [*api.secrets.values(), OK_CARD, OK_CARD[-8:], code]:
        assert secret not in text


# ------------------------------------------------------------------------ webhook


def _signed(body: dict, at: int | None = None, secret: str = SECRET) -> tuple[bytes, str]:
    payload = json.dumps(body).encode()
    return payload, callbacks.signature_header(
        payload, secret, int(time.time()) if at is None else at
    )


def _pending(api, qty=1) -> dict:
    out = api.call(
        "POST",
        "/orders",
        "box-office",
        {"items": [{"ticket_type_id": api.ids["ga"], "quantity": qty}]},
        headers={"Idempotency-Key": f"pending-{time.monotonic_ns()}"},
    )
    return out.json()["order"]


def test_webhook_signed_pays_once(api):
    order = _pending(api, 2)
    body = {"id": "cb1", "order_id": order["id"], "status": "succeeded", "amount_minor": 4000}
    payload, header = _signed(body)
    out = api.client.post(
        "/payments/webhook", content=payload, headers={"TicketHub-Signature": header}
    )
    assert out.status_code == 200, out.text
    assert out.json()["order"]["status"] == "PAID"
    before = dump(api.db)
    again = api.client.post(
        "/payments/webhook", content=payload, headers={"TicketHub-Signature": header}
    )
    assert again.status_code == 200 and again.json()["order"]["status"] == "PAID"
    assert dump(api.db) == before
    healthy(api.db)


def test_webhook_refusals_are_400_and_recorded(api):
    order = _pending(api)
    body = {"id": "cb2", "order_id": order["id"], "status": "succeeded", "amount_minor": 2000}
    payload, good = _signed(body)
    stale_payload, stale = _signed(body, at=int(time.time()) - 301)
    wrong = _signed(body, secret="other")[1]
    for header in (stale, wrong, "", "t=abc,v1=00", good.split(",")[0]):
        out = api.client.post(
            "/payments/webhook",
            content=stale_payload if header == stale else payload,
            headers={"TicketHub-Signature": header},
        )
        assert out.status_code == 400 and out.json()["error"]["code"] == "SIGNATURE_INVALID"
    refused = "SELECT count(*) FROM callbacks WHERE outcome = 'signature_invalid'"
    assert count(api.db, refused) == 5
    assert (
        api.call("GET", f"/orders/{order['id']}", "box-office").json()["order"]["status"]
        == "PENDING"
    )
    t, v1 = good.split(",")
    several = f"{t},v1={'0' * 64},{v1}"
    ok = api.client.post(
        "/payments/webhook", content=payload, headers={"TicketHub-Signature": several}
    )
    assert ok.status_code == 200 and ok.json()["order"]["status"] == "PAID"
    mismatch = {"id": "cb3", "order_id": order["id"], "status": "succeeded", "amount_minor": 1}
    p3, h3 = _signed(mismatch)
    out = api.client.post("/payments/webhook", content=p3, headers={"TicketHub-Signature": h3})
    assert out.status_code == 400 and out.json()["error"]["code"] == "AMOUNT_MISMATCH"


def test_webhook_needs_the_timestamped_form(api):
    """The bare HMAC of the body (the CLI's older --signature form) carries no time, so over
    HTTP it let a captured callback be replayed for ever past the 300 s tolerance. The HTTP
    route takes `t=<unix>,v1=<hex>` only; the bare form is a recorded SIGNATURE_INVALID."""
    order = _pending(api)
    body = {"id": "cb-bare", "order_id": order["id"], "status": "succeeded", "amount_minor": 2000}
    payload = json.dumps(body).encode()
    bare = callbacks.sign(payload, SECRET)
    out = api.client.post(
        "/payments/webhook", content=payload, headers={"TicketHub-Signature": bare}
    )
    assert out.status_code == 400 and out.json()["error"]["code"] == "SIGNATURE_INVALID"
    refused = "SELECT count(*) FROM callbacks WHERE outcome = 'signature_invalid'"
    assert count(api.db, refused) == 1
    shown = api.call("GET", f"/orders/{order['id']}", "box-office").json()["order"]
    assert shown["status"] == "PENDING"


def test_cli_callback_accepts_the_header_value(make_db, tmp_path):
    db = make_db("b")
    ids = seed(db)
    s = th.open_session(db, operator="t")
    from tickethub_cli import orders

    oid = orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
    ).order["id"]
    s.close()
    body = {"id": "c1", "order_id": oid, "status": "succeeded", "amount_minor": 2000}
    payload, header = _signed(body)
    path = tmp_path / "cb.json"
    path.write_bytes(payload)
    env = {"TICKETHUB_WEBHOOK_SECRET": SECRET}
    old = _signed(body, at=int(time.time()) - 1000)[1]
    refused = cli(db, "payment", "callback", "--payload", str(path), "--signature", old, env=env)
    assert refused.code == 2 and refused.error["code"] == "SIGNATURE_INVALID"
    out = cli(db, "payment", "callback", "--payload", str(path), "--signature", header, env=env)
    assert out.code == 0, out.stderr
    assert out.json["order"]["status"] == "PAID"


@pytest.mark.parametrize(
    "answer",
    [
        b'{"code":"X","result":"\\u001b]0;pwned\\u0007ADMITTED","ticket_id":1,"event_id":1}',
        b"[1, 2]",
        b'{"code":"X","result":"ALREADY_USED","ticket_id":1,"first_used_at":5,"gate":null}',
        b"<html>proxy error</html>",
    ],
)
def test_remote_gate_survives_a_hostile_server(tmp_path, answer):
    """`--server` trusted the answer's shape: an unknown result (or a JSON array) ended
    `validate` and `gate` in exit 1 (KeyError / AttributeError, "report it"). A server
    that does not answer like TicketHub is now one DB_ERROR line (exit 7), escaped."""
    import http.server
    import threading

    class Hostile(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    db = str(tmp_path / "none.db")
    try:
        remote = ("--server", url, "--token", "th_x")
        for args, stdin in (
            (("validate", "AAAA", "--event", "1"), None),
            (("gate", "-e", "1"), "A\n"),
        ):
            out = cli(db, *remote, *args, input=stdin)
            assert out.code == 7, (args, out.code, out.stdout, out.stderr)
            assert out.error["code"] == "DB_ERROR"
            assert "\x1b" not in out.stdout + out.stderr
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------ rate limit


def test_rate_limit_per_token_recorded_and_admits_nothing(api):
    good = api.buy("k-rl").json()["order"]["tickets"][0]["code"]
    eid = api.ids["event"]
    for i in range(60):
        code = "ABCD" if i % 2 else "2222-2222-2222-2222-2222-2222"
        out = api.call("POST", "/tickets/validate", "gate1", {"code": code, "event_id": eid})
        assert out.status_code == 200 and out.json()["result"] in ("UNKNOWN", "MALFORMED"), out.text
    limited = api.call("POST", "/tickets/validate", "gate1", {"code": good, "event_id": eid})
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert count(api.db, "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL") == 0
    assert count(api.db, "SELECT count(*) FROM token_misses WHERE kind = 'REFUSED'") == 1
    # another token is not limited; a fresh server process (another worker) agrees
    other = api.call("POST", "/tickets/validate", "gate", {"code": good, "event_id": eid})
    assert other.json()["result"] == "ADMITTED"
    with TestClient(create_app(api.db, access_log=None)) as second:
        again = second.post(
            "/tickets/validate",
            json={"code": good, "event_id": eid},
            headers={"Authorization": f"Bearer {api.secrets['gate1']}"},
        )
    assert again.status_code == 429
    assert count(api.db, "SELECT count(*) FROM token_misses WHERE kind = 'REFUSED'") == 2


def test_rate_limit_window_passes(api, monkeypatch):
    eid = api.ids["event"]
    for _ in range(60):
        api.call("POST", "/tickets/validate", "gate1", {"code": "ABCD", "event_id": eid})
    assert (
        api.call("POST", "/tickets/validate", "gate1", {"code": "X", "event_id": eid}).status_code
        == 429
    )
    monkeypatch.setattr(clock, "_offset_us", 61_000_000)  # a minute later
    assert (
        api.call("POST", "/tickets/validate", "gate1", {"code": "X", "event_id": eid}).status_code
        == 200
    )


def test_hostile_text_leaves_as_inert_json_escapes(api):
    name = "Gig\u202e\u009b[31m"
    made = api.call("POST", "/events", body={"name": "x", "starts_at": "2027-01-01T20:00:00Z"})
    eid = made.json()["event"]["id"]
    bad = api.call("POST", "/events", body={"name": name, "starts_at": "2027-01-01T20:00:00Z"})
    assert bad.status_code == 400  # refused at input, as on the command line
    scan = api.call("POST", "/tickets/validate", "gate", {"code": "\u202e\u009b", "event_id": eid})
    assert scan.status_code == 200 and scan.json()["result"] == "MALFORMED"
    assert "\u202e".encode() not in scan.content and b"\xc2\x9b" not in scan.content


def test_a_token_refused_many_times_does_not_slow_the_rate_limit_check(tmp_path):
    """Refusals are recorded, but the check counts only the misses in the window through a
    partial index that leaves refusals out: 100,000 refusals of one token cost each later
    check nothing (it runs in the one writer, inside BEGIN IMMEDIATE)."""
    import sqlite3

    import tickethub_cli as th
    from tickethub_cli import clock, ratelimit

    db = str(tmp_path / "rl.db")
    s, _, _ = th.init_session(db)
    now = clock.now_us()
    with transaction(s.conn):  # one commit (autocommit: 100,000 fsyncs, ~15 s)
        s.conn.executemany(
            "INSERT INTO token_misses (token_id, at_us, kind) VALUES (1, ?, 'REFUSED')",
            [(now - i,) for i in range(100_000)],
        )
    plan = " ".join(
        str(row[-1])
        for row in s.conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM token_misses"
            " WHERE token_id = ? AND at_us > ? AND kind <> 'REFUSED'",
            (1, now - ratelimit.WINDOW_US),
        )
    )
    assert "token_misses_window" in plan, plan
    sql = s.conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'token_misses_window'"
    ).fetchone()[0]
    assert "WHERE kind <> 'REFUSED'" in sql  # the refusals are not in the index at all
    conn = sqlite3.connect(db)
    conn.set_progress_handler(lambda: 1, 10_000)  # abort any statement that walks the table
    try:
        conn.execute(
            "SELECT count(*) FROM token_misses WHERE token_id = 1 AND at_us > ?"
            " AND kind <> 'REFUSED'",
            (now - ratelimit.WINDOW_US,),
        ).fetchone()
    finally:
        conn.close()
    assert ratelimit.retry_after(s, 1, now) is None
    s.close()


def test_the_server_url_carries_no_credentials_and_plain_http_afar_is_flagged():
    import subprocess

    from support import tickethub_exe

    from tickethub_cli.http.client import Remote

    done = subprocess.run(
        [tickethub_exe(), "--server", "http://ann:s3cret@example.org", "--token", "th_x",
         "validate", "K7QF-3M2A-98XC-TP4D-ZN6W-R2B6", "--event", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "s3cret" not in done.stderr + done.stdout
    assert "user or password" in done.stderr
    assert Remote("http://gate-server.example:8000", "th_x").insecure
    assert not Remote("https://gate-server.example", "th_x").insecure
    assert not Remote("http://127.0.0.1:8000", "th_x").insecure


def test_refusals_stay_out_of_the_rate_limit_index_on_postgresql(pg_server):
    """The PostgreSQL analogue: the window count uses the partial index without refusals,
    so 100,000 refusals of one token are never read by the check."""
    from tickethub_cli import ratelimit

    db = pg_server.new_database()
    s, _, _ = th.init_session(db)
    now = clock.now_us()
    try:
        with transaction(s.conn) as c:
            c.execute(
                "INSERT INTO token_misses (token_id, at_us, kind)"
                " SELECT 1, ? - g, 'REFUSED' FROM generate_series(1, 100000) AS g",
                (now,),
            )
        s.conn.execute("ANALYZE token_misses")
        plan = " ".join(
            row[0]
            for row in s.conn.execute(
                "EXPLAIN SELECT count(*) FROM token_misses"
                " WHERE token_id = ? AND at_us > ? AND kind <> 'REFUSED'",
                (1, now - ratelimit.WINDOW_US),
            )
        )
        assert "token_misses_window" in plan and "Seq Scan" not in plan, plan
        assert ratelimit.retry_after(s, 1, now) is None
    finally:
        s.close()


# ------------------------------------------------------------------------ read connections


def _connections(db: str) -> int:
    """Connections to the database now open in this process (SQLite: file handles; on
    PostgreSQL every session of the server, less the one asking)."""
    if db.startswith("postgresql://"):
        return count(
            db,
            "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()",
        )
    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(db))


def test_reads_on_threads_that_end_leave_no_connection_behind(api):
    """Read sessions were kept per thread and never closed: the thread pool ends idle
    threads (after 10 s) and starts new ones, so a long-running server piled up one open
    connection per thread it ever had (on PostgreSQL, until the server refused clients).
    Sessions are pooled now: threads come and go, the connections stay few."""
    backend = api.client.app.state.backend
    backend.read_here(lambda s: s.schema_version())
    # the writer thread opens its own connection when it starts: let it, before counting
    backend.writer.unit(lambda s: None, "tester").result(timeout=30)
    before = _connections(api.db)
    for _ in range(12):
        t = threading.Thread(target=backend.read_here, args=(lambda s: s.schema_version(),))
        t.start()
        t.join()
    assert _connections(api.db) <= before


def test_reads_at_once_on_postgresql_are_bounded(pg_server):
    """Each read holds a server connection: a burst of reads takes at most PG_READERS of
    them per process (the thread pool alone would take 40), others wait their turn."""
    import asyncio

    from tickethub_cli.http.deps import PG_READERS, Backend

    db = pg_server.new_database()
    seed(db)
    backend = Backend(db)
    entered, release, lock = [], threading.Event(), threading.Lock()

    def slow(s):
        with lock:
            entered.append(s)
        assert release.wait(30)
        return s.schema_version()

    async def burst():
        reads = [asyncio.ensure_future(backend.read(slow)) for _ in range(3 * PG_READERS)]
        while len(entered) < PG_READERS:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)  # a window for reads beyond the bound to show up
        assert len(entered) == PG_READERS
        release.set()
        return await asyncio.gather(*reads)

    try:
        assert asyncio.run(burst()) == [4] * 3 * PG_READERS
        assert len({id(s) for s in entered}) <= PG_READERS
    finally:
        release.set()
        backend.close()


def test_validate_with_an_event_id_no_database_can_hold_is_404_not_500(api):
    """Found by schemathesis: event_id 2**63 reached the set-based group's statement and
    sqlite3 raised OverflowError (500). It names no event: 404, as the per-scan path says."""
    for event_id in (2**63, 2**64 + 5, -1, 0):
        scan = {"code": "AAAA", "event_id": event_id}
        out = api.call("POST", "/tickets/validate", "gate", scan)
        assert out.status_code == 404, (event_id, out.status_code, out.text)
        assert out.json()["error"]["code"] == "NOT_FOUND"
    ok = {"code": "AAAA", "event_id": api.ids["event"]}
    assert api.call("POST", "/tickets/validate", "gate", ok).status_code == 200
