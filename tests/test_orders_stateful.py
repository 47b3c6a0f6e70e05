"""A hypothesis state machine over the service layer: purchases, reservations, payments,
cash taken after an unknown card outcome, cancellations (forced ones of admitted tickets),
expiry, callbacks (repeated, out of order, late, with wrong amounts), reconcile (of all, of
one order), admissions and the busy_after_charge fault point, interleaved with random keys.
After every step the doctor's invariants hold, the money invariant among them: ours against
the provider's own ledger, captured minus refunded equal to what each order keeps."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from support import DECLINED_CARD, OK_CARD, TIMEOUT_CARD, reusable_db, seed

import tickethub_cli as th
from tickethub_cli import callbacks, checkin, clock, doctor, faults, orders, reconcile
from tickethub_cli.errors import ErrorCode, TicketHubError

SECRET = "stateful-secret"
CARDS = {"ok": OK_CARD, "declined": DECLINED_CARD, "timeout": TIMEOUT_CARD}
FINAL = {"FAILED", "CANCELLED"}


class BoxOffice(RuleBasedStateMachine):
    order_ids = Bundle("order_ids")
    keys = Bundle("keys")

    def __init__(self, fresh_db: Callable[[], str]) -> None:
        super().__init__()
        self.path = fresh_db()
        self.ids = seed(self.path, capacity=6, max_per_order=4)
        self.s = th.open_session(self.path, operator="machine")
        self.offset = 0.0
        self.callback_no = 0
        self.sent: list[bytes] = []
        self.requests: dict[str, tuple] = {}
        self.known_status: dict[int, str] = {}
        self.busy_keys: list[str] = []
        os.environ["TICKETHUB_WEBHOOK_SECRET"] = SECRET

    def teardown(self) -> None:
        faults.arm("")
        self.s.close()
        clock.set_offset(0)

    def _status(self, oid: int) -> str:
        return orders.get_order(self.s, oid)["status"]

    def _request(
        self, type_name: str, qty: int, pay: str, key: str | None = None
    ) -> orders.OrderRequest:
        return orders.OrderRequest.parse(
            items=[f"{self.ids[type_name]}:{qty}"],
            pay="cash" if pay == "cash" else "card",
            card=CARDS.get(pay),
            idempotency_key=key,
        )

    def _note(self, oid: int) -> None:
        self.known_status[oid] = self._status(oid)

    # -------------------------------------------------------------------------- rules

    @rule(
        target=order_ids,
        type_name=st.sampled_from(["ga", "vip"]),
        qty=st.integers(1, 5),
        pay=st.sampled_from(["cash", "ok", "declined", "timeout"]),
        key=st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3", "k4"])),
    )
    def purchase(self, type_name, qty, pay, key):
        request = (type_name, qty, pay)
        req = self._request(type_name, qty, pay, key)
        try:
            result = orders.purchase(self.s, req)
        except TicketHubError as err:
            if key is not None and key in self.requests and self.requests[key] != request:
                assert err.code in (ErrorCode.IDEMPOTENCY_MISMATCH, ErrorCode.INVALID_INPUT)
            else:
                assert err.code in (
                    ErrorCode.SOLD_OUT,
                    ErrorCode.INVALID_INPUT,
                    ErrorCode.PAYMENT_DECLINED,
                    ErrorCode.PAYMENT_UNKNOWN,
                ), err
            if err.order_id is not None and err.code != ErrorCode.IDEMPOTENCY_MISMATCH:
                if key is not None:
                    self.requests.setdefault(key, request)
                self._note(err.order_id)
                return err.order_id
            return multiple()
        if key is not None:
            assert self.requests.setdefault(key, request) == request
        oid = result.order["id"]
        assert result.order["status"] in ("PAID", "CANCELLED", "FAILED")
        self._note(oid)
        return oid

    @rule(
        target=order_ids,
        type_name=st.sampled_from(["ga", "vip"]),
        qty=st.integers(1, 4),
        minutes=st.sampled_from([1, 15]),
    )
    def create(self, type_name, qty, minutes):
        req = orders.OrderRequest.parse(
            items=[f"{self.ids[type_name]}:{qty}"], hold_minutes=minutes, require_pay=False
        )
        try:
            result = orders.create_order(self.s, req)
        except TicketHubError as err:
            assert err.code == ErrorCode.SOLD_OUT
            return multiple()
        assert result.order["status"] == "PENDING"
        self._note(result.order["id"])
        return result.order["id"]

    @rule(oid=order_ids, pay=st.sampled_from(["cash", "ok", "declined", "timeout"]))
    def pay(self, oid, pay):
        before = self._status(oid)
        try:
            orders.pay_order(
                self.s, oid, pay="cash" if pay == "cash" else "card", card=CARDS.get(pay)
            )
        except TicketHubError as err:
            assert err.code in (
                ErrorCode.INVALID_STATE,
                ErrorCode.PAYMENT_DECLINED,
                ErrorCode.PAYMENT_UNKNOWN,
                ErrorCode.IN_PROGRESS,
            ), err
            if err.code == ErrorCode.INVALID_STATE:
                now = self._status(oid)
                # unchanged, or the earlier (unknown) card payment turned out captured
                assert now == before or (before, now) == ("PENDING", "PAID"), (before, now)
        self._note(oid)

    @rule(oid=order_ids, force=st.booleans())
    def cancel(self, oid, force):
        before = self._status(oid)
        try:
            order = orders.cancel_order(self.s, oid, reason="stateful", force=force)
        except TicketHubError as err:
            assert err.code == ErrorCode.INVALID_STATE, err
            assert self._status(oid) == before
            admitted = any(t["checked_in_at"] for t in orders.get_order(self.s, oid)["tickets"])
            assert before in FINAL or (before == "PAID" and admitted and not force)
        else:
            assert before in ("PENDING", "PAID")
            assert order["status"] == "CANCELLED"
            assert all(t["status"] == "void" for t in order["tickets"])
            assert all(p["status"] not in ("pending", "unknown") for p in order["payments"])
        self._note(oid)

    @rule(oid=order_ids, data=st.data())
    def admit(self, oid, data):
        valid = [t for t in orders.get_order(self.s, oid)["tickets"] if t["status"] == "valid"]
        if not valid:
            return
        ticket = data.draw(st.sampled_from(valid))
        result = checkin.validate(self.s, ticket["code"], self.ids["event"])
        assert result.result in ("ADMITTED", "ALREADY_USED")

    @rule(
        type_name=st.sampled_from(["ga", "vip"]),
        pay=st.sampled_from(["cash", "ok", "timeout"]),
    )
    def purchase_meets_busy_database(self, type_name, pay):
        """busy_after_charge: the error names order and key; nothing is lost or doubled."""
        req = self._request(type_name, 1, pay)
        faults.arm("busy_after_charge")
        try:
            orders.purchase(self.s, req)
        except TicketHubError as err:
            if err.code == ErrorCode.DB_BUSY:
                assert err.order_id is not None and err.details["idempotency_key"]
                self.busy_keys.append(err.details["idempotency_key"])
                self.requests[err.details["idempotency_key"]] = (type_name, 1, pay)
            else:
                assert err.code == ErrorCode.SOLD_OUT, err
        finally:
            faults.arm("")

    @rule(data=st.data())
    def retry_after_busy(self, data):
        if not self.busy_keys:
            return
        key = data.draw(st.sampled_from(self.busy_keys))
        req = self._request(*self.requests[key], key)
        try:
            result = orders.purchase(self.s, req)
        except TicketHubError as err:
            assert err.code in (ErrorCode.PAYMENT_UNKNOWN, ErrorCode.PAYMENT_DECLINED), err
        else:
            assert result.replayed is True

    @rule(minutes=st.sampled_from([0.5, 2, 20]))
    def time_passes(self, minutes):
        self.offset += minutes * 60
        clock.set_offset(self.offset)

    @rule(
        oid=order_ids,
        status=st.sampled_from(["succeeded", "failed"]),
        right_amount=st.booleans(),
    )
    def callback(self, oid, status, right_amount):
        total = orders.get_order(self.s, oid)["total_minor"]
        self.callback_no += 1
        body = {
            "id": f"cb{self.callback_no}",
            "order_id": oid,
            "status": status,
            "amount_minor": total if right_amount else total + 1,
        }
        payload = json.dumps(body).encode()
        self._deliver(payload, right_amount)
        self.sent.append(payload)
        self._note(oid)

    @rule(data=st.data())
    def repeat_callback(self, data):
        if not self.sent:
            return
        payload = data.draw(st.sampled_from(self.sent))
        oid = json.loads(payload)["order_id"]
        before = self._status(oid)
        self._deliver(payload, right_amount=None)
        assert self._status(oid) == before  # a repeated callback id is a no-op

    def _deliver(self, payload: bytes, right_amount: bool | None) -> None:
        try:
            callbacks.handle(self.s, payload, callbacks.sign(payload, SECRET))
        except TicketHubError as err:
            assert err.code == ErrorCode.AMOUNT_MISMATCH and right_amount is not True, err

    @rule()
    def reconcile_now(self):
        reconcile.reconcile(self.s, 0)
        assert reconcile.reconcile(self.s, 0) == []

    @rule(oid=order_ids)
    def reconcile_one(self, oid):
        before = self._status(oid)
        reconcile.reconcile(self.s, order_id=oid)
        assert reconcile.reconcile(self.s, order_id=oid) == []
        if before in FINAL:
            assert self._status(oid) == before
        self._note(oid)

    @invariant()
    def provider_never_holds_two_captures_for_one_paid_order(self):
        rows = self.s.conn.execute(
            "SELECT order_id, count(*) FROM mockpay_charges WHERE status = 'captured'"
            " GROUP BY order_id HAVING count(*) > 1"
        ).fetchall()
        assert rows == []

    # --------------------------------------------------------------------- invariants

    @invariant()
    def doctor_is_happy(self):
        assert doctor.check(self.s) == []

    @invariant()
    def final_states_stay_final(self):
        for oid, seen in self.known_status.items():
            now = self._status(oid)
            if seen in FINAL:
                assert now == seen, (oid, seen, now)
            if seen == "PAID":
                assert now in ("PAID", "CANCELLED")

    @invariant()
    def one_order_per_key(self):
        rows = self.s.conn.execute(
            "SELECT count(*) FROM orders GROUP BY idempotency_key HAVING count(*) > 1"
        ).fetchall()
        assert rows == []


def test_box_office(make_db, backend):
    """The machine on each backend: every example starts on an empty box office of its
    own (on PostgreSQL one database emptied again; TICKETHUB_STATEFUL_EXAMPLES sets the
    count on both)."""
    default = "30" if backend == "sqlite" else "20"
    fresh = reusable_db(make_db, backend)
    run_state_machine_as_test(
        lambda: BoxOffice(fresh),
        settings=settings(
            max_examples=int(os.environ.get("TICKETHUB_STATEFUL_EXAMPLES", default)),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
