"""At the gate: `validate`, the scanner loop `gate`, `checkin undo`, `ticket show|export`,
and the event `report`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import render
from .base import app
from .common import globals_of, is_json, output, session
from .errors import result_exit_code

if TYPE_CHECKING:
    from ..checkin import Counters, Gate, ScanResult
    from .gate_screen import GateScreen

checkin_app = typer.Typer(help="Undo a mistaken admission.", no_args_is_help=True)
ticket_app = typer.Typer(
    help="Show tickets with their QR code; export images.", no_args_is_help=True
)
app.add_typer(checkin_app, name="checkin")
app.add_typer(ticket_app, name="ticket")

EventOpt = Annotated[
    str, typer.Option("--event", "-e", metavar="EVENT_ID", help="The event being admitted.")
]
GateOpt = Annotated[str | None, typer.Option("--gate", "-g", help="Gate name for the log.")]
MAX_LINE_BYTES = 65536  # no scanner types more; a longer line is answered once, cut
REASONS = {
    "ADMITTED": "valid ticket",
    "ALREADY_USED": "already used",
    "UNKNOWN": "no such ticket",
    "WRONG_EVENT": "ticket for another event",
    "VOID": "ticket cancelled",
    "MALFORMED": "mistyped or not a ticket code",
    "ERROR": "not checked: scan again",
}


def _first_used(result: ScanResult, zone: str | None = "UTC") -> str:
    """ "first used 20:39 CET at gate North": local to the event, to the minute (the date
    too when it was not today there)."""
    return f"first used {render.moment(result.first_used_at, zone)} at gate {result.gate or '-'}"


def _line(result: ScanResult, zone: str | None = "UTC", about: str | None = None) -> str:
    """The plain answer line (a pipe, a log): escaped, since the first gate of an
    ALREADY_USED ticket is stored text. `about`: the ticket in words (type, holder)."""
    word = "WOULD ADMIT" if result.dry_run and result.admitted else result.result
    text = f"{word:<12} {result.code}"
    if result.error is not None:
        text += f"  {result.error['message']} [{result.error['code']}]"
    elif result.result == "ALREADY_USED":
        text += f"  {_first_used(result, zone)}"
    elif result.ticket_id is not None:
        text += f"  ticket {result.ticket_id}"
    if about and result.error is None:
        text += f" · {about}"
    return render.safe_text(text)


def _panel(
    result: ScanResult,
    counters: Counters | None = None,
    zone: str | None = "UTC",
    about: str | None = None,
) -> None:
    from rich.text import Text

    ok = result.admitted
    word = "ADMIT" if ok else "REJECT"
    if result.dry_run:  # a trial scan must never look like an admission
        word = f"WOULD {word}"
    body = Text(word, style="bold white", justify="center")
    label = result.error["code"] if result.error is not None else result.result
    body.append(f"\n{REASONS[result.result]} ({label})", style="bold")
    if result.result == "ALREADY_USED":  # the first gate is stored text: escaped, literal
        body.append("\n")
        body.append_text(render.text(_first_used(result, zone)))
    if about and result.error is None:
        body.append("\n")
        body.append_text(render.text(about))
    body.append("\n")
    body.append_text(render.text(result.code, "dim"))
    if counters is not None:
        rejected = counters.scanned - counters.admitted
        body.append(
            f"\nscanned {counters.scanned} · admitted {counters.admitted} · rejected {rejected}",
            style="dim",
        )
    render.panel(body, style="on green" if ok else "on red")
    if not ok:
        render.console().bell()


def _show_scan(
    result: ScanResult,
    counters: Counters | None = None,
    zone: str | None = "UTC",
    about: str | None = None,
) -> None:
    """A committed scan's answer for a person: the panel, or the plain line if drawing it
    fails (an admission that is not shown turns its holder away on the re-scan)."""
    render.human_or_plain(lambda: _panel(result, counters, zone, about), result.to_json())


def _scan_context(ctx: typer.Context, result: ScanResult, event: str) -> tuple[str, str | None]:
    """The gate event's zone and the ticket in words ("VIP (#7) · Ann Example", or the
    other event for WRONG_EVENT), for one `validate` answer. Read after the scan was
    committed, so a failure here must not hide the answer: it falls back to UTC and ids."""
    from .. import events
    from ..tickets import show

    if globals_of(ctx).server is not None:  # the names are on the server, not in a file here
        return "UTC", None
    zone = "UTC"
    try:
        s = session(ctx)
        zone = events.brief(s, event)["timezone"]
        if result.ticket_id is None:
            return zone, None
        ticket = show(s, result.code)
        if result.result == "WRONG_EVENT":
            return zone, f"for {render.named(ticket['event_name'], ticket['event_id'])}"
        holder = ticket.get("buyer") or ticket.get("email")
        about = render.named(ticket["type_name"], ticket["ticket_type_id"])
        return zone, f"{about} · {holder}" if holder else about
    except Exception:  # noqa: BLE001 - the committed answer matters more than its names
        return zone, None


@app.command(
    "validate",
    epilog="Example: `tickethub validate K7QF-3M2A-98XC-TP4D-ZN6W-R2B6 --event 1 --gate north`"
    " (exit 0 admitted; 10-14 rejected)",
)
def validate_cmd(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(metavar="CODE", help="Case, spaces and dashes ignored.")],
    event: EventOpt,
    gate: GateOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Answer as a real scan would; admit nothing.")
    ] = False,
) -> None:
    """Check one code and admit it once. The outcome is printed whatever the exit code:
    ADMITTED 0, ALREADY_USED 10, UNKNOWN 11, WRONG_EVENT 12, VOID 13, MALFORMED 14."""
    result = _gate(ctx, event, gate, dry_run=dry_run).scan(code)
    if is_json(ctx):
        render.emit_json(result.to_json())
        raise typer.Exit(result_exit_code(result.result))
    zone, about = _scan_context(ctx, result, event)
    if sys.stdout.isatty():
        _show_scan(result, zone=zone, about=about)
    else:
        render.line(_line(result, zone, about))
    raise typer.Exit(result_exit_code(result.result))


@app.command(
    "gate",
    epilog="Example: `tickethub gate --event 1 --gate north` then scan; Ctrl-D or Ctrl-C ends"
    " with a summary. Scripts: `tickethub --json gate --event 1 < codes.txt`",
)
def gate_cmd(
    ctx: typer.Context,
    event: EventOpt,
    gate: GateOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="A trial: answer as real scans would; admit nothing."),
    ] = False,
) -> None:
    """The scanner loop: one code per line on stdin, each answered at once. On a terminal,
    one result at a time, full screen: a huge ADMIT or REJECT with a shape, the reason, the
    ticket type and holder, running totals. One JSON line each with --json; one plain line
    each when the output is not a terminal. Exits 0 with a summary."""
    from ..checkin import Counters

    g = _gate(ctx, event, gate, dry_run=dry_run)
    counters = Counters()
    as_json, tty = is_json(ctx), sys.stdout.isatty()
    name, zone = (None, "UTC") if as_json else _event_facts(g)
    label = f"{name} (event {g.event_id})" if name is not None else f"event {g.event_id}"
    full = tty and not as_json and _full_screen()
    screen = _open_screen(g, counters, name, zone) if full else None
    if tty and not as_json and screen is None:
        render.line(f"gate {g.gate or '-'} for {label}: scan a code (Ctrl-D to end)")
    interrupted = False
    try:
        with screen or nullcontext():
            for group in _line_groups(sys.stdin):
                raws = [raw for raw in group if raw.strip()]
                if not raws:
                    continue
                with _ctrl_c_after_answer():
                    results = g.answer_many(raws)
                    if screen is not None:
                        _show_on_screen(g, results, counters, screen)
                    else:
                        _answer(results, counters, as_json=as_json, tty=tty, zone=zone)
    except KeyboardInterrupt:
        interrupted = True
    if interrupted and tty and not as_json and screen is None:
        sys.stdout.write("\n")  # the terminal echoed ^C: the summary starts on its own line
    summary = counters.to_json()
    if as_json:
        render.emit_json({"summary": summary})
    elif tty:  # one row per count, in words: readable at any terminal width
        words = {"scanned": "scanned", "admitted": "admitted", "errors": "not checked"}
        pairs = [(words.get(k) or f"{REASONS[k]} ({k})", v) for k, v in summary.items()]
        title = f"Gate summary: {label}, gate {g.gate or '-'}"
        render.human_or_plain(lambda: render.fields(title, pairs), {"summary": summary})
    else:
        render.human_or_plain(
            lambda: render.table(
                "Gate summary", list(summary), [list(summary.values())], numeric=list(summary)
            ),
            {"summary": summary},
        )


def _gate(ctx: typer.Context, event: str, gate: str | None, *, dry_run: bool = False) -> Any:
    """The local gate on the file, or (with --server) the same gate over HTTP."""
    g = globals_of(ctx)
    if g.server is not None:
        from ..http.client import Remote, RemoteGate

        remote = Remote(g.server, g.token)
        if remote.insecure:
            sys.stderr.write(
                "warning: --server is plain http to another machine: the token and the"
                " codes travel unencrypted (use https, or a server on this machine)\n"
            )
        return RemoteGate(remote, event, gate, dry_run=dry_run)
    from ..checkin import Gate

    return Gate(session(ctx), event, gate, dry_run=dry_run)


def _full_screen() -> bool:
    """A person at a terminal: codes typed (or scanned) into it and answers shown on it, on
    a terminal that can draw a screen. Codes piped in get one panel per scan instead."""
    console = render.console()
    return sys.stdin.isatty() and console.is_terminal and not console.is_dumb_terminal


def _event_facts(g: Gate) -> tuple[str | None, str]:
    """The event's name (None if it cannot be read, e.g. on a remote gate) and IANA zone,
    read once when the gate starts: people read its name and its local times. The name is
    stored text, made safe where printed."""
    from ..checkin import event_label

    try:
        return event_label(g.s, g.event_id)
    except Exception:  # noqa: BLE001 - a label must never end the gate: the id will do
        return None, "UTC"


def _open_screen(g: Gate, counters: Counters, name: str | None, zone: str) -> GateScreen:
    """The full-screen view, for a person scanning at a terminal (stdin and stdout both
    on it). Imported here only: pyfiglet and the drawing code load for this use alone."""
    from zoneinfo import ZoneInfo

    from .. import clock
    from .gate_screen import GateScreen, View

    try:
        tz = ZoneInfo(zone)  # times at the gate are the event's local times
    except Exception:  # noqa: BLE001 - times without a zone will do
        tz = None
    view = View(g.event_id, name or "?", g.gate, counters, clock.now_us(), dry_run=g.dry_run, tz=tz)
    return GateScreen(render.console(), view)


def _answer(
    results: list[ScanResult],
    counters: Counters,
    *,
    as_json: bool,
    tty: bool,
    zone: str | None = "UTC",
) -> None:
    """Print the answers of one committed group, in input order."""
    for result in results:
        counters.add(result)
        if tty and not as_json:
            _show_scan(result, counters, zone=zone)  # the running totals as of this scan
    if as_json:
        sys.stdout.write("".join(render.dumps(r.to_json()) + "\n" for r in results))
        sys.stdout.flush()
    elif not tty:
        print("\n".join(_line(r, zone) for r in results), flush=True)


def _show_on_screen(
    g: Gate, results: list[ScanResult], counters: Counters, screen: GateScreen
) -> None:
    """Each committed answer, full screen, with its ticket type, holder and event read
    after the commit; if drawing fails, the plain answer instead (it must be seen)."""
    from .. import clock
    from ..checkin import describe

    with suppress(Exception):  # the names are a help; the answer must be shown anyway
        describe(g.s, results)
    for result in results:
        counters.add(result)
        now = clock.now_us()
        render.human_or_plain(lambda r=result, n=now: screen.show(r, n), result.to_json())


@contextmanager
def _ctrl_c_after_answer() -> Iterator[None]:
    """Hold Ctrl-C while a scan is judged and answered: an admission that was committed is
    always shown (else its holder would be turned away as ALREADY_USED on the re-scan).
    The held signal is delivered on leaving, and the loop ends with its summary."""
    import signal

    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, ValueError, OSError):  # no signal masks here: answer anyway
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")


def _line_groups(
    stream: Any, most: int = 256, longest: int = MAX_LINE_BYTES
) -> Iterator[list[str]]:
    """Lines from stdin in the groups they arrived in: a scanner's single line comes back
    alone and at once; lines already queued (a pipe, a burst) come back together so they
    can share one commit. A line longer than `longest` bytes (a file of garbage piped in)
    comes back once, cut to that length, and the rest of it is skipped: memory stays
    bounded whatever arrives."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    if fd is None:  # an in-memory stream (tests): one line at a time
        for line in iter(stream.readline, ""):
            yield [line.rstrip("\r\n")]
        return
    pending = b""
    skipping = False  # inside an over-long line that was already answered
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            if pending and not skipping:
                yield [_decode(pending)]
            return
        *lines, pending = (pending + chunk).split(b"\n")
        if skipping:
            if not lines:  # still no end to the over-long line
                pending = b""
                continue
            lines, skipping = lines[1:], False  # drop its tail
        if len(pending) > longest:
            lines.append(pending[:longest])
            pending, skipping = b"", True
        for i in range(0, len(lines), most):
            yield [_decode(x) for x in lines[i : i + most]]


@checkin_app.command(
    "undo",
    epilog="Example: `tickethub checkin undo H2W9-LQ4X-C7RT-5VKM-3PZ8-NAJN --event 1 "
    "--reason 'scanned the wrong wristband'`",
)
def checkin_undo(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(metavar="CODE")],
    event: Annotated[
        str,
        typer.Option("--event", "-e", metavar="EVENT_ID", help="The event it was admitted to."),
    ],
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")] = None,
) -> None:
    """Revert a mistaken admission (audited with operator and reason)."""
    from ..checkin import undo

    done = undo(session(ctx), code, event, reason=reason)

    def human() -> None:
        from .. import events

        zone = events.brief(session(ctx), event)["timezone"]
        render.line(
            f"ticket {done['ticket_id']} ({done['code']}) is no longer checked in (it was"
            f" admitted {render.moment(done['was_checked_in_at'], zone)}"
            f" at gate {done['gate'] or '-'})",
            wrap=True,
        )

    output(ctx, done, human)


def _ticket_or_fail(ctx: typer.Context, code: str) -> dict[str, Any]:
    from ..tickets import show

    return show(session(ctx), code)


@ticket_app.command("show", epilog="Example: `tickethub ticket show K7QF-3M2A-98XC-TP4D-ZN6W-R2B6`")
def ticket_show(ctx: typer.Context, code: Annotated[str, typer.Argument(metavar="CODE")]) -> None:
    """Show a ticket with its QR code."""
    from .. import codes, qr

    ticket = _ticket_or_fail(ctx, code)

    def human() -> None:
        from .. import clock, events

        zone = ticket.get("timezone") or events.brief(session(ctx), ticket["event_id"])["timezone"]
        holder = " ".join(x for x in (ticket.get("buyer"), ticket.get("email")) if x)
        checked = ticket["checked_in_at"]
        render.fields(
            f"Ticket {ticket['id']}",
            [
                ("code", ticket["code"]),
                ("event", render.named(ticket["event_name"], ticket["event_id"])),
                ("starts", clock.local_text(ticket["starts_at"], zone, weekday=True)),
                *([("venue", ticket["venue"])] if ticket.get("venue") else []),
                ("type", render.named(ticket["type_name"], ticket["ticket_type_id"])),
                ("holder", holder or "walk-in"),
                ("order", ticket["order_id"]),
                ("status", ticket["status"]),
                (
                    "checked in",
                    f"{clock.local_text(checked, zone)} at gate {ticket['checked_in_gate'] or '-'}"
                    if checked
                    else "-",
                ),
            ],
            style="green" if ticket["status"] == "valid" else "red",
        )
        sys.stdout.write(qr.terminal_text(codes.canonical(ticket["code"])))

    output(ctx, {"ticket": ticket}, human)


@ticket_app.command(
    "export",
    epilog="Example: `tickethub ticket export --order 11 --dir ./print --format pdf`",
)
def ticket_export(
    ctx: typer.Context,
    order: Annotated[str, typer.Option("--order", help="Order whose tickets to export.")],
    directory: Annotated[str, typer.Option("--dir", help="Folder for the ticket files.")],
    fmt: Annotated[str, typer.Option("--format", help="png, svg or pdf.")] = "png",
) -> None:
    """Write one printable ticket per valid ticket of an order (QR code beside the event,
    venue, local date and time, type, price, holder and the code), named ticket-ID.FMT."""
    from .. import orders, ticket_print
    from ..errors import invalid

    fmt = ticket_print.check_format(fmt)
    found = orders.get_order(session(ctx), order)
    cards = ticket_print.load(session(ctx), found["id"])
    if not cards:
        raise invalid(f"order {found['id']} has no valid tickets to print")
    files = ticket_print.export(cards, directory, fmt=fmt)
    output(ctx, {"files": files}, lambda: [render.line(f) for f in files])


@app.command(
    "report", epilog="Example: `tickethub report --event 1` · `tickethub report -e 1 --csv`"
)
def report_cmd(
    ctx: typer.Context,
    event: Annotated[
        str, typer.Option("--event", "-e", metavar="EVENT_ID", help="The event to report on.")
    ],
    csv_out: Annotated[bool, typer.Option("--csv", help="Per-type rows as CSV.")] = False,
) -> None:
    """Sales, revenue, holds and check-ins per ticket type; scans by result; admissions per
    15 minutes."""
    from ..reports import report

    data = report(session(ctx), event)
    if csv_out:
        # money in major units beside its currency: what a spreadsheet user reads
        cols = ["id", "name", "capacity", "sold", "held", "available", "revenue", "checked_in"]
        currency = data["event"]["currency"]
        render.write_csv(
            sys.stdout,
            [
                [*cols[:7], "currency", cols[7]],
                *([*(r[c] for c in cols[:7]), currency, r[cols[7]]] for r in data["ticket_types"]),
                ["", "TOTAL", *(data["totals"][c] for c in cols[2:7]), currency,
                 data["totals"]["checked_in"]],
            ],
        )  # fmt: skip
        return
    output(ctx, data, lambda: _show_report(data))


def _show_report(data: dict[str, Any]) -> None:
    from .. import clock
    from ..render import Col, Named, When

    event, cur = data["event"], data["event"]["currency"]
    zone = event.get("timezone")
    render.table(
        f"Report · event {event['id']} · {clock.local_text(event['starts_at'], zone, weekday=True)}"
        f" · {render.safe_text(event['name'])}",
        (Col("type", min_width=10), Col("seats", "num", drop=2), Col("sold", "num"),
         Col("held", "num", drop=1), Col("free", "num"), Col("revenue", "money"),
         Col("in", "num")),
        [
            *[
                [Named(r["name"], r["id"]), r["capacity"], r["sold"], r["held"], r["available"],
                 f"{r['revenue']} {cur}", r["checked_in"]]
                for r in data["ticket_types"]
            ],
            ["TOTAL", *(data["totals"][k] for k in ("capacity", "sold", "held", "available")),
             f"{data['totals']['revenue']} {cur}", data["totals"]["checked_in"]],
        ],
    )  # fmt: skip
    render.table(
        "Scans",
        (Col("result", "word"), Col("scans", "num")),
        [[result, n] for result, n in data["scans"].items()],
    )
    buckets = data["admissions_per_15min"]
    if buckets:
        top = max(b["admitted"] for b in buckets)
        bar = max(5, min(30, render.console().width - 40))
        render.table(
            "Admissions per 15 minutes",
            (Col("from", "time", shorten=1), Col("admitted", "num"), Col("", "word")),
            [
                [When(b["start"], zone), b["admitted"],
                 "█" * max(1, round(bar * b["admitted"] / top))]
                for b in buckets
            ],
        )  # fmt: skip
    if data["multi_gate_codes"]:
        render.table(
            "Codes tried at several gates",
            (Col("ticket", "word"), Col("gates", "long"), Col("attempts", "num")),
            [
                [m["ticket_id"] or f"unknown {m['code']}", ", ".join(m["gates"]), m["attempts"]]
                for m in data["multi_gate_codes"]
            ],
        )
