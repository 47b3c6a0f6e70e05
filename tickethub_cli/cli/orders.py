"""`purchase`/`sell`, `order …`, `payment callback`, `reconcile`, `doctor`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import clock, render
from ..errors import ErrorCode, TicketHubError, invalid
from ..render import Col
from .base import app
from .common import is_json, output, session

if TYPE_CHECKING:
    from ..orders import OrderResult

order_app = typer.Typer(help="Reserve, pay, inspect and cancel orders.", no_args_is_help=True)
payment_app = typer.Typer(
    help="Payment provider callbacks, and the provider's ledger.", no_args_is_help=True
)
app.add_typer(order_app, name="order")
app.add_typer(payment_app, name="payment")

STATUS_STYLE = {"PAID": "green", "PENDING": "yellow", "FAILED": "red", "CANCELLED": "magenta"}

ItemOpt = Annotated[
    list[str],
    typer.Option("--item", "-i", help="TYPE_ID:QUANTITY, repeatable.", metavar="TYPE:QTY"),
]
EmailOpt = Annotated[str | None, typer.Option("--email", help="Buyer email (optional).")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Buyer name (optional).")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", "-k", help="Retry-safe key; generated and shown when omitted."
    ),
]
PayOpt = Annotated[str | None, typer.Option("--pay", help="card or cash (required).")]
CardOpt = Annotated[
    str | None,
    typer.Option(
        "--card",
        help="Card number, with --pay card; '-' reads it from stdin (not in `ps`). Test"
        " cards: 4242424242424242 succeeds, 4000000000000002 is declined,"
        " 4000000000000119 times out (outcome unknown).",
    ),
]
HoldOpt = Annotated[
    str | None, typer.Option("--hold-minutes", help="How long the seats are held (default 15).")
]


def show_order(order: dict[str, Any], *, replayed: bool = False) -> None:
    """An order for a person: names beside ids, money with its currency, times in the
    event's own zone (the JSON keeps ids, minor units and UTC)."""
    status, zone, cur = order["status"], order.get("timezone"), order["currency"]
    event = order.get("event_name")
    name, email = order["name"], order["email"]
    buyer = f"{name} <{email}>" if name and email else name or email
    pairs = [
        ("status", status),
        ("event", render.named(event, order["event_id"]) if event else order["event_id"]),
        ("total", f"{order['total']} {cur}"),
        ("buyer", buyer or "walk-in"),
        ("paid by", order["pay_method"] or "-"),
        ("idempotency key", order["idempotency_key"]),
    ]
    if order.get("hold_expires_at"):
        pairs.append(("hold expires", clock.local_text(order["hold_expires_at"], zone)))
    if replayed:
        pairs.append(("replayed", "yes: this key was seen before; nothing was charged again"))
    render.fields(f"Order {order['id']}", pairs, style=STATUS_STYLE.get(status, "cyan"))
    render.table(
        None,
        (Col("ticket type", min_width=12), Col("qty", "num"), Col("each", "money"),
         Col("subtotal", "money")),
        [
            [
                _type_named(ln),
                ln["quantity"],
                render.amount(ln["unit_price_minor"], cur),
                render.amount(ln["unit_price_minor"] * ln["quantity"], cur),
            ]
            for ln in order["lines"]
        ],
    )  # fmt: skip
    if order.get("payments"):
        from ..payments import describe

        render.table(
            "Payments",
            (Col("id", "id"), Col("method", "word", drop=2), Col("status", "word", drop=1),
             Col("what happened", "long")),
            [
                [p["id"], p["method"], p["status"], describe(p, cur)]
                for p in order["payments"]
            ],
        )  # fmt: skip
    if order["tickets"]:
        render.table(
            "Tickets",
            (Col("id", "id", drop=2), Col("code", "word"), Col("type", min_width=12),
             Col("status", "word"), Col("checked in", "time", drop=1, shorten=3)),
            [
                [t["id"], t["code"], _type_named(t), t["status"],
                 render.When(t["checked_in_at"], zone)]
                for t in order["tickets"]
            ],
        )  # fmt: skip


def _type_named(item: dict[str, Any]) -> Any:
    """A line's or ticket's type as "VIP (#7)" (the bare id if the name is not known)."""
    name = item.get("ticket_type_name")
    return render.Named(name, item["ticket_type_id"]) if name else item["ticket_type_id"]


def _order_out(ctx: typer.Context, result: OrderResult) -> None:
    output(ctx, result.to_json(), lambda: show_order(result.order, replayed=result.replayed))


@app.command(
    "purchase",
    epilog="Examples: `tickethub purchase --item 1:2 --email ann@example.org --pay card "
    "--card 4242424242424242` · walk-in: `tickethub sell -i 1:1 --pay cash`",
)
def purchase_cmd(
    ctx: typer.Context,
    item: ItemOpt,
    pay: PayOpt = None,
    card: CardOpt = None,
    email: EmailOpt = None,
    name: NameOpt = None,
    idempotency_key: KeyOpt = None,
    hold_minutes: HoldOpt = None,
    print_dir: Annotated[
        str | None,
        typer.Option("--print-dir", help="Also write each printable ticket here."),
    ] = None,
    print_format: Annotated[
        str | None,
        typer.Option("--print-format", help="png (default), svg or pdf, with --print-dir."),
    ] = None,
) -> None:
    """Sell in one step: reserve seats, take the payment, issue tickets. Safe to retry with
    the same --idempotency-key: it never sells or charges twice."""
    from .. import orders

    req = orders.OrderRequest.parse(
        items=item,
        email=email,
        name=name,
        pay=pay,
        card=_card_text(card),
        idempotency_key=idempotency_key,
        hold_minutes=hold_minutes,
    )
    fmt = _print_format(print_dir, print_format)
    result = orders.purchase(session(ctx), req)
    if print_dir is not None:
        _print_tickets(ctx, result.order, print_dir, fmt)
    _order_out(ctx, result)


def _print_format(print_dir: str | None, print_format: str | None) -> str:
    """Refuse a bad folder or format before selling (the folder is created only after)."""
    if print_dir is None:
        if print_format is not None:
            raise invalid("--print-format needs --print-dir", hint="add --print-dir DIR")
        return ""
    from .. import qr, ticket_print

    fmt = ticket_print.check_format(
        ticket_print.DEFAULT_FORMAT if print_format is None else print_format, "print_format"
    )
    qr.check_dir(print_dir)
    return fmt


def _print_tickets(ctx: typer.Context, order: dict[str, Any], directory: str, fmt: str) -> None:
    """--print-dir (gate issue): printable tickets of the sale. The sale is done by now, so
    a printing failure, whatever it is, is reported next to the order (reprint: `ticket
    export`), never as if the sale had failed."""
    from .. import ticket_print

    try:
        files = ticket_print.export(
            ticket_print.load(session(ctx), order["id"]), directory, fmt=fmt
        )
    except Exception as exc:  # noqa: BLE001 - a committed sale is reported, whatever broke
        message = exc.message if isinstance(exc, TicketHubError) else f"cannot print: {exc!r}"
        hint = (
            f"reprint with `tickethub ticket export --order {order['id']} --dir DIR --format {fmt}`"
        )
        order["printed"], order["print_error"] = [], f"{message}; {hint}"
        if not is_json(ctx):
            render.warning(f"sold, but not printed: {order['print_error']}")
        return
    order["printed"] = files
    if not is_json(ctx):
        render.line(f"printed {len(files)} ticket(s) to {directory}")


app.command(
    "sell",
    help="Alias of `purchase`: reserve, charge and issue in one step.",
    epilog="Example: `tickethub sell -i 1:2 --pay cash`",
)(purchase_cmd)


@order_app.command(
    "create",
    epilog="Example: `tickethub order create --item 1:2 --email ann@example.org -k web-1001`",
)
def order_create(
    ctx: typer.Context,
    item: ItemOpt,
    email: EmailOpt = None,
    name: NameOpt = None,
    idempotency_key: KeyOpt = None,
    hold_minutes: HoldOpt = None,
) -> None:
    """Reserve seats as a PENDING order (no charge yet); pay it with `order pay`."""
    from .. import orders

    req = orders.OrderRequest.parse(
        items=item,
        email=email,
        name=name,
        idempotency_key=idempotency_key,
        hold_minutes=hold_minutes,
        require_pay=False,
    )
    _order_out(ctx, orders.create_order(session(ctx), req))


@order_app.command(
    "pay", epilog="Example: `tickethub order pay 12 --pay card --card 4242424242424242`"
)
def order_pay(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(metavar="ORDER_ID")],
    pay: PayOpt = None,
    card: CardOpt = None,
) -> None:
    """Charge a PENDING order and issue its tickets."""
    from .. import orders

    _order_out(ctx, orders.pay_order(session(ctx), order_id, pay=pay, card=_card_text(card)))


def _card_text(card: str | None) -> str | None:
    """`--card -`: the number comes from the first line of stdin, out of the process list."""
    if card != "-":
        return card
    line = sys.stdin.readline(64)
    return line.strip() or None


@order_app.command("show", epilog="Example: `tickethub --json order show 12`")
def order_show(
    ctx: typer.Context, order_id: Annotated[str, typer.Argument(metavar="ORDER_ID")]
) -> None:
    """Show an order with its lines, tickets and history."""
    from .. import orders

    order = orders.get_order(session(ctx), order_id)

    def human() -> None:
        show_order(order)
        render.table(
            "History",
            (Col("at", "time", shorten=2), Col("from", "word", drop=1),
             Col("to", "word"), Col("operator", min_width=6, drop=3), Col("reason", "long")),
            [
                [render.When(h["at"], order.get("timezone")), h["from"] or "-", h["to"],
                 h["operator"], h["reason"] or ""]
                for h in order["history"]
            ],
        )  # fmt: skip

    output(ctx, {"order": order}, human)


@order_app.command(
    "list",
    epilog="Examples: `tickethub order list --event 1 --status PAID` · every order as JSON:"
    " `tickethub --json order list --all`",
)
def order_list(
    ctx: typer.Context,
    event: Annotated[str | None, typer.Option("--event", help="Only this event.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="PENDING, PAID, FAILED or CANCELLED.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="How many, newest first (default 100).")
    ] = 100,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Go on from a page's next_cursor.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every matching order.")] = False,
) -> None:
    """List orders, newest first, a page at a time; says how many more there are."""
    from .. import orders

    page = orders.list_orders(
        session(ctx), event_id=event, status=status, limit=None if every else limit, cursor=cursor
    )
    rows = page["orders"]

    def human() -> None:
        if not rows:
            render.line("no orders match")
            return
        caption = None
        if page["next_cursor"] is not None:
            caption = (
                f"{len(rows)} shown of {page['total']:,}; next page:"
                f" --cursor {page['next_cursor']} (or --all)"
            )
        render.table("Orders", render.ORDER_COLUMNS, render.order_rows(rows), caption=caption)

    output(ctx, page, human)


@order_app.command(
    "cancel", epilog="Example: `tickethub order cancel 12 --reason 'customer asked'`"
)
def order_cancel(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(metavar="ORDER_ID")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Recorded in the audit log.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also when tickets were admitted (refunded; their seats stay used)."
        ),
    ] = False,
) -> None:
    """Cancel: a PENDING order releases its hold (a payment whose outcome is unknown is asked
    about first: voided, or refunded if it was taken); a PAID order is refunded, once per
    payment, and its tickets voided."""
    from .. import orders

    order = orders.cancel_order(session(ctx), order_id, reason=reason, force=force)

    def human() -> None:
        show_order(order)
        _refund_lines(order)

    output(ctx, {"order": order}, human)


def _refund_lines(order: dict[str, Any]) -> None:
    """What the cashier must know after a cancel: each amount given back, and how."""
    from ..payments import describe

    given = [p for p in order.get("payments", []) if p.get("refund")]
    for p in given:
        render.line(describe(p, order["currency"], just_now=True), style="bold")
    if not given:
        render.line("no money was taken for this order; nothing to give back")


@payment_app.command(
    "callback",
    epilog="Example: `tickethub payment callback --payload cb.json --signature "
    "$(openssl dgst -sha256 -hmac \"$TICKETHUB_WEBHOOK_SECRET\" -r cb.json | cut -d' ' -f1)`",
)
def payment_callback(
    ctx: typer.Context,
    payload: Annotated[str, typer.Option("--payload", help="File with the raw JSON ('-': stdin).")],
    signature: Annotated[
        str,
        typer.Option(
            "--signature",
            help="The TicketHub-Signature header value (t=UNIX,v1=HEX; HMAC-SHA256 of"
            " 't.payload', at most 300 s old) or the bare hex HMAC-SHA256 of the payload.",
        ),
    ],
) -> None:
    """Apply a signed provider callback (secret in TICKETHUB_WEBHOOK_SECRET). Idempotent.

    The payload: `{"id": "cb_1", "order_id": 12, "status": "succeeded" | "failed",
    "amount_minor": 5000}`; a repeated id changes nothing."""
    from .. import callbacks, settings

    settings.webhook_secret()  # missing or blank: refused before reading anything
    data = _read_payload(payload)
    order = callbacks.handle(session(ctx), data, signature)
    output(ctx, {"order": order}, lambda: show_order(order))


MAX_PAYLOAD = 1 << 20  # 1 MiB: a provider callback is a few hundred bytes


def _read_payload(path: str) -> bytes:
    """The raw payload, whole or refused: a cut payload could never match its signature,
    and reading on without a bound would let a pipe fill the memory."""
    if path == "-":
        data = sys.stdin.buffer.read(MAX_PAYLOAD + 1)
    else:
        p = Path(path)
        if not p.is_file():
            raise TicketHubError(ErrorCode.NOT_FOUND, f"payload file {path} not found")
        with p.open("rb") as fh:
            data = fh.read(MAX_PAYLOAD + 1)
    if len(data) > MAX_PAYLOAD:
        raise invalid("payload larger than 1 MiB; a provider callback is far smaller")
    return data


@payment_app.command("ledger", epilog="Example: `tickethub payment ledger --order 12`")
def payment_ledger(
    ctx: typer.Context,
    order: Annotated[str | None, typer.Option("--order", help="Only this order's charges.")] = None,
) -> None:
    """The card provider's own records (what its dashboard would show), to compare with ours."""
    from .. import ledger

    charges = ledger.charges(session(ctx), order)

    def human() -> None:
        if not charges:
            render.line("the provider holds no charges" + (f" for order {order}" if order else ""))
            return
        render.table(
            "Provider ledger",
            (Col("charge", "word"), Col("order", "id"), Col("amount", "money"),
             Col("status", "word"), Col("refunded", "money", drop=2), Col("card", "word", drop=3),
             Col("at (UTC)", "time", shorten=5, drop=1)),
            [
                [
                    c["ref"],
                    c["order_id"],
                    f"{c['amount']} {c['currency'] or ''}".strip(),
                    c["status"],
                    f"{c['refunded']} {c['currency'] or ''}".strip(),
                    f"…{c['card_last4']}" if c["card_last4"] else "",
                    render.When(c["created_at"], "UTC"),  # the provider's own clock
                ]
                for c in charges
            ],
        )  # fmt: skip

    output(ctx, {"charges": charges}, human)


@app.command(
    "reconcile",
    epilog="Examples: `tickethub reconcile --stale-after 0` · one order now: "
    "`tickethub reconcile --order 12`",
)
def reconcile_cmd(
    ctx: typer.Context,
    stale_after: Annotated[
        str, typer.Option("--stale-after", help="Seconds a worker must be silent.")
    ] = "60",
    order: Annotated[
        str | None,
        typer.Option("--order", help="Resolve this order now (asks the provider)."),
    ] = None,
) -> None:
    """Finish every order a crash or an unknown payment left open, every expired hold and
    every refund owed. Safe to run at any time and twice."""
    from .. import reconcile

    repaired = reconcile.reconcile(session(ctx), stale_after, order_id=order)

    def human() -> None:
        if not repaired:
            render.line("nothing to repair")
            return
        render.table(
            "Repaired",
            (Col("order", "id"), Col("from", "word"), Col("to", "word"), Col("why", "long")),
            [
                [r["order_id"], r["from"] or "-", r["to"] or "-",
                 f"{r['reason']}: {r['what']}" if r.get("what") else r["reason"]]
                for r in repaired
            ],
        )  # fmt: skip

    output(ctx, {"repaired": repaired}, human)


@app.command("doctor", epilog="Example: `tickethub doctor` (exit 0 healthy, 9 problems)")
def doctor_cmd(ctx: typer.Context) -> None:
    """Check every invariant on the whole database: counters, tickets, holds, audit trail."""
    from .. import doctor

    problems = doctor.check(session(ctx))
    payload = {"ok": not problems, "problems": problems}
    if is_json(ctx):
        render.emit_json(payload)
    elif not problems:
        render.line("doctor: all invariants hold", style="green")
    else:
        render.table(
            f"doctor: {len(problems)} problem(s)",
            (Col("check", min_width=12), Col("problem", "long")),
            [[p["check"], p["message"]] for p in problems],
        )
    if problems:
        raise typer.Exit(9)


@app.command("config", epilog="Example: `tickethub config --hold-minutes 20`")
def config_cmd(
    ctx: typer.Context,
    hold_minutes: Annotated[
        str | None, typer.Option("--hold-minutes", help="Default hold for new orders.")
    ] = None,
) -> None:
    """Show or change per-database settings."""
    from .. import orders

    s = session(ctx)
    if hold_minutes is not None:
        orders.set_default_hold_minutes(s, hold_minutes)
    value = orders.default_hold_minutes(s)
    output(
        ctx, {"config": {"hold_minutes": value}}, lambda: render.line(f"hold minutes: {value:g}")
    )
