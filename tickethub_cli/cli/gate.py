"""At the gate: `validate`, the scanner loop `gate`, `checkin undo`, `ticket show|export`,
and the event `report`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import render
from .base import app
from .common import globals_of, is_json, output, session

if TYPE_CHECKING:
    from ..checkin import Counters, ScanResult

checkin_app = typer.Typer(help="Undo a mistaken admission.", no_args_is_help=True)
ticket_app = typer.Typer(
    help="Show tickets with their QR code; export images.", no_args_is_help=True
)
app.add_typer(checkin_app, name="checkin")
app.add_typer(ticket_app, name="ticket")

EventOpt = Annotated[str, typer.Option("--event", "-e", help="The event being admitted.")]
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


def _line(result: ScanResult) -> str:
    """The plain answer line (a pipe, a log): escaped, since the first gate of an
    ALREADY_USED ticket is stored text."""
    word = "WOULD ADMIT" if result.dry_run and result.admitted else result.result
    text = f"{word:<12} {result.code}"
    if result.error is not None:
        text += f"  {result.error['message']} [{result.error['code']}]"
    elif result.result == "ALREADY_USED":
        text += f"  first used {result.first_used_at} at gate {result.gate or '-'}"
    elif result.ticket_id is not None:
        text += f"  ticket {result.ticket_id}"
    return render.safe_text(text)


def _panel(result: ScanResult, counters: Counters | None = None) -> None:
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
        body.append_text(
            render.text(f"first used {result.first_used_at} at gate {result.gate or '-'}")
        )
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


def _show_scan(result: ScanResult, counters: Counters | None = None) -> None:
    """A committed scan's answer for a person: the panel, or the plain line if drawing it
    fails (an admission that is not shown turns its holder away on the re-scan)."""
    render.human_or_plain(lambda: _panel(result, counters), result.to_json())


@app.command(
    "validate",
    epilog="Example: `tickethub validate K7QF-3M2A-98XC-TP4D-ZN6W-R2BE --event 1 --gate north`"
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
    elif sys.stdout.isatty():
        _show_scan(result)
    else:
        render.line(_line(result))
    raise typer.Exit(result.exit_code)


@app.command(
    "gate",
    epilog="Example: `tickethub gate --event 1 --gate north` then scan; Ctrl-D or Ctrl-C ends"
    " with a summary. Scripts: `tickethub --json gate --event 1 < codes.txt`",
)
def gate_cmd(ctx: typer.Context, event: EventOpt, gate: GateOpt = None) -> None:
    """The scanner loop: one code per line on stdin, each answered at once (a big ADMIT or
    REJECT on a terminal, one JSON line each with --json). Exits 0 with a summary."""
    from ..checkin import Counters

    g = _gate(ctx, event, gate)
    counters = Counters()
    as_json, tty = is_json(ctx), sys.stdout.isatty()
    if tty and not as_json:
        render.line(f"gate {g.gate or '-'} for event {g.event_id}: scan a code (Ctrl-D to end)")
    try:
        for group in _line_groups(sys.stdin):
            raws = [raw for raw in group if raw.strip()]
            if not raws:
                continue
            with _ctrl_c_after_answer():
                results = g.answer_many(raws)
                _answer(results, counters, as_json=as_json, tty=tty)
    except KeyboardInterrupt:
        pass
    summary = counters.to_json()
    if as_json:
        render.emit_json({"summary": summary})
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

        return RemoteGate(Remote(g.server, g.token), event, gate, dry_run=dry_run)
    from ..checkin import Gate

    return Gate(session(ctx), event, gate, dry_run=dry_run)


def _answer(results: list[ScanResult], counters: Counters, *, as_json: bool, tty: bool) -> None:
    """Print the answers of one committed group, in input order."""
    for result in results:
        counters.add(result)
        if tty and not as_json:
            _show_scan(result, counters)  # the running totals as of this scan
    if as_json:
        sys.stdout.write("".join(render.dumps(r.to_json()) + "\n" for r in results))
        sys.stdout.flush()
    elif not tty:
        print("\n".join(_line(r) for r in results), flush=True)


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
    epilog="Example: `tickethub checkin undo K7QF-3M2A-98XC-TP4D-ZN6W-R2BE --event 1 "
    "--reason 'scanned the wrong wristband'`",
)
def checkin_undo(
    ctx: typer.Context,
    code: Annotated[str, typer.Argument(metavar="CODE")],
    event: EventOpt,
    reason: Annotated[str | None, typer.Option("--reason", help="Why, for the audit log.")] = None,
) -> None:
    """Revert a mistaken admission (audited with operator and reason)."""
    from ..checkin import undo

    done = undo(session(ctx), code, event, reason=reason)
    output(
        ctx,
        done,
        lambda: render.line(f"ticket {done['ticket_id']} ({done['code']}) is no longer checked in"),
    )


def _ticket_or_fail(ctx: typer.Context, code: str) -> dict[str, Any]:
    from .. import codes
    from ..errors import invalid, not_found
    from ..tickets import get_by_code

    if not codes.is_well_formed(codes.canonical(code[:4096])):
        raise invalid("not a well-formed ticket code (mistyped?)")
    ticket = get_by_code(session(ctx).conn, code)
    if ticket is None:
        raise not_found("ticket", codes.pretty(codes.canonical(code)))
    return ticket


@ticket_app.command("show", epilog="Example: `tickethub ticket show K7QF-3M2A-98XC-TP4D-ZN6W-R2BE`")
def ticket_show(ctx: typer.Context, code: Annotated[str, typer.Argument(metavar="CODE")]) -> None:
    """Show a ticket with its QR code."""
    from .. import codes, qr

    ticket = _ticket_or_fail(ctx, code)

    def human() -> None:
        render.fields(
            f"Ticket {ticket['id']}",
            [
                ("code", ticket["code"]),
                ("event", f"{ticket['event_name']} ({ticket['starts_at']})"),
                ("type", ticket["type_name"]),
                ("order", ticket["order_id"]),
                ("status", ticket["status"]),
                ("checked in", ticket["checked_in_at"] or "-"),
            ],
            style="green" if ticket["status"] == "valid" else "red",
        )
        sys.stdout.write(qr.terminal_text(codes.canonical(ticket["code"])))

    output(ctx, {"ticket": ticket}, human)


@ticket_app.command(
    "export",
    epilog="Example: `tickethub ticket export --order 12 --dir ./print --format svg`",
)
def ticket_export(
    ctx: typer.Context,
    order: Annotated[str, typer.Option("--order", help="Order whose tickets to export.")],
    directory: Annotated[str, typer.Option("--dir", help="Folder for the images.")],
    fmt: Annotated[str, typer.Option("--format", help="png or svg.")] = "png",
) -> None:
    """Write one printable QR image per valid ticket of an order."""
    from .. import orders, qr
    from ..errors import invalid

    if fmt not in qr.FORMATS:
        raise invalid("--format must be png or svg")
    found = orders.get_order(session(ctx), order)
    valid = [t for t in found["tickets"] if t["status"] == "valid"]
    if not valid:
        raise invalid(f"order {found['id']} has no valid tickets to print")
    files = qr.export(valid, directory, fmt=fmt)
    output(ctx, {"files": files}, lambda: [render.line(f) for f in files])


@app.command(
    "report", epilog="Example: `tickethub report --event 1` · `tickethub report -e 1 --csv`"
)
def report_cmd(
    ctx: typer.Context,
    event: EventOpt,
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
    event, cur = data["event"], data["event"]["currency"]
    render.table(
        f"Report: {event['name']} ({event['starts_at']})",
        ("type", "capacity", "sold", "held", "available", "revenue", "checked in"),
        [
            *[
                [
                    r["name"],
                    r["capacity"],
                    r["sold"],
                    r["held"],
                    r["available"],
                    f"{r['revenue']} {cur}",
                    r["checked_in"],
                ]
                for r in data["ticket_types"]
            ],
            [
                "TOTAL",
                *(data["totals"][k] for k in ("capacity", "sold", "held", "available")),
                f"{data['totals']['revenue']} {cur}",
                data["totals"]["checked_in"],
            ],
        ],
        numeric=("capacity", "sold", "held", "available", "revenue", "checked in"),
    )
    render.table(
        "Scans", list(data["scans"]), [list(data["scans"].values())], numeric=list(data["scans"])
    )
    buckets = data["admissions_per_15min"]
    if buckets:
        top = max(b["admitted"] for b in buckets)
        render.table(
            "Admissions per 15 minutes",
            ("from", "admitted", ""),
            [
                [b["start"], b["admitted"], "█" * max(1, round(30 * b["admitted"] / top))]
                for b in buckets
            ],
            numeric=("admitted",),
        )
    if data["multi_gate_codes"]:
        render.table(
            "Codes tried at several gates",
            ("ticket", "gates", "attempts"),
            [
                [m["ticket_id"] or f"unknown {m['code']}", ", ".join(m["gates"]), m["attempts"]]
                for m in data["multi_gate_codes"]
            ],
        )
