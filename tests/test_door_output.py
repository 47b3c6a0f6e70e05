"""The box office's human output names things (issue 11, "At the door"): names beside ids,
money in major units with its currency, times local to the event without microseconds,
tables that stay one row a line at 80 and 60 columns, refunds confirmed with their amount.

Real processes with COLUMNS set, as a person's terminal would size them (Rich honours it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from backends import BACKENDS, new_target
from rich.cells import cell_len
from support import OK_CARD, buy, tickethub_exe

import tickethub_cli as th
from tickethub_cli import events

MICROSECONDS = re.compile(r"\.\d{6}")
BERLIN = "Europe/Berlin"
LONG_NAME = "The Extremely Long Open Air Festival of the Whole Summer Season"


def run(db: str, *args: str, columns: int = 80, as_json: bool = False, code: int = 0) -> str:
    """One real process in human mode (or --json), its stdout; it must exit with `code`."""
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    env.pop("LINES", None)
    cmd = [tickethub_exe(), "--db", db, *(["--json"] if as_json else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    return done.stdout


def berlin(utc: str, form: str = "full") -> str:
    """How a person in Berlin reads a stored UTC time (worked out here, not by the code
    under test): "2027-06-01 20:00 CEST", short "06-01 20:00", or time "20:00 CEST"."""
    local = datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone(ZoneInfo(BERLIN))
    if form == "short":
        return local.strftime("%m-%d %H:%M")
    if form == "time":
        return local.strftime("%H:%M %Z")
    return local.strftime("%Y-%m-%d %H:%M %Z")


def fits(out: str, width: int | None) -> None:
    """No line wider than the terminal (None: a log line, kept whole on purpose), and no
    microseconds anywhere."""
    for line in out.splitlines():
        assert width is None or cell_len(line) <= width, (width, line)
    assert MICROSECONDS.search(out) is None, out


def body_rows(out: str, title: str) -> list[str]:
    """The data rows of the table titled `title` (between its header rule and its end)."""
    lines = out.splitlines()
    start = [line.strip() for line in lines].index(title)
    rule = next(i for i in range(start, len(lines)) if lines[i].startswith("┡"))
    end = next(i for i in range(rule, len(lines)) if lines[i].startswith("└"))
    return lines[rule + 1 : end]


@pytest.fixture(scope="module", params=BACKENDS)
def door(request, tmp_path_factory) -> dict[str, Any]:
    """A summer and a winter event in Berlin (CEST and CET), one with a very long name, a
    card sale with a named buyer and a walk-in cash sale; on each backend."""
    db = new_target(request.param, str(tmp_path_factory.mktemp("door")), "door")
    s, _, _ = th.init_session(db, operator="desk")
    jazz = events.create_event(
        s, name="Jazz Night", starts_at="2027-06-01T18:00:00Z", venue="Blue Hall", timezone=BERLIN
    )
    fest = events.create_event(
        s, name=LONG_NAME, starts_at="2027-12-01T19:00:00Z", venue="Meadow", timezone=BERLIN
    )
    vip = events.add_ticket_type(s, jazz["id"], name="VIP", price="451.25", capacity=50)
    ga = events.add_ticket_type(s, fest["id"], name="Standing", price="20", capacity=500)
    card = buy(s, [f"{vip['id']}:1"], pay="card", card=OK_CARD, name="Ann Example",
               email="ann@example.org").order  # fmt: skip
    cash = buy(s, [f"{ga['id']}:2"], pay="cash").order
    s.close()
    return {"db": db, "jazz": jazz, "fest": fest, "vip": vip, "ga": ga, "card": card,
            "cash": cash}  # fmt: skip


@pytest.mark.parametrize("width", [80, 60])
def test_event_list_keeps_each_event_on_one_line_with_its_local_time(door, width):
    out = run(door["db"], "event", "list", columns=width)
    fits(out, width)
    rows = body_rows(out, "Events")
    assert len(rows) == 2, out  # a long name is cut with "…", never folded into letters
    form = "full" if width >= 80 else "short"  # narrow: "06-01 20:00"
    summer = berlin("2027-06-01T18:00:00Z", form)
    winter = berlin("2027-12-01T19:00:00Z", form)
    assert summer in rows[0] and "Jazz Night" in rows[0], out
    assert winter in rows[1] and "…" in rows[1], out
    if width >= 80:
        assert "2027-06-01 20:00 CEST" in rows[0] and "2027-12-01 20:00 CET" in rows[1]


@pytest.mark.parametrize("width", [80, 60])
def test_order_list_keeps_each_order_on_one_line_with_its_local_time(door, width):
    out = run(door["db"], "order", "list", columns=width)
    fits(out, width)
    rows = body_rows(out, "Orders")
    assert len(rows) == 2, out
    form = "full" if width >= 80 else "short"
    for row, order in zip(rows, (door["cash"], door["card"]), strict=True):
        assert berlin(order["created_at"], form) in row, out
        assert f"{order['total']} EUR" in row, out
    assert "451.25 EUR" in rows[1] and "Ann" in rows[1]
    if width >= 80:  # room for the event: its name beside its id
        assert "(#1)" in rows[1] and "(#2)" in rows[0], out


def test_a_sale_names_the_event_the_type_and_the_buyer_in_major_units(door, tmp_path):
    out = run(door["db"], "sell", "-i", f"{door['vip']['id']}:2", "--pay", "cash",
              "--name", "Bo Buyer", "--email", "bo@example.org")  # fmt: skip
    fits(out, 80)
    assert "Jazz Night (#1)" in out
    assert f"VIP (#{door['vip']['id']})" in out
    assert "Bo Buyer" in out and "bo@example.org" in out
    assert "451.25 EUR" in out and "902.50 EUR" in out
    assert "(minor)" not in out and "90250" not in out and "45125" not in out


@pytest.mark.parametrize("width", [80, 60])
def test_order_show_names_things_and_shows_local_times(door, width):
    order = door["card"]
    out = run(door["db"], "order", "show", str(order["id"]), columns=width)
    fits(out, width)
    assert "Jazz Night (#1)" in out and f"VIP (#{door['vip']['id']})" in out
    assert "Ann Example" in out and "ann@example.org" in out
    assert "451.25 EUR" in out and "(minor)" not in out
    created = berlin(order["history"][0]["at"])
    assert re.search(r" CES?T$", created)  # Berlin's own abbreviation, not UTC
    assert created in out  # the history in the event's zone, to the minute


def test_no_human_output_shows_microseconds_or_utc_stamps(door):
    db, vip = door["db"], door["vip"]
    sale = json.loads(run(db, "sell", "-i", f"{vip['id']}:1", "--pay", "cash", as_json=True))
    code = sale["order"]["tickets"][0]["code"]
    first = run(db, "validate", code, "--event", "1", "--gate", "North")
    again = run(db, "validate", code, "--event", "1", "--gate", "South", code=10)
    used = json.loads(run(db, "ticket", "show", code, as_json=True))["ticket"]["checked_in_at"]
    assert f"first used {berlin(used, 'time')} at gate North" in again
    assert "VIP (#" in first
    for log_line in (first, again):  # off a terminal: one whole line per scan, for logs
        fits(log_line, None)
        assert len(log_line.splitlines()) == 1
    outputs = []
    for args in (
        ("ticket", "show", code),
        ("event", "show", "1"),
        ("ticket-type", "list", "1"),
        ("report", "--event", "1"),
        ("payment", "ledger"),
        ("checkin", "undo", code, "--event", "1"),
        ("order", "show", str(sale["order"]["id"])),
    ):
        outputs.append(run(db, *args))
    for out in outputs:
        fits(out, 80)
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", out), out  # no raw UTC stamp


def test_refunds_are_confirmed_with_amount_and_method(door, tmp_path):
    db = door["db"]
    out = run(db, "order", "cancel", str(door["card"]["id"]), "--reason", "asked")
    assert "refunded 451.25 EUR to card …4242" in out
    fits(out, 80)
    out = run(db, "event", "cancel", str(door["fest"]["id"]), "--reason", "storm")
    assert "40.00 EUR to hand back in cash" in out
    assert f"order {door['cash']['id']}: hand back 40.00 EUR cash" in out
    fits(out, 80)


def test_json_keeps_its_fields_and_gains_the_names(door):
    order = json.loads(run(door["db"], "order", "show", "1", as_json=True))["order"]
    assert order["event_id"] == 1 and order["event_name"] == "Jazz Night"
    assert order["timezone"] == BERLIN
    line = order["lines"][0]
    assert line["unit_price_minor"] == 45125 and line["unit_price"] == "451.25"
    assert line["ticket_type_name"] == "VIP"
    assert order["created_at"].endswith("Z")  # JSON stays UTC
    listed = json.loads(run(door["db"], "order", "list", as_json=True))["orders"]
    assert {o["event_name"] for o in listed} == {"Jazz Night", LONG_NAME}
