"""Provider callbacks: signed, idempotent by callback id, never able to oversell or to take
or give back money twice.

A callback is about the order's open card attempt when it has one: a failure voids it at the
provider (which also reveals a charge that landed after all), a success is confirmed by the
provider's record. Without an open attempt, a success that repeats a capture we know of is
"known" (no-op); any other success is a capture of its own: it pays a PENDING order, or it is
refunded, once. A refused callback (bad signature, unknown order, wrong amount) writes nothing
but the record of a bad signature, and nobody is asked anything.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from . import audit, bounded, clock, orders, payments
from .db import snapshot, transaction
from .errors import ErrorCode, TicketHubError, invalid
from .session import Session

TOLERANCE_S = 300  # a timestamped signature older or newer than this is refused (replays)


def sign(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secret: str, at: int) -> str:
    """The `TicketHub-Signature` value a provider sends: `t=<unix>,v1=<hex of "t.body">`."""
    return f"t={at},v1={sign(str(at).encode() + b'.' + payload, secret)}"


def signature_matches(
    payload: bytes, signature: str, secret: str, now_s: float, *, timestamped: bool = False
) -> bool:
    """Either form a provider may use: the header value `t=<unix>,v1=<hex>[,v1=<hex>…]`
    (HMAC-SHA256 of "<t>.<raw body>", t within TOLERANCE_S of now, one v1 must match), or
    the bare hex HMAC of the body alone (the older form, refused when `timestamped`: it
    has no time, so a captured one could be replayed for ever). Every comparison in
    constant time."""
    text = signature.strip()
    if "=" not in text:
        return not timestamped and _same(sign(payload, secret), text.lower())
    stamp, candidates = None, []
    for part in text.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and stamp is None:
            stamp = value
        elif name == "v1":
            candidates.append(value.lower())
    if stamp is None or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        return False
    if abs(now_s - int(stamp)) > TOLERANCE_S:
        return False
    expected = sign(stamp.encode() + b"." + payload, secret)
    matched = False
    for candidate in candidates[:16]:  # no early exit: the time does not tell which matched
        matched |= _same(expected, candidate)
    return matched


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))


def _log(s: Session, payload: bytes, outcome: str, body: dict[str, Any] | None = None) -> None:
    body = body or {}
    s.conn.execute(
        "INSERT INTO callbacks (callback_id, order_id, status, amount_minor, outcome,"
        " payload_sha256, received_at, operator) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            body.get("id"),
            body.get("order_id"),
            body.get("status"),
            body.get("amount_minor"),
            outcome,
            hashlib.sha256(payload).hexdigest(),
            clock.now_text(),
            s.operator,
        ),
    )


def _parse(payload: bytes) -> dict[str, Any]:
    body = bounded.load_json(payload, "callback payload")
    if not isinstance(body, dict):
        raise invalid("callback payload must be a JSON object")
    cb_id, status = body.get("id"), body.get("status")
    if not isinstance(cb_id, str | int) or isinstance(cb_id, bool) or str(cb_id) == "":
        raise invalid("callback payload needs an id")
    if isinstance(cb_id, str) and orders.v.has_control(cb_id):
        # refused at input like every other text (a NUL could not even be stored on
        # PostgreSQL, where it failed as DB_ERROR)
        raise invalid("callback id must not contain control characters")
    if status not in ("succeeded", "failed"):
        raise invalid("callback status must be succeeded or failed")
    amount = body.get("amount_minor")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise invalid("callback amount_minor must be a non-negative integer")
    order_id = body.get("order_id")
    if isinstance(order_id, bool) or not isinstance(order_id, int | str):
        raise invalid("callback needs an order_id")
    return {"id": str(cb_id), "status": status, "amount_minor": amount, "order_id": order_id}


def _seen(s: Session, callback_id: str) -> bool:
    return (
        s.conn.execute(
            "SELECT 1 FROM callbacks WHERE callback_id = ? AND outcome <> 'signature_invalid'",
            (callback_id,),
        ).fetchone()
        is not None
    )


def handle(
    s: Session, payload: bytes, signature: str, *, timestamped: bool = False
) -> dict[str, Any]:
    """Apply one provider callback; returns the order as it stands afterwards.
    `timestamped`: only the `t=…,v1=…` form is accepted (the HTTP webhook)."""
    secret = s.settings.require_webhook_secret()
    now_s = clock.now_us() / 1_000_000
    if not signature_matches(payload, signature, secret, now_s, timestamped=timestamped):
        with transaction(s.conn):
            _log(s, payload, "signature_invalid")
        raise TicketHubError(ErrorCode.SIGNATURE_INVALID, "callback signature does not match")
    body = _parse(payload)
    oid = orders.v.parse_id(body["order_id"], "order")
    body["order_id"] = oid
    with snapshot(s.conn) as c:  # every refusal first: it writes nothing, asks nobody
        row = orders.order_row(c, oid)
        if _seen(s, body["id"]):
            return orders.order_dict(c, row)
        if body["amount_minor"] != row["total_minor"]:
            raise TicketHubError(
                ErrorCode.AMOUNT_MISMATCH,
                f"callback amount {body['amount_minor']} does not match order {oid}"
                f" total {row['total_minor']}",
                order_id=oid,
            )
    provider_says = _ask_provider(s, row, body)
    with transaction(s.conn):
        if not _seen(s, body["id"]):  # a twin delivered meanwhile is a no-op
            _log(s, payload, _apply(s, oid, body, provider_says), body)
    orders.run_refunds(s, oid)
    return orders.get_order(s, oid)


def _ask_provider(s: Session, row: Any, body: dict[str, Any]) -> tuple[str, str] | None:
    """Outside any transaction: (charge key, what the provider's own record says of it) for
    the charge the callback is about; None when it is about no charge we could ask for."""
    attempt = payments.open_for(s.conn, row["id"])
    if attempt is not None and attempt["method"] == "card":
        ref = attempt["provider_ref"]
        if body["status"] == "failed":
            return ref, s.provider.void(ref, row["id"]).status  # nothing can land after this
        said = s.provider.notified(ref, row["id"], row["total_minor"], row["currency"])
        return ref, said.status
    if body["status"] != "succeeded":
        return None
    ref = f"cb_{body['id']}"
    said = s.provider.lookup(ref)  # a redelivery after a crash: the charge is there already
    if said is None and not _known(s, row["id"], body["amount_minor"]):
        said = s.provider.notified(ref, row["id"], body["amount_minor"], row["currency"])
    return None if said is None else (ref, said.status)


def _known(s: Session, order_id: int, amount: int) -> bool:
    return payments.find_known_capture(s.conn, order_id, amount) is not None


def _apply(s: Session, oid: int, body: dict[str, Any], asked: tuple[str, str] | None) -> str:
    """Inside the transaction: apply what was learnt; returns the callback's outcome."""
    c = s.conn
    row = orders.order_row(c, oid)
    attempt = payments.open_for(c, oid)
    status = body["status"]
    if attempt is not None and asked is not None and attempt["provider_ref"] == asked[0]:
        provider_says = asked[1]
        overridden = status == "failed" and provider_says == "captured"
        reason = (
            "provider callback: failed, but the provider holds a captured charge"
            if overridden
            else f"provider callback: {status}"
        )
        orders.apply_outcome(s, attempt, provider_says, mode="settle", reason=reason)
        return "applied"
    if status == "failed":
        if row["status"] != "PENDING" or attempt is not None:
            return "ignored"  # a failure after the end, or about no card attempt of ours
        orders.release_pending(c, s.operator, row, "FAILED", "provider callback: failed")
        return "applied"
    if asked != (f"cb_{body['id']}", "captured"):
        # a (late, repeated) success for a capture we have on record, or about an attempt
        # settled meanwhile: the provider holds no charge of its own for it
        return "known" if _known(s, oid, body["amount_minor"]) else "ignored"
    # The provider holds this charge: it is recorded whatever else happened meanwhile (a
    # twin callback or a payment may have paid the order), and refunded if it is surplus.
    payment = payments.record_notified(c, oid, body["amount_minor"], asked[0])
    if row["status"] == "PENDING" and orders.hold_expired(c, row):
        orders.release_pending(c, s.operator, row, "CANCELLED", "hold_expired")
    if orders.order_row(c, oid)["status"] == "PENDING":
        orders.mark_paid(c, s.operator, row, method="card", reason="provider callback: succeeded")
        orders.finish_key(c, oid)
        return "applied"
    audit.record(
        c,
        s.operator,
        "order",
        oid,
        "late_success",
        reason="payment succeeded for an order that can no longer be paid; refunding",
    )
    payments.request_refund(c, s.operator, payment, "late provider success refunded")
    return "refund"
