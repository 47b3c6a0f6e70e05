"""Door-ready (issue 11), the parts built so far: each a real-process test."""

from __future__ import annotations

import json
import os
import subprocess

from support import count, dump, healthy, proc, seed, tickethub_exe

import tickethub_cli


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tickethub_exe(), *args], capture_output=True, text=True)


def test_version_is_printed_and_exits_0():
    done = run("--version")
    assert done.returncode == 0 and done.stdout == f"tickethub {tickethub_cli.__version__}\n"


def test_a_dry_run_says_would_admit_and_admits_nothing(make_db):
    db = make_db("door")
    ids = seed(db)
    code = proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash").json["order"]["tickets"][0][
        "code"
    ]
    trial = run("--db", db, "validate", code, "--event", str(ids["event"]), "--dry-run")
    assert trial.returncode == 0 and trial.stdout.startswith("WOULD ADMIT")
    assert "ADMITTED" not in trial.stdout
    as_json = proc(db, "validate", code, "--event", str(ids["event"]), "--dry-run")
    assert as_json.json["dry_run"] is True and as_json.json["result"] == "ADMITTED"
    real = run("--db", db, "validate", code, "--event", str(ids["event"]))
    assert real.returncode == 0 and real.stdout.startswith("ADMITTED")


def test_pay_method_is_read_case_insensitively(make_db):
    db = make_db("door")
    ids = seed(db)
    sale = proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "CASH")
    assert sale.code == 0 and sale.json["order"]["pay_method"] == "cash"
    oid = proc(db, "order", "create", "-i", f"{ids['ga']}:1").json["order"]["id"]
    paid = proc(db, "order", "pay", str(oid), "--pay", " Cash ")
    assert paid.code == 0 and paid.json["order"]["status"] == "PAID"


def test_global_options_may_follow_the_command(make_db):
    db = make_db("after")
    assert run("init", "--db", db, "--json").returncode == 0
    made = run("event", "create", "--name", "--json", "--starts-at", "2027-06-01T20:00:00Z")
    assert made.returncode != 0  # no --db given: ./tickethub.db does not exist
    made = run(
        "event", "create", "--name", "--json", "--starts-at", "2027-06-01T20:00:00Z",
        "--db", db, "--json", "--operator", "ann",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    event = json.loads(made.stdout)["event"]
    assert event["name"] == "--json"  # a value of the command's own option stays its value
    listed = run("event", "list", "--json", "--db", db)
    assert listed.returncode == 0 and '"events"' in listed.stdout
    assert run("event", "list", "--db", db, "--", "--json").returncode == 2  # after --: an arg
    wide = subprocess.run(
        [tickethub_exe(), "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert "go before or after the command" in wide.stdout


def test_a_second_type_of_the_same_name_in_one_event_is_refused(make_db):
    db = make_db("twin")
    ids = seed(db)  # event 1 has GA and VIP; event 2 has Other
    before = dump(db)
    twin = proc(db, "ticket-type", "add", str(ids["event"]), "--name", " vip ", "--price", "5",
                "--capacity", "3")  # fmt: skip
    assert twin.code == 4 and twin.error["code"] == "INVALID_STATE"
    assert "ticket-type update" in twin.error["hint"]
    assert dump(db) == before
    renamed = proc(db, "ticket-type", "update", str(ids["ga"]), "--name", "VIP")
    assert renamed.code == 4 and dump(db) == before
    # the same name in another event, or a type keeping its own name, is fine
    other = ["--price", "5", "--capacity", "3"]
    assert proc(db, "ticket-type", "add", str(ids["event2"]), "--name", "VIP", *other).code == 0
    assert proc(db, "ticket-type", "update", str(ids["vip"]), "--name", "Vip").code == 0


def test_order_list_pages_and_never_stops_silently(make_db):
    import tickethub_cli as th
    from tickethub_cli import orders

    db = make_db("pages")
    ids = seed(db, capacity=1000, max_per_order=10)
    s = th.open_session(db)
    for _ in range(250):
        orders.create_order(
            s, orders.OrderRequest.parse(items=[f"{ids['ga']}:1"], require_pay=False)
        )
    s.close()
    first = proc(db, "order", "list")
    assert len(first.json["orders"]) == 100 and first.json["total"] == 250
    seen, cursor = [o["id"] for o in first.json["orders"]], first.json["next_cursor"]
    while cursor is not None:
        page = proc(db, "order", "list", "--cursor", cursor)
        seen += [o["id"] for o in page.json["orders"]]
        cursor = page.json["next_cursor"]
    everything = proc(db, "order", "list", "--all")
    assert seen == [o["id"] for o in everything.json["orders"]] == list(range(250, 0, -1))
    assert everything.json["next_cursor"] is None
    wide = {**os.environ, "COLUMNS": "200"}
    human = subprocess.run(
        [tickethub_exe(), "--db", db, "order", "list", "--limit", "5"],
        capture_output=True, text=True, env=wide,
    )  # fmt: skip
    assert "5 shown of 250; next page: --cursor 246 (or --all)" in human.stdout
    assert proc(db, "order", "list", "--cursor", "abc").code == 2
    assert proc(db, "order", "list", "--limit", "0").code == 2


def test_report_csv_has_money_in_major_units_with_its_currency(make_db):
    import csv
    import io

    db = make_db("csv")
    ids = seed(db)
    proc(db, "sell", "-i", f"{ids['ga']}:2", "--pay", "cash")  # 2 x 20.00 EUR
    out = subprocess.run(
        [tickethub_exe(), "--db", db, "report", "--event", str(ids["event"]), "--csv"],
        capture_output=True, text=True,
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    ga = next(r for r in rows if r["id"] == str(ids["ga"]))
    assert (ga["revenue"], ga["currency"], ga["sold"]) == ("40.00", "EUR", "2")
    assert rows[-1]["name"] == "TOTAL" and rows[-1]["revenue"] == "40.00"
    assert "revenue_minor" not in out.stdout.splitlines()[0]


def test_calling_an_event_off_refunds_each_order_once_even_across_a_crash(make_db):
    db = make_db("calloff")
    ids = seed(db, capacity=20)
    card = ["--pay", "card", "--card", "4242424242424242"]
    paid = [proc(db, "purchase", "-i", f"{ids['ga']}:2", *card).json["order"]["id"] for _ in "abc"]
    cash = proc(db, "sell", "-i", f"{ids['vip']}:1", "--pay", "cash").json["order"]["id"]
    held = proc(db, "order", "create", "-i", f"{ids['ga']}:1").json["order"]["id"]
    other = proc(db, "sell", "-i", f"{ids['other']}:1", "--pay", "cash").json["order"]["id"]
    event = str(ids["event"])
    assert proc(db, "event", "cancel", event).code == 2  # a reason is required
    crashed = proc(db, "event", "cancel", event, "--reason", "storm",
                   env={"TICKETHUB_FAULT": "after_refund"})  # fmt: skip
    assert crashed.code == 137
    assert proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 4  # no more sales
    done = proc(db, "event", "cancel", event, "--reason", "storm")
    assert done.code == 0, done.stderr
    assert done.json["event"]["status"] == "cancelled" and done.json["left"] == []
    for oid in [*paid, cash, held]:
        order = proc(db, "order", "show", str(oid)).json["order"]
        assert order["status"] == "CANCELLED"
        assert all(t["status"] == "void" for t in order["tickets"])
    charges = proc(db, "payment", "ledger").json["charges"]
    assert [(c["status"], c["refunded_minor"]) for c in charges] == [("refunded", 4000)] * 3
    assert proc(db, "order", "show", str(other)).json["order"]["status"] == "PAID"
    before = dump(db)
    again = proc(db, "event", "cancel", event, "--reason", "storm")  # a re-run: safe, a no-op
    assert again.code == 0 and again.json["already_cancelled"] is True
    assert again.json["cancelled_orders"] == [] and again.json["refunds"] == []
    assert dump(db) == before
    said = run("--db", db, "event", "cancel", event, "--reason", "storm")
    assert "already called off (storm)" in said.stdout
    charges = proc(db, "payment", "ledger").json["charges"]
    assert [(c["status"], c["refunded_minor"]) for c in charges] == [("refunded", 4000)] * 3
    healthy(db)


def test_closing_sales_of_a_type_refuses_new_sales_only(make_db):
    db = make_db("close")
    ids = seed(db)
    sold = proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash")
    closed = proc(db, "ticket-type", "update", str(ids["ga"]), "--sales", "CLOSED")
    assert closed.code == 0 and closed.json["ticket_type"]["sales"] == "closed"
    before = dump(db)
    refused = proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash")
    assert refused.code == 4 and "closed" in refused.error["message"]
    assert dump(db) == before
    code = sold.json["order"]["tickets"][0]["code"]
    assert proc(db, "validate", code, "--event", str(ids["event"])).code == 0  # still admits
    assert proc(db, "ticket-type", "update", str(ids["ga"]), "--sales", "open").code == 0
    assert proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    assert proc(db, "ticket-type", "update", str(ids["ga"]), "--sales", "maybe").code == 2


def test_an_event_has_its_own_time_zone_and_human_output_shows_local_times(make_db):
    db = make_db("zone")
    assert proc(db, "init").code == 0
    made = proc(
        db, "event", "create", "--name", "Jazz", "--timezone", "europe/berlin",
        "--starts-at", "2027-06-01T20:00:00.123456+02:00",
    )  # fmt: skip
    event = made.json["event"]
    assert event["timezone"] == "Europe/Berlin"  # as the zone database spells it
    assert event["starts_at"] == "2027-06-01T18:00:00.123456Z"  # JSON keeps UTC
    shown = run("--db", db, "event", "show", str(event["id"]))
    assert "2027-06-01 20:00 CEST" in shown.stdout and "Europe/Berlin" in shown.stdout
    assert ".123456" not in shown.stdout and "18:00" not in shown.stdout
    listed = run("--db", db, "event", "list").stdout
    assert "20:00" in listed and "CEST" in listed and "18:00" not in listed
    plain = proc(db, "event", "create", "--name", "Here", "--starts-at", "2027-06-01T20:00:00Z")
    assert plain.json["event"]["timezone"] == "UTC"


def test_an_unknown_or_path_like_time_zone_is_refused_and_nothing_written(make_db):
    db = make_db("zone")
    seed(db)
    before = dump(db)
    for zone in ("Mars/Olympus", "../../etc/passwd", "localtime", "", "Europe/Berlin\x1b[2J"):
        done = proc(
            db, "event", "create", "--name", "X", "--starts-at", "2027-06-01T20:00:00Z",
            "--timezone", zone,
        )  # fmt: skip
        assert done.code == 2 and done.error["code"] == "INVALID_INPUT", (zone, done.stderr)
        assert proc(db, "event", "update", "1", "--timezone", zone).code == 2
    assert dump(db) == before


def test_event_update_renames_reschedules_and_moves_with_an_audit_row(make_db):
    db = make_db("upd")
    ids = seed(db)
    eid = str(ids["event"])
    done = proc(
        db, "event", "update", eid, "--name", "Jazz Night (late show)",
        "--starts-at", "2027-06-02T21:30:00+02:00", "--venue", "Green Hall",
        "--timezone", "Europe/Berlin",
    )  # fmt: skip
    assert done.code == 0, done.stderr
    event = done.json["event"]
    assert (event["name"], event["starts_at"], event["venue"], event["timezone"]) == (
        "Jazz Night (late show)",
        "2027-06-02T19:30:00Z",
        "Green Hall",
        "Europe/Berlin",
    )
    assert proc(db, "event", "update", eid, "--venue", "").json["event"]["venue"] is None
    rows = count(db, "SELECT count(*) FROM audit_log WHERE entity = 'event' AND action = 'update'")
    assert rows == 2
    before = dump(db)
    nothing = proc(db, "event", "update", eid)
    assert nothing.code == 2 and "nothing to change" in nothing.error["message"]
    assert proc(db, "event", "update", "999", "--name", "X").code == 3
    assert proc(db, "event", "update", eid, "--starts-at", "2027-06-02 25:30").code == 2
    assert dump(db) == before
    assert proc(db, "event", "cancel", eid, "--reason", "storm").code == 0
    called_off = proc(db, "event", "update", eid, "--name", "Back on")
    assert called_off.code == 4 and called_off.error["code"] == "INVALID_STATE"


def test_help_shows_placeholders_not_type_labels_and_says_what_each_option_is():
    for argv in (["--help"], ["report", "--help"], ["purchase", "--help"], ["gate", "--help"]):
        done = run(*argv)
        assert done.returncode == 0
        assert "<bool>" not in done.stdout and "<str>" not in done.stdout, argv
    report = run("report", "--help").stdout
    assert "being admitted" not in report and "The event to report on" in report


def test_shell_completion_can_be_installed_and_completes_commands():
    shown = run("--show-completion", "bash")
    assert shown.returncode == 0 and "_TICKETHUB_COMPLETE" in shown.stdout
    env = {**os.environ, "_TICKETHUB_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    env["COMP_WORDS"] = "tickethub event cr"
    done = subprocess.run([tickethub_exe()], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["create"]


def test_with_a_time_zone_a_local_time_is_read_in_it_and_a_wrong_offset_is_refused(make_db):
    db = make_db("local")
    assert proc(db, "init").code == 0
    ny = ("--timezone", "America/New_York")
    made = proc(db, "event", "create", "--name", "Gala", "--starts-at", "2027-01-10T19:30", *ny)
    assert made.code == 0, made.stderr
    assert made.json["event"]["starts_at"] == "2027-01-11T00:30:00Z"  # 19:30 EST
    eid = str(made.json["event"]["id"])
    before = dump(db)
    for starts, says in (
        ("2027-01-10T19:30:00-04:00", "is at -05:00 then"),  # a summer offset in January
        ("2027-03-14T02:30:00", "does not exist"),  # the hour the clocks skip
        ("2027-11-07T01:30:00", "happens twice"),  # the hour the clocks repeat
    ):
        done = proc(db, "event", "create", "--name", "X", "--starts-at", starts, *ny)
        assert done.code == 2 and says in done.error["message"], (starts, done.stderr)
        assert proc(db, "event", "update", eid, "--starts-at", starts).code == 2
    assert dump(db) == before
    fold = proc(db, "event", "create", "--name", "Y", "--starts-at", "2027-11-07T01:30-05:00", *ny)
    assert fold.json["event"]["starts_at"] == "2027-11-07T06:30:00Z"
    utc = proc(db, "event", "create", "--name", "Z", "--starts-at", "2027-01-11T00:30:00Z", *ny)
    assert utc.code == 0  # Z is an instant: always taken as it is
    moved = proc(db, "event", "update", eid, "--starts-at", "2027-07-04T18:00")
    assert moved.json["event"]["starts_at"] == "2027-07-04T22:00:00Z"  # EDT, the event's zone
    both = proc(db, "event", "update", eid, "--starts-at", "2027-07-04T18:00",
                "--timezone", "Europe/Berlin")  # fmt: skip
    assert both.json["event"]["starts_at"] == "2027-07-04T16:00:00Z"  # the new zone's 18:00
    bare = proc(db, "event", "create", "--name", "W", "--starts-at", "2027-01-10T19:30")
    assert bare.code == 2 and "--timezone" in bare.error["hint"]


def test_event_cancel_dry_run_shows_who_gets_what_and_changes_nothing(make_db):
    db = make_db("plan")
    ids = seed(db)
    eid = str(ids["event"])
    card = proc(db, "sell", "-i", f"{ids['ga']}:2", "--pay", "card", "--card", "4242424242424242",
                "--name", "Ann")  # fmt: skip
    cash = proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash", "--email", "bo@example.org")
    hold = proc(db, "order", "create", "-i", f"{ids['ga']}:1")
    assert card.code == cash.code == hold.code == 0
    before = dump(db)
    plan = proc(db, "event", "cancel", eid, "--reason", "storm", "--dry-run")
    assert plan.code == 0 and plan.json["dry_run"] is True
    assert (plan.json["card_minor"], plan.json["cash_minor"], plan.json["holds"]) == (
        2 * card.json["order"]["total_minor"] // 2,
        cash.json["order"]["total_minor"],
        1,
    )
    buyers = [o["buyer"] for o in plan.json["orders"]]
    assert buyers == ["Ann", "bo@example.org", None]
    said = run("--db", db, "event", "cancel", eid, "--reason", "storm", "--dry-run").stdout
    assert "would cancel 2 paid order(s) and release 1 hold(s)" in said and "(Ann)" in said
    assert dump(db) == before  # a preview writes nothing, not even an audit row
    done = proc(db, "event", "cancel", eid, "--reason", "storm", "--yes")
    assert done.code == 0 and done.json["holds_released"] == 1
    assert len(done.json["cancelled_orders"]) == 3


def test_help_and_hints_a_new_user_asked_for(make_db, tmp_path):
    """From a cold trial: test cards in --help, the callback payload, group help that says
    what the group does, a declined sale saying what to do next, formats in any case."""
    assert "4000000000000002" in run("purchase", "--help").stdout
    assert "amount_minor" in run("payment", "callback", "--help").stdout
    assert "call off" in run("event", "--help").stdout
    assert "ledger" in run("payment", "--help").stdout
    assert "admitted to" in run("checkin", "undo", "--help").stdout
    db = make_db("hint")
    ids = seed(db)
    declined = run("--db", db, "sell", "-i", f"{ids['ga']}:1", "--pay", "card", "--card",
                   "4000000000000002", "-k", "desk-d")  # fmt: skip
    assert declined.returncode == 6 and "a new --idempotency-key (desk-d" in declined.stderr
    sold = proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash")
    out = proc(db, "ticket", "export", "--order", str(sold.json["order"]["id"]),
               "--dir", str(tmp_path / "print"), "--format", "SVG")  # fmt: skip
    assert out.code == 0 and out.json["files"][0].endswith(".svg")


def test_a_called_off_event_gets_no_new_or_changed_ticket_types(make_db):
    """`event update` refuses a called-off event; so do `ticket-type add` and `update`: a
    type re-opened (`--sales open`), repriced or added after the refunds would show a
    called-off event as on sale at the desk. Refused with nothing written."""
    db = make_db("off")
    ids = seed(db)
    assert proc(db, "sell", "-i", f"{ids['ga']}:1", "--pay", "cash").code == 0
    assert proc(db, "event", "cancel", str(ids["event"]), "--reason", "storm").code == 0
    before = dump(db)
    attempts = [
        ["ticket-type", "add", str(ids["event"]), "--name", "Late", "--price", "5",
         "--capacity", "10"],
        ["ticket-type", "update", str(ids["ga"]), "--sales", "open"],
        ["ticket-type", "update", str(ids["vip"]), "--price", "1"],
        ["ticket-type", "update", str(ids["vip"]), "--capacity", "50"],
    ]  # fmt: skip
    for args in attempts:
        done = proc(db, *args)
        assert done.code == 4 and done.error["code"] == "INVALID_STATE", (args, done.stderr)
        assert "called-off" in done.error["message"]
    assert dump(db) == before
    other = proc(db, "ticket-type", "update", str(ids["other"]), "--price", "11")
    assert other.code == 0, other.stderr  # another event's types are not affected


def test_a_held_order_of_an_event_being_called_off_cannot_be_paid(make_db):
    """`event cancel` crashed after its first refund: the event is `cancelling` and a held
    order is still PENDING. Paying it would charge a card for an event called off (and
    issue tickets); it is refused before the provider is asked, and the re-run cancels it."""
    db = make_db("calling-off")
    ids = seed(db)
    card = ["--pay", "card", "--card", "4242424242424242"]
    assert proc(db, "purchase", "-i", f"{ids['ga']}:1", *card).code == 0
    held = proc(db, "order", "create", "-i", f"{ids['ga']}:1").json["order"]["id"]
    event = str(ids["event"])
    crashed = proc(db, "event", "cancel", event, "--reason", "storm",
                   env={"TICKETHUB_FAULT": "after_refund"})  # fmt: skip
    assert crashed.code == 137
    before = dump(db)
    for pay in (card, ["--pay", "cash"]):
        paid = proc(db, "order", "pay", str(held), *pay)
        assert paid.code == 4 and paid.error["code"] == "INVALID_STATE", paid.stderr
        assert "called off" in paid.error["message"]
    assert dump(db) == before
    charges = proc(db, "payment", "ledger").json["charges"]
    assert [c["order_id"] for c in charges] == [1]  # the held order was never charged
    assert proc(db, "event", "cancel", event, "--reason", "storm").code == 0
    assert proc(db, "order", "show", str(held)).json["order"]["status"] == "CANCELLED"
    healthy(db)
