"""Every route of HTTP_API.md: parse (pydantic) → check the token → call a service through
the Backend → one JSON body. No SQL and no status codes of errors here (see deps.py)."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from .. import (
    callbacks,
    checkin,
    clock,
    events,
    orders,
    ratelimit,
    reports,
    tickets,
    tokens,
    validation,
)
from ..errors import ErrorCode, TicketHubError
from ..order_requests import OrderRequest
from . import idem
from . import models as m
from .deps import (
    Backend,
    backend_name,
    check_event,
    check_role,
    json_response,
    operator_of,
    unauthorized,
)

# one page of full orders per request: a client pages with `cursor` (the CLI's --all reads
# a file; over HTTP, 100,000 orders in one answer would tie up a worker and its memory)
MAX_HTTP_PAGE = 1000

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="a secret from `tickethub token create`")

VIEWER = ("viewer", "box-office")
BOX_OFFICE = ("box-office",)
GATE = ("gate",)
ADMIN: tuple[str, ...] = ()  # admin only (admin may do everything)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.ErrorOut} for code in (400, 401, 403, 404, 409, 413, 503)
}


def backend(request: Request) -> Backend:
    return request.app.state.backend


def role(*roles: str) -> Any:
    """A dependency: the request's live token, of one of `roles` (or admin); 401/403 else.
    Reads only: a refused request writes nothing."""

    async def dep(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> dict[str, Any]:
        header = f"Bearer {credentials.credentials}" if credentials is not None else None
        token = backend(request).token_for(header)
        request.state.token_id = token["id"]
        check_role(token, roles)
        return token

    return Depends(dep)


Token = dict[str, Any]
AS_ADMIN, AS_VIEWER = role(*ADMIN), role(*VIEWER)
AS_BOX_OFFICE, AS_GATE = role(*BOX_OFFICE), role(*GATE)


# ------------------------------------------------------------------------------ health


@router.get("/healthz", response_model=m.HealthOut, tags=["health"])
async def healthz(request: Request) -> Response:
    version = await backend(request).read(lambda s: s.schema_version())
    return json_response(
        {
            "ok": True,
            "backend": backend_name(backend(request).path),
            "schema_version": version,
            "in_flight": request.app.state.edge.in_flight,  # this one included
        }
    )


# ------------------------------------------------------------------------------ events


@router.post(
    "/events", status_code=201, responses={201: {"model": m.EventOut}, **_ERRORS}, tags=["events"]
)
async def create_event(request: Request, body: m.EventIn, token: Token = AS_ADMIN) -> Response:
    def work(s: Any) -> dict[str, Any]:
        return events.create_event(
            s,
            name=body.name,
            starts_at=body.starts_at,
            venue=body.venue,
            currency=body.currency or "EUR",
            timezone=body.timezone,
        )

    event = await backend(request).solo(work, operator_of(token))
    return json_response({"event": event}, 201)


@router.get("/events", responses={200: {"model": m.EventsOut}, **_ERRORS}, tags=["events"])
async def list_events(request: Request, token: Token = AS_VIEWER) -> Response:
    def work(s: Any) -> list[dict[str, Any]]:
        found = events.list_events(s)
        for event in found:
            event["ticket_types"] = events.list_ticket_types(s, event["id"])
        return found

    return json_response({"events": await backend(request).read(work)})


@router.get(
    "/events/{event_id}", responses={200: {"model": m.EventOut}, **_ERRORS}, tags=["events"]
)
async def get_event(request: Request, event_id: str, token: Token = AS_VIEWER) -> Response:
    check_event(token, event_id)
    event = await backend(request).read(lambda s: events.get_event(s, event_id))
    return json_response({"event": event})


@router.post(
    "/events/{event_id}/ticket-types",
    status_code=201,
    responses={201: {"model": m.TicketTypeEnvelope}, **_ERRORS},
    tags=["events"],
)
async def add_ticket_type(
    request: Request, event_id: str, body: m.TicketTypeIn, token: Token = AS_ADMIN
) -> Response:
    check_event(token, event_id)
    created = await backend(request).solo(
        lambda s: events.add_ticket_type(
            s,
            event_id,
            name=body.name,
            price=body.price,
            capacity=body.capacity,
            max_per_order=body.max_per_order,
        ),
        operator_of(token),
    )
    return json_response({"ticket_type": created}, 201)


@router.patch(
    "/ticket-types/{type_id}",
    responses={200: {"model": m.TicketTypeEnvelope}, **_ERRORS},
    tags=["events"],
)
async def update_ticket_type(
    request: Request, type_id: str, body: m.TicketTypePatch, token: Token = AS_ADMIN
) -> Response:
    changed = await backend(request).solo(
        lambda s: events.update_ticket_type(
            s,
            type_id,
            name=body.name,
            price=body.price,
            capacity=body.capacity,
            max_per_order=body.max_per_order,
            sales=body.sales,
        ),
        operator_of(token),
    )
    return json_response({"ticket_type": changed})


@router.get(
    "/events/{event_id}/report", responses={200: {"model": m.ReportOut}, **_ERRORS}, tags=["events"]
)
async def event_report(request: Request, event_id: str, token: Token = AS_VIEWER) -> Response:
    check_event(token, event_id)
    return json_response(await backend(request).read(lambda s: reports.report(s, event_id)))


# ------------------------------------------------------------------------------ orders

KeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="required: 1-255 printable ASCII; a retry with it never sells twice",
    ),
]


def _items(body: m.OrderIn) -> list[tuple[object, object]]:
    return [(i.ticket_type_id, i.quantity) for i in body.items]


@router.post(
    "/tickets/purchase",
    status_code=201,
    responses={201: {"model": m.OrderOut}, 402: {"model": m.ErrorOut}, **_ERRORS},
    tags=["orders"],
)
async def purchase(
    request: Request,
    body: m.PurchaseIn,
    idempotency_key: KeyHeader = None,
    token: Token = AS_BOX_OFFICE,
) -> Response:
    return await do_purchase(backend(request), token, body, idempotency_key)


async def do_purchase(
    b: Backend, token: Token, body: m.PurchaseIn, idempotency_key: str | None
) -> Response:
    """The route's work once the token and the body are known (also run by fast.py)."""
    key = idem.check_header(idempotency_key)
    req = OrderRequest.parse(
        items=_items(body),
        email=body.email,
        name=body.name,
        pay=body.pay,
        card=body.card,
        idempotency_key=key,
    )
    op = operator_of(token)
    digest = idem.request_hash("POST", "/tickets/purchase", req.fingerprint("purchase"))
    return await idem.run(b, key, digest, op, lambda: b.batch(orders.purchase_many, req, op))


@router.post(
    "/orders", status_code=201, responses={201: {"model": m.OrderOut}, **_ERRORS}, tags=["orders"]
)
async def create_order(
    request: Request,
    body: m.OrderIn,
    idempotency_key: KeyHeader = None,
    token: Token = AS_BOX_OFFICE,
) -> Response:
    key = idem.check_header(idempotency_key)
    req = OrderRequest.parse(
        items=_items(body),
        email=body.email,
        name=body.name,
        idempotency_key=key,
        require_pay=False,
    )
    b, op = backend(request), operator_of(token)
    digest = idem.request_hash("POST", "/orders", req.fingerprint("create"))
    return await idem.run(
        b, key, digest, op, lambda: b.solo(lambda s: orders.create_order(s, req), op)
    )


@router.post(
    "/orders/{order_id}/pay",
    responses={200: {"model": m.OrderOut}, 402: {"model": m.ErrorOut}, **_ERRORS},
    tags=["orders"],
)
async def pay_order(
    request: Request, order_id: str, body: m.PayIn, token: Token = AS_BOX_OFFICE
) -> Response:
    result = await backend(request).solo(
        lambda s: orders.pay_order(s, order_id, pay=body.pay, card=body.card), operator_of(token)
    )
    return json_response(result.to_json())


@router.post(
    "/orders/{order_id}/cancel",
    responses={200: {"model": m.OrderOut}, **_ERRORS},
    tags=["orders"],
)
async def cancel_order(
    request: Request,
    order_id: str,
    body: m.CancelIn | None = None,
    token: Token = AS_BOX_OFFICE,
) -> Response:
    body = body or m.CancelIn()
    order = await backend(request).solo(
        lambda s: orders.cancel_order(s, order_id, reason=body.reason, force=body.force),
        operator_of(token),
    )
    return json_response({"order": order})


@router.get(
    "/orders/{order_id}", responses={200: {"model": m.OrderOut}, **_ERRORS}, tags=["orders"]
)
async def get_order(request: Request, order_id: str, token: Token = AS_BOX_OFFICE) -> Response:
    order = await backend(request).read(lambda s: orders.get_order(s, order_id))
    return json_response({"order": order})


@router.get("/orders", responses={200: {"model": m.OrdersOut}, **_ERRORS}, tags=["orders"])
async def list_orders(
    request: Request,
    event_id: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HTTP_PAGE)] = orders.DEFAULT_PAGE,
    cursor: str | None = None,
    token: Token = AS_BOX_OFFICE,
) -> Response:
    page = await backend(request).read(
        lambda s: orders.list_orders(
            s, event_id=event_id, status=status, limit=limit, cursor=cursor
        )
    )
    return json_response(page)


# ------------------------------------------------------------------------------ the door


@router.post("/tickets/validate", responses={200: {"model": m.ScanOut}, **_ERRORS}, tags=["gate"])
async def validate(request: Request, body: m.ValidateIn, token: Token = AS_GATE) -> Response:
    """200 whatever the result (ADMITTED, ALREADY_USED, UNKNOWN, WRONG_EVENT, VOID,
    MALFORMED); 429 once the token has had too many UNKNOWN/MALFORMED results."""
    return json_response(await scan(backend(request), token, body))


Scanned = checkin.ScanResult | int | None  # the result; seconds to wait (429); revoked (401)


def _may_scan(s: Any, group: dict[Any, Any], token_id: int, now: int) -> Scanned | bool:
    """True when the token may scan now; else what the scan answers (it is not judged, and
    a refusal is recorded). Facts are read once per group commit (s.group, see
    store.writer): no other writer can revoke the token before this group's commit."""
    live = group.get(("live", token_id))
    if live is None:
        live = group[("live", token_id)] = tokens.is_live(s, token_id)
    if not live:  # revoked since it was looked up
        return None
    wait = ratelimit.retry_after(s, token_id, now)
    if wait is not None:  # refused: recorded, not judged, admits nothing
        ratelimit.record(s, token_id, "REFUSED", now)
        return wait
    return True


def _gate_key(body: m.ValidateIn) -> tuple[Any, ...]:
    return ("gate", body.event_id, body.gate, body.dry_run)


def _gate(s: Any, group: dict[Any, Any], body: m.ValidateIn) -> checkin.Gate:
    """The group's Gate for this event, gate name and mode (its event read once)."""
    at_gate = _gate_key(body)
    gate = group.get(at_gate)
    if gate is None:
        gate = group[at_gate] = checkin.Gate(s, body.event_id, body.gate, dry_run=body.dry_run)
    return gate


def scan_one(s: Any, token_id: int, body: m.ValidateIn) -> Scanned:
    """One scan judged on its own inside a group commit: the route's path on an SQLite
    older than 3.38 (no json_each with UPDATE … FROM), and what `scan_group` must answer
    exactly as (tests/test_validate_group.py)."""
    group = s.group if s.group is not None else {}
    now = clock.now_us()
    may = _may_scan(s, group, token_id, now)
    if may is not True:
        return may
    result = _gate(s, group, body).scan_in_transaction(body.code)
    if result.result in ratelimit.MISSES:
        ratelimit.record(s, token_id, result.result, now)
    return result


def scan_group(s: Any, items: list[tuple[str, tuple[int, m.ValidateIn]]]) -> list[Any]:
    """A commit group's scans judged together (writer.gather): the tickets of all their codes
    read in one statement, each scan judged in arrival order as `scan_one` would (token,
    rate limit, event, checks, scan log), the admissions written in one statement. One
    result per scan, or the error it answers (raised before it wrote anything)."""
    group = s.group if s.group is not None else {}
    codes = [checkin.code_of(body.code) for _, (_, body) in items]
    # the first scan's token and event facts come with the tickets, in the same statement
    token_id, body = items[0][1]
    now = clock.now_us()
    facts = [
        tokens.live_query(token_id),
        ratelimit.count_query(token_id, now),
        checkin.event_query(body.event_id),
    ]
    found = checkin.ScanSet(s, codes, facts)
    live, misses, event = found.facts
    group.setdefault(("live", token_id), live == 1)
    ratelimit.prime(s, token_id, now, misses)
    at_gate = _gate_key(body)
    if event is not None and at_gate not in group:
        with contextlib.suppress(TicketHubError):  # a bad gate name: answered per scan
            group[at_gate] = checkin.Gate(
                s, body.event_id, body.gate, dry_run=body.dry_run, event_known=True
            )
    out: list[Any] = []
    for (operator, (token_id, body)), code in zip(items, codes, strict=True):
        now = clock.now_us()
        may = _may_scan(s, group, token_id, now)
        if may is not True:
            out.append(may)
            continue
        try:
            gate = _gate(s, group, body)
        except TicketHubError as err:  # e.g. no such event: this scan's answer alone
            out.append(err)
            continue
        result = gate.scan_looked_up(found, body.code, code, operator)
        if result.result in ratelimit.MISSES:
            ratelimit.record(s, token_id, result.result, now)
        out.append(result)
    found.finish()
    return out


async def scan(b: Backend, token: Token, body: m.ValidateIn) -> dict[str, Any]:
    """The route's work once the token and the body are known (also run by fast.py): the
    200 answer's body, or the error."""
    check_event(token, body.event_id)
    # an id no database can hold (e.g. 2**63) is "not found", as the per-scan path says; the
    # group's one statement must never be handed it (sqlite3 raises OverflowError)
    validation.parse_id(body.event_id, "event")
    token_id = token["id"]
    if checkin.SET_BASED and b.dialect == "sqlite":  # (ScanSet's statements are SQLite's)
        out = await b.gather(scan_group, (token_id, body), operator_of(token))
    else:
        out = await b.unit(lambda s: scan_one(s, token_id, body), operator_of(token))
    if out is None:
        raise unauthorized("unknown or revoked token")
    if isinstance(out, int):
        raise TicketHubError(
            ErrorCode.RATE_LIMITED,
            f"too many unknown or malformed codes from this token; retry in {out} s",
            details={"retry_after": out},
        )
    return out.to_json()


@router.post("/checkins/undo", responses={200: {"model": m.UndoOut}, **_ERRORS}, tags=["gate"])
async def undo_checkin(request: Request, body: m.UndoIn, token: Token = AS_GATE) -> Response:
    check_event(token, body.event_id)
    done = await backend(request).solo(
        lambda s: checkin.undo(s, body.code, body.event_id, reason=body.reason), operator_of(token)
    )
    return json_response(done)


@router.get("/tickets/{code}", responses={200: {"model": m.TicketOut}, **_ERRORS}, tags=["gate"])
async def get_ticket(request: Request, code: str, token: Token = AS_BOX_OFFICE) -> Response:
    ticket = await backend(request).read(lambda s: tickets.show(s, code))
    return json_response({"ticket": ticket})


# ------------------------------------------------------------------------------ provider


@router.post(
    "/payments/webhook",
    responses={200: {"model": m.OrderOut}, **_ERRORS},
    tags=["payments"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def payment_webhook(
    request: Request,
    signature: Annotated[
        str | None,
        Header(alias="TicketHub-Signature", description="t=<unix>,v1=<hex HMAC-SHA256>"),
    ] = None,
) -> Response:
    """A provider callback, signed: HMAC-SHA256 of "<t>.<raw body>" with the webhook secret,
    t within 300 s. A refused signature is recorded; a repeated callback id changes nothing."""
    from .. import settings

    settings.webhook_secret()  # unset: refused before reading anything
    payload = await request.body()
    order = await backend(request).solo(
        lambda s: callbacks.handle(s, payload, signature or "", timestamped=True), "provider"
    )
    return json_response({"order": order})
