"""`event …` and `ticket-type …`: what an organizer sets up."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import clock, events, render
from .base import app
from .common import output, session

event_app = typer.Typer(help="Create, correct, call off and inspect events.", no_args_is_help=True)
type_app = typer.Typer(help="Ticket types of an event: price, capacity.", no_args_is_help=True)
app.add_typer(event_app, name="event")
app.add_typer(type_app, name="ticket-type")


def _show_event(event: dict[str, Any]) -> None:
    render.fields(
        f"Event {event['id']}",
        [
            ("name", event["name"]),
            ("starts at", clock.local_text(event["starts_at"], event["timezone"], weekday=True)),
            ("venue", event["venue"] or "-"),
            ("time zone", event["timezone"]),
            ("currency", event["currency"]),
            *([("status", event["status"])] if event["status"] != "on_sale" else []),
            *([("why", event["cancel_reason"])] if event.get("cancel_reason") else []),
        ],
    )
    if event.get("ticket_types"):
        render.table(
            "Ticket types",
            render.TICKET_TYPE_COLUMNS,
            render.ticket_type_rows(event["ticket_types"]),
        )


def _show_types(types: list[dict[str, Any]], title: str) -> None:
    render.table(title, render.TICKET_TYPE_COLUMNS, render.ticket_type_rows(types))


def _type_title(tt: dict[str, Any], verb: str) -> str:
    """ "Ticket type VIP (#7) added to Jazz Night (#1)" (the names come with the type)."""
    what = render.named(tt["name"], tt["id"])
    if tt.get("event_name"):
        return f"Ticket type {what} {verb} {render.named(tt['event_name'], tt['event_id'])}"
    return f"Ticket type {what} {verb} event {tt['event_id']}"


@event_app.command(
    "create",
    epilog="Example: `tickethub event create --name 'Jazz Night' "
    "--starts-at 2027-06-01T20:00:00+02:00 --venue 'Blue Hall' --currency EUR"
    " --timezone Europe/Berlin`",
)
def event_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Event name.")],
    starts_at: Annotated[
        str, typer.Option("--starts-at", help="ISO 8601 with offset, e.g. 2027-06-01T20:00:00Z.")
    ],
    venue: Annotated[str | None, typer.Option("--venue", help="Where it happens.")] = None,
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code.")] = "EUR",
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="IANA zone for local times, e.g. Europe/Berlin (default UTC); --starts-at may"
            " then be the local time.",
        ),
    ] = None,
) -> None:
    """Create an event."""
    event = events.create_event(
        session(ctx),
        name=name,
        starts_at=starts_at,
        venue=venue,
        currency=currency,
        timezone=timezone,
    )
    output(ctx, {"event": event}, lambda: _show_event(event))


@event_app.command(
    "update",
    epilog="Example: `tickethub event update 1 --starts-at 2027-06-02T20:00:00+02:00"
    " --venue 'Green Hall'`",
)
def event_update(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")],
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    starts_at: Annotated[
        str | None,
        typer.Option("--starts-at", help="New time: ISO 8601 with offset, or the local time."),
    ] = None,
    venue: Annotated[str | None, typer.Option("--venue", help="New venue ('' clears it).")] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone, e.g. Europe/Berlin.")
    ] = None,
) -> None:
    """Correct an event: rename, reschedule, move or set its time zone (not its currency)."""
    event = events.update_event(
        session(ctx), event_id, name=name, starts_at=starts_at, venue=venue, timezone=timezone
    )
    output(ctx, {"event": event}, lambda: _show_event(event))


@event_app.command("list", epilog="Example: `tickethub --json event list`")
def event_list(ctx: typer.Context) -> None:
    """List events with their capacity, sold, held and available seats."""
    rows = events.list_events(session(ctx))

    def human() -> None:
        if not rows:
            render.line("no events yet: create one with `tickethub event create`")
            return
        render.table("Events", render.EVENT_COLUMNS, render.event_rows(rows))

    output(ctx, {"events": rows}, human)


@event_app.command("show", epilog="Example: `tickethub event show 1`")
def event_show(
    ctx: typer.Context, event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")]
) -> None:
    """Show one event with capacity, sold, held and available per ticket type."""
    event = events.get_event(session(ctx), event_id)
    output(ctx, {"event": event}, lambda: _show_event(event))


@event_app.command(
    "cancel",
    epilog="Examples: `tickethub event cancel 1 --reason 'storm warning' --dry-run` (who gets"
    " what back; nothing changes) · `tickethub event cancel 1 --reason 'storm warning' --yes`"
    " (run it again after a crash: it goes on, and never refunds twice)",
)
def event_cancel(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the audit log.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get what back; change nothing.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask first (a terminal asks).")
    ] = False,
) -> None:
    """Call an event off: every PAID order refunded once, every ticket void, every hold
    released, and no more sales. On a terminal it shows what it will do and asks first."""
    import sys

    from ..event_cancel import cancel_event, preview
    from .common import is_json

    if dry_run or (not yes and sys.stdin.isatty() and not is_json(ctx)):
        plan = preview(session(ctx), event_id)
        if dry_run:
            output(ctx, plan, lambda: _show_plan(plan))
            return
        _show_plan(plan)
        if not typer.confirm("Call it off now?", default=False):
            render.line("nothing changed")
            raise typer.Exit(1)
    bar = None
    if not is_json(ctx) and sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(console=render.console(stderr=True), transient=True)
    if bar is None:
        result = cancel_event(session(ctx), event_id, reason=reason)
    else:
        with bar:
            task = bar.add_task("refunding and voiding", total=None)
            result = cancel_event(
                session(ctx),
                event_id,
                reason=reason,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )

    def human() -> None:
        event = result["event"]
        if result.get("already_cancelled"):
            render.line(
                f"{render.named(event['name'], event['id'])} was already called off"
                f" ({event['cancel_reason'] or 'no reason given'}): nothing left to refund",
                wrap=True,
            )
            return
        render.line(
            f"{render.named(event['name'], event['id'])}: {event['status']};"
            f" {len(result['cancelled_orders'])} order(s) cancelled now"
            f" (holds released: {result.get('holds_released', 0)})",
            wrap=True,
        )
        _refund_summary(result.get("refunds", []), event["currency"], event["id"])
        if result["left"]:
            render.line(
                f"{len(result['left'])} order(s) still have a payment being taken:"
                " run the same command again in a moment",
                wrap=True,
            )

    output(ctx, result, human)


SHOWN_REFUNDS = 20  # per-order lines after an event cancel; the totals cover the rest


def _show_plan(plan: dict[str, Any]) -> None:
    """What `event cancel` would do: money back by method, then per order with its buyer."""
    event, cur = plan["event"], plan["event"]["currency"]
    paid = len(plan["orders"]) - plan["holds"]
    render.line(
        f"calling off {render.named(event['name'], event['id'])} would cancel {paid} paid"
        f" order(s) and release {plan['holds']} hold(s):"
        f" {render.amount(plan['card_minor'], cur)} back to cards,"
        f" {render.amount(plan['cash_minor'], cur)} to hand back in cash",
        style="bold",
        wrap=True,
    )
    for o in plan["orders"][:SHOWN_REFUNDS]:
        money = [
            f"{render.amount(o[k], cur)} {how}"
            for k, how in (("card_minor", "to card"), ("cash_minor", "cash"))
            if o[k]
        ]
        what = ", ".join(money) if money else "hold released, nothing paid"
        render.line(f"  order {o['order_id']} ({o['buyer'] or 'walk-in'}): {what}")
    if len(plan["orders"]) > SHOWN_REFUNDS:
        render.line(f"  … {len(plan['orders']) - SHOWN_REFUNDS} more")


def _refund_summary(refunds: list[dict[str, Any]], currency: str, event_id: int) -> None:
    """The money given back by a cancellation: totals by method, then what to do per order
    (a cash refund is handed over by a person, so each one is named)."""
    if not refunds:
        render.line("no money was taken for these orders; nothing to give back")
        return
    card = sum(r["amount_minor"] for r in refunds if r["method"] == "card")
    cash = sum(r["amount_minor"] for r in refunds if r["method"] != "card")
    parts = []
    if card:
        parts.append(f"{render.amount(card, currency)} refunded to cards")
    if cash:
        parts.append(f"{render.amount(cash, currency)} to hand back in cash")
    render.line("money: " + "; ".join(parts), style="bold", wrap=True)
    for r in refunds[:SHOWN_REFUNDS]:
        render.line(f"  order {r['order_id']}: {r['what']}", wrap=True)
    if len(refunds) > SHOWN_REFUNDS:
        render.line(
            f"  … {len(refunds) - SHOWN_REFUNDS} more: see `tickethub order list --event"
            f" {event_id} --status CANCELLED --all` and `tickethub order show ID`",
            wrap=True,
        )


@type_app.command(
    "add",
    epilog="Example: `tickethub ticket-type add 1 --name Standing --price 25.00 "
    "--capacity 300 --max-per-order 6`",
)
def type_add(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")],
    name: Annotated[str, typer.Option("--name", help="Ticket type name.")],
    price: Annotated[str, typer.Option("--price", help="Decimal in the event's currency.")],
    capacity: Annotated[str, typer.Option("--capacity", help="Seats, 0 to 10,000,000.")],
    max_per_order: Annotated[
        str | None, typer.Option("--max-per-order", help="Most per order (1-1000; default 1000).")
    ] = None,
) -> None:
    """Add a ticket type to an event."""
    tt = events.add_ticket_type(
        session(ctx),
        event_id,
        name=name,
        price=price,
        capacity=capacity,
        max_per_order=max_per_order,
    )
    output(ctx, {"ticket_type": tt}, lambda: _show_types([tt], _type_title(tt, "added to")))


@type_app.command(
    "update",
    epilog="Example: `tickethub ticket-type update 3 --capacity 350 --price 27.50`",
)
def type_update(
    ctx: typer.Context,
    type_id: Annotated[str, typer.Argument(metavar="TYPE_ID")],
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    price: Annotated[str | None, typer.Option("--price", help="New price (future sales).")] = None,
    capacity: Annotated[
        str | None, typer.Option("--capacity", help="Not below sold + held.")
    ] = None,
    max_per_order: Annotated[
        str | None, typer.Option("--max-per-order", help="Most per order (1-1000).")
    ] = None,
    sales: Annotated[
        str | None, typer.Option("--sales", help="open or closed (closed: no new sales).")
    ] = None,
) -> None:
    """Change a ticket type; capacity can never drop below what is sold and held."""
    tt = events.update_ticket_type(
        session(ctx),
        type_id,
        name=name,
        price=price,
        capacity=capacity,
        max_per_order=max_per_order,
        sales=sales,
    )
    output(ctx, {"ticket_type": tt}, lambda: _show_types([tt], _type_title(tt, "updated in")))


@type_app.command("list", epilog="Example: `tickethub ticket-type list 1`")
def type_list(
    ctx: typer.Context, event_id: Annotated[str, typer.Argument(metavar="EVENT_ID")]
) -> None:
    """List the ticket types of an event."""
    event = events.get_event(session(ctx), event_id)
    types = event["ticket_types"]
    output(
        ctx,
        {"ticket_types": types},
        lambda: _show_types(types, f"Ticket types of {render.named(event['name'], event['id'])}"),
    )
