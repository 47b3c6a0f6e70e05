"""At the gate: every result through the CLI and the library, concurrent scans of one code,
typo detection, the scanner loop as a real process, undo, the scan log, QR, the report."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import buy, cli, count, dump, seed, tickethub_exe

import tickethub_cli as th
from tickethub_cli import checkin, codes, orders
from tickethub_cli.cli.errors import result_exit_code


@pytest.fixture
def venue(make_db):
    path = make_db("gate")
    ids = seed(path, capacity=50)
    s = th.open_session(path, operator="gatekeeper")
    sold = buy(s, [f"{ids['ga']}:3"]).order
    other = buy(s, [f"{ids['other']}:1"]).order
    cancelled = buy(s, [f"{ids['vip']}:1"]).order
    orders.cancel_order(s, cancelled["id"], reason="refund")
    yield {
        "db": path,
        "ids": ids,
        "s": s,
        "codes": [t["code"] for t in sold["tickets"]],
        "other": other["tickets"][0]["code"],
        "void": cancelled["tickets"][0]["code"],
        "ticket_ids": [t["id"] for t in sold["tickets"]],
    }
    s.close()


def scan(v, code, *extra):
    return cli(v["db"], "validate", code, "--event", str(v["ids"]["event"]), *extra)


def test_every_result_through_the_cli(venue):
    v = venue
    first = scan(v, v["codes"][0], "--gate", "north")
    assert first.code == 0 and first.json["result"] == "ADMITTED"
    assert first.json["ticket_id"] == v["ticket_ids"][0] and first.json["gate"] == "north"
    again = scan(v, v["codes"][0], "--gate", "south")
    assert again.code == 10 and again.json["result"] == "ALREADY_USED"
    assert again.json["first_used_at"] == first.json["first_used_at"]
    assert again.json["gate"] == "north"
    body = v["codes"][1].replace("-", "")[:-1]
    unknown = body[:-1] + ("A" if body[-1] != "A" else "B")
    forged = unknown + codes.check_char(unknown) if codes.check_char(unknown) else None
    if forged:
        out = scan(v, forged)
        assert out.code == 11 and out.json["result"] == "UNKNOWN"
    assert scan(v, v["other"]).json["result"] == "WRONG_EVENT"
    assert scan(v, v["other"]).code == 12
    assert scan(v, v["void"]).code == 13 and scan(v, v["void"]).json["result"] == "VOID"
    typo = "Q" + v["codes"][1][1:] if v["codes"][1][0] != "Q" else "R" + v["codes"][1][1:]
    out = scan(v, typo)
    assert out.code == 14 and out.json["result"] == "MALFORMED"
    # a failed scan never consumes the real ticket
    assert scan(v, v["codes"][1]).code == 0


def test_outcome_is_on_stdout_in_human_mode_too(venue):
    from typer.testing import CliRunner

    from tickethub_cli.cli import app

    v = venue
    r = CliRunner().invoke(
        app, ["--db", v["db"], "validate", "nonsense", "--event", str(v["ids"]["event"])]
    )
    assert r.exit_code == 14 and "MALFORMED" in r.stdout


def test_lower_case_spaces_and_dashes_anywhere_still_validate(venue):
    v = venue
    raw = v["codes"][2].replace("-", "")
    messy = " ".join(raw[:5].lower()) + "--" + raw[5:12] + " - " + raw[12:].lower()
    assert scan(v, messy).json["result"] == "ADMITTED"


def test_dry_run_answers_like_a_scan_and_admits_nothing(venue):
    v = venue
    before = count(v["db"], "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL")
    out = scan(v, v["codes"][0], "--dry-run")
    assert out.code == 0 and out.json["result"] == "ADMITTED" and out.json["dry_run"] is True
    after = count(v["db"], "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL")
    assert after == before
    assert count(v["db"], "SELECT count(*) FROM scans WHERE dry_run = 1") == 1
    scan(v, v["codes"][0])
    assert scan(v, v["codes"][0], "--dry-run").code == 10


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "x" * 100_000,
        "\x00\x01\x1b[2J",
        "ZZZZ-ZZZZ",
        "🎟️" * 30,
        "'; DELETE FROM tickets;",
        "\udcff",
    ],
)
def test_hostile_input_is_malformed_and_logged_bounded(venue, raw):
    v = venue
    out = scan(v, raw)
    assert out.code == 14 and out.json["result"] == "MALFORMED", out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.json["code"]) <= checkin.SHOWN_INPUT + 1
    longest = count(v["db"], "SELECT max(length(input)) FROM scans")
    assert longest <= checkin.SHOWN_INPUT + 1
    assert count(v["db"], "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL") == 0


def test_unknown_event_is_not_found_and_admits_nothing(venue):
    v = venue
    before = dump(v["db"])
    out = cli(v["db"], "validate", v["codes"][0], "--event", "999")
    assert out.code == 3 and out.error["code"] == "NOT_FOUND"
    assert dump(v["db"]) == before


def test_eight_processes_scanning_one_code_admit_it_once(venue):
    v = venue
    procs = [
        subprocess.Popen(
            [
                tickethub_exe(),
                "--db",
                v["db"],
                "--json",
                "validate",
                v["codes"][0],
                "--event",
                str(v["ids"]["event"]),
                "--gate",
                f"g{i}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert "Traceback" not in err
        results.append((p.returncode, json.loads(out)["result"]))
    assert Counter(results) == {(0, "ADMITTED"): 1, (10, "ALREADY_USED"): 7}
    assert count(v["db"], "SELECT count(*) FROM scans WHERE result = 'ADMITTED'") == 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_substitution_and_neighbour_swap_is_malformed(data):
    code = codes.generate()
    i = data.draw(st.integers(0, codes.LENGTH - 1))
    for other in codes.ALPHABET:
        if other != code[i]:
            assert not codes.is_well_formed(code[:i] + other + code[i + 1 :])
    for j in range(codes.LENGTH - 1):
        if code[j] != code[j + 1]:
            assert not codes.is_well_formed(code[:j] + code[j + 1] + code[j] + code[j + 2 :])


def test_typos_of_a_sold_code_are_malformed_through_the_library(venue):
    v = venue
    code = codes.canonical(v["codes"][0])
    gate = checkin.Gate(v["s"], v["ids"]["event"], "lib", dry_run=True)
    for i in range(codes.LENGTH):
        for other in "0AZ9":
            if other != code[i]:
                assert gate.scan(code[:i] + other + code[i + 1 :]).result == "MALFORMED"
        if i < codes.LENGTH - 1 and code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            assert gate.scan(swapped).result == "MALFORMED"
    assert gate.scan(code).result == "ADMITTED"


def test_gate_loop_as_a_real_process(venue):
    v = venue
    lines = [
        v["codes"][0],
        "",
        v["codes"][0],
        "   ",
        v["other"],
        "garbage",
        v["void"],
        v["codes"][1].lower(),
    ]
    done = subprocess.run(
        [
            tickethub_exe(),
            "--db",
            v["db"],
            "--json",
            "gate",
            "--event",
            str(v["ids"]["event"]),
            "--gate",
            "east",
        ],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = [json.loads(x) for x in done.stdout.splitlines()]
    assert [o["result"] for o in out[:-1]] == [
        "ADMITTED",
        "ALREADY_USED",
        "WRONG_EVENT",
        "MALFORMED",
        "VOID",
        "ADMITTED",
    ]
    assert [o["code"] for o in out[:-1]] == [x for x in lines if x.strip()]
    assert out[-1] == {
        "summary": {
            "scanned": 6,
            "admitted": 2,
            "ALREADY_USED": 1,
            "UNKNOWN": 0,
            "WRONG_EVENT": 1,
            "VOID": 1,
            "MALFORMED": 1,
        }
    }


def test_gate_answers_each_line_at_once(venue):
    """Interactive: the answer to a line arrives before the next line is written."""
    v = venue
    p = subprocess.Popen(
        [tickethub_exe(), "--db", v["db"], "--json", "gate", "--event", str(v["ids"]["event"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert p.stdin is not None and p.stdout is not None
    for code, expected in ((v["codes"][2], "ADMITTED"), (v["codes"][2], "ALREADY_USED")):
        p.stdin.write(code + "\n")
        p.stdin.flush()
        assert json.loads(p.stdout.readline())["result"] == expected
    p.stdin.close()
    assert "summary" in json.loads(p.stdout.readline())
    assert p.wait(timeout=30) == 0


def test_gate_human_mode_plain_lines_and_summary(venue):
    v = venue
    done = subprocess.run(
        [tickethub_exe(), "--db", v["db"], "gate", "--event", str(v["ids"]["event"])],
        input=f"{v['codes'][0]}\n{v['codes'][0]}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert "ADMITTED" in done.stdout and "ALREADY_USED" in done.stdout
    assert "Gate summary" in done.stdout


def test_undo_then_readmit_and_audit(venue):
    v = venue
    assert scan(v, v["codes"][0], "--gate", "n").code == 0
    undo = cli(
        v["db"],
        "--operator",
        "supervisor",
        "checkin",
        "undo",
        v["codes"][0],
        "--event",
        str(v["ids"]["event"]),
        "--reason",
        "wrong wristband",
    )
    assert undo.code == 0 and undo.json["ticket_id"] == v["ticket_ids"][0]
    assert scan(v, v["codes"][0]).code == 0
    row = (
        v["s"]
        .conn.execute(
            "SELECT operator, reason FROM audit_log WHERE entity = 'ticket' AND action ="
            " 'checkin_undo'"
        )
        .fetchone()
    )
    assert tuple(row) == ("supervisor", "wrong wristband")
    again = cli(v["db"], "checkin", "undo", v["codes"][1], "--event", str(v["ids"]["event"]))
    assert again.code == 4 and again.error["code"] == "INVALID_STATE"
    assert cli(v["db"], "checkin", "undo", "nonsense", "--event", "1").code == 2
    assert cli(v["db"], "checkin", "undo", v["other"], "--event", str(v["ids"]["event"])).code == 3


def test_ticket_show_and_export(venue, tmp_path):
    v = venue
    shown = cli(v["db"], "ticket", "show", v["codes"][0].lower())
    assert shown.code == 0 and shown.json["ticket"]["id"] == v["ticket_ids"][0]
    assert cli(v["db"], "ticket", "show", "nonsense").code == 2
    order_id = shown.json["ticket"]["order_id"]
    for fmt in ("png", "svg"):
        out = cli(
            v["db"],
            "ticket",
            "export",
            "--order",
            str(order_id),
            "--dir",
            str(tmp_path / fmt),
            "--format",
            fmt,
        )
        assert out.code == 0 and len(out.json["files"]) == 3
        for f in out.json["files"]:
            data = Path(f).read_bytes()
            assert data.startswith(b"\x89PNG") if fmt == "png" else b"<svg" in data
    assert (
        cli(
            v["db"],
            "ticket",
            "export",
            "--order",
            str(order_id),
            "--dir",
            str(tmp_path),
            "--format",
            "gif",
        ).code
        == 2
    )


def test_purchase_print_dir_writes_images(venue, tmp_path):
    v = venue
    out = cli(
        v["db"],
        "sell",
        "-i",
        f"{v['ids']['ga']}:2",
        "--pay",
        "cash",
        "--print-dir",
        str(tmp_path / "print"),
    )
    assert out.code == 0 and len(os.listdir(tmp_path / "print")) == 2


def test_report_numbers_against_a_known_sequence(make_db):
    path = make_db("report")
    ids = seed(path, capacity=20)
    s = th.open_session(path)
    a = buy(s, [f"{ids['ga']}:4"]).order  # 4 x 20.00
    b = buy(s, [f"{ids['ga']}:2", f"{ids['vip']}:1"]).order  # 2 x 20.00 + 50
    c = buy(s, [f"{ids['ga']}:3"]).order
    orders.cancel_order(s, c["id"])  # refunded: not revenue
    orders.create_order(
        s, orders.OrderRequest.parse(items=[f"{ids['ga']}:5"], require_pay=False)
    )  # held 5
    gate = checkin.Gate(s, ids["event"], "main")
    for t in a["tickets"][:3] + b["tickets"][:1]:
        assert gate.scan(t["code"]).admitted
    assert gate.scan(a["tickets"][0]["code"]).result == "ALREADY_USED"
    assert gate.scan(c["tickets"][0]["code"]).result == "VOID"
    assert gate.scan("bogus").result == "MALFORMED"
    out = cli(path, "report", "--event", str(ids["event"]))
    assert out.code == 0
    data = out.json
    ga, vip = data["ticket_types"]
    assert (ga["capacity"], ga["sold"], ga["held"], ga["available"]) == (20, 6, 5, 9)
    assert (ga["revenue_minor"], ga["checked_in"]) == (12000, 4)
    assert (vip["sold"], vip["revenue_minor"], vip["checked_in"]) == (1, 5000, 0)
    assert data["totals"]["revenue_minor"] == 17000 and data["totals"]["sold"] == 7
    assert data["scans"] == {
        "ADMITTED": 4,
        "ALREADY_USED": 1,
        "UNKNOWN": 0,
        "WRONG_EVENT": 0,
        "VOID": 1,
        "MALFORMED": 1,
    }
    assert sum(b_["admitted"] for b_ in data["admissions_per_15min"]) == 4
    csv_out = cli(path, "report", "--event", str(ids["event"]), "--csv")
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("id,name,capacity") and len(lines) == 4
    assert cli(path, "report", "--event", "999").code == 3
    s.close()


def test_print_dir_that_cannot_be_written_refuses_before_selling(venue, tmp_path):
    v = venue
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    before = dump(v["db"])
    out = cli(
        v["db"],
        "sell",
        "-i",
        f"{v['ids']['ga']}:1",
        "--pay",
        "cash",
        "--print-dir",
        str(blocker / "sub"),
    )
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"
    assert dump(v["db"]) == before


def test_gate_on_a_terminal_shows_panels_counters_and_a_bell_on_reject(venue):
    """The scanner loop on a real pseudo-terminal: a big ADMIT or REJECT panel per scan,
    the reason, running counters, a bell on REJECT, a summary at EOF."""
    import pty
    import select

    v = venue
    master, slave = pty.openpty()
    p = subprocess.Popen(
        [
            tickethub_exe(),
            "--db",
            v["db"],
            "gate",
            "--event",
            str(v["ids"]["event"]),
            "--gate",
            "tty",
        ],
        stdin=subprocess.PIPE,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "COLUMNS": "80", "TERM": "xterm"},
    )
    os.close(slave)
    assert p.stdin is not None
    p.stdin.write(f"{v['codes'][0]}\n{v['codes'][0]}\n".encode())
    p.stdin.close()
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait(timeout=30) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "ADMIT" in screen and "REJECT" in screen
    assert "already used (ALREADY_USED)" in screen and "at gate tty" in screen
    assert "scanned 2 · admitted 1 · rejected 1" in screen
    assert "\a" in screen  # the bell on REJECT
    assert "Gate summary" in screen


def test_bytes_that_are_not_utf8_are_malformed_or_refused_never_a_bug(venue):
    """argv is bytes: a scanner or a shell can hand us anything. A code is a scan (MALFORMED,
    logged printable with its hash); a label (gate, operator) is refused before any write."""
    v = venue
    event = str(v["ids"]["event"])
    base = [tickethub_exe(), "--db", v["db"], "--json"]
    done = subprocess.run(
        [*base, "validate", b"\xff\xfe", "--event", event], capture_output=True, timeout=60
    )
    assert done.returncode == 14, done.stderr
    assert json.loads(done.stdout)["result"] == "MALFORMED"
    assert count(v["db"], "SELECT count(*) FROM scans WHERE input_sha256 IS NOT NULL") == 1
    before = dump(v["db"])
    for args in (
        ["validate", v["codes"][0], "--event", event, "--gate", b"\xff"],
        ["--operator", b"\xff", "validate", v["codes"][0], "--event", event],
    ):
        done = subprocess.run([*base, *args], capture_output=True, timeout=60)
        assert done.returncode == 2 and b"Traceback" not in done.stderr
        assert json.loads(done.stderr)["error"]["code"] == "INVALID_INPUT"
        assert done.stdout == b""
    assert dump(v["db"]) == before


def test_scan_log_keeps_inputs_printable_bounded_and_hashed(venue):
    import hashlib

    v = venue
    gate = checkin.Gate(v["s"], v["ids"]["event"], "log")
    messy = v["codes"][0].lower().replace("-", " ")
    for raw in (messy, "abc\x00\x1b[2J", "x" * 100_000, "\udcff"):
        gate.scan(raw)
    rows = v["s"].conn.execute("SELECT input, input_sha256 FROM scans ORDER BY id").fetchall()
    assert tuple(rows[0]) == (codes.canonical(v["codes"][0]), None)  # canonical, whole
    hostile = ("abc\x00\x1b[2J", "x" * 100_000, "\udcff")
    for (kept, digest), raw in zip(rows[1:], hostile, strict=True):
        assert kept.isprintable() and len(kept) <= checkin.SHOWN_INPUT + 1
        assert digest == hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def test_gate_answers_an_endless_line_once_and_goes_on(venue):
    """A garbage file piped into the gate: each over-long line is one MALFORMED answer, its
    rest is skipped (memory stays bounded), and the next real code is still admitted."""
    v = venue
    stdin = "A" * 300_000 + "\n" + v["codes"][0] + "\n" + "B" * 200_000  # no final newline
    done = subprocess.run(
        [tickethub_exe(), "--db", v["db"], "--json", "gate", "--event", str(v["ids"]["event"])],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = [json.loads(x) for x in done.stdout.splitlines()]
    assert [o.get("result") for o in out[:-1]] == ["MALFORMED", "ADMITTED", "MALFORMED"]
    assert out[-1]["summary"]["scanned"] == 3
    assert count(v["db"], "SELECT max(length(input)) FROM scans") <= checkin.SHOWN_INPUT + 1


def test_ctrl_c_ends_the_gate_with_a_summary_and_exit_0(venue):
    import signal

    v = venue
    p = subprocess.Popen(
        [tickethub_exe(), "--db", v["db"], "--json", "gate", "--event", str(v["ids"]["event"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(v["codes"][0] + "\n")
    p.stdin.flush()
    assert json.loads(p.stdout.readline())["result"] == "ADMITTED"
    p.send_signal(signal.SIGINT)  # the gate is waiting for the next line
    out, err = p.communicate(timeout=30)
    p.stdin.close()
    assert p.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["admitted"] == 1


def test_ctrl_c_during_a_scan_waits_until_its_answer_is_printed():
    """A committed ADMITTED must be shown, or its holder is turned away on the re-scan.
    (Run in a process of its own: a signal handler needs the main thread, which a test
    runner's worker may not give the test.)"""
    import sys

    program = """
import os, signal
from tickethub_cli.cli.gate import _ctrl_c_after_answer
answered = []
try:
    with _ctrl_c_after_answer():
        os.kill(os.getpid(), signal.SIGINT)
        answered.append("ADMITTED")
except KeyboardInterrupt:
    print("interrupted after", answered)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "interrupted after ['ADMITTED']", done.stderr


def test_report_lists_flagged_codes_in_one_order_on_every_backend(venue):
    """Most attempts first; ties: forged codes (by code), then tickets (by id), the same
    on SQLite and PostgreSQL (whose grouping comes back in hash order)."""
    v = venue
    s, event = v["s"], v["ids"]["event"]
    forged = sorted(codes.generate() for _ in range(3))
    for gates, code in (
        (("north", "south"), v["codes"][2]),
        (("north", "south"), forged[1]),
        (("north", "south", "east"), v["codes"][1]),
        (("north", "south"), v["codes"][0]),
        (("north", "south"), forged[0]),
        (("north", "south"), forged[2]),
    ):
        for gate in gates:
            checkin.Gate(s, event, gate).scan(code)
    flagged = cli(v["db"], "report", "--event", str(event)).json["multi_gate_codes"]
    assert [(m["ticket_id"], m["code"], m["attempts"]) for m in flagged] == [
        (v["ticket_ids"][1], None, 3),
        *((None, code, 2) for code in forged),
        (v["ticket_ids"][0], None, 2),
        (v["ticket_ids"][2], None, 2),
    ]


def test_report_flags_codes_tried_at_several_gates(venue):
    v = venue
    s, event = v["s"], v["ids"]["event"]
    forged = codes.generate()  # well formed, never sold: UNKNOWN
    checkin.Gate(s, event, "north").scan(v["codes"][0])
    checkin.Gate(s, event, "south, side door").scan(v["codes"][0])  # a shared screenshot
    checkin.Gate(s, event, "north").scan(v["codes"][1])
    checkin.Gate(s, event, "north").scan(v["codes"][1])  # same gate twice: not a signal
    for name in ("north", "west"):
        checkin.Gate(s, event, name).scan(codes.pretty(forged).lower())
    out = cli(v["db"], "report", "--event", str(event))
    flagged = {(m["ticket_id"], m["code"]): m for m in out.json["multi_gate_codes"]}
    assert set(flagged) == {(v["ticket_ids"][0], None), (None, forged)}
    assert sorted(flagged[(v["ticket_ids"][0], None)]["gates"]) == ["north", "south, side door"]
    assert flagged[(None, forged)]["attempts"] == 2
    human = cli(v["db"], "report", "--event", str(event))
    assert human.code == 0


def test_print_dir_failure_after_the_sale_keeps_the_sale(venue, tmp_path, monkeypatch):
    from tickethub_cli import qr
    from tickethub_cli.errors import invalid

    def broken(*_args, **_kw):
        raise invalid("cannot write: No space left on device")

    v = venue
    monkeypatch.setattr(qr, "write", broken)
    out = cli(
        v["db"], "sell", "-i", f"{v['ids']['ga']}:1", "--pay", "cash", "--print-dir", str(tmp_path)
    )
    assert out.code == 0 and out.json["order"]["status"] == "PAID"
    assert out.json["order"]["printed"] == []
    assert "ticket export --order" in out.json["order"]["print_error"]


def test_print_dir_never_prints_void_tickets(venue, tmp_path):
    v = venue
    sale = ["sell", "-i", f"{v['ids']['ga']}:1", "--pay", "cash", "--idempotency-key", "pd-1"]
    first = cli(v["db"], *sale, "--print-dir", str(tmp_path / "a"))
    assert len(first.json["order"]["printed"]) == 1
    assert cli(v["db"], "order", "cancel", str(first.json["order"]["id"])).code == 0
    replay = cli(v["db"], *sale, "--print-dir", str(tmp_path / "b"))
    assert replay.json["replayed"] is True and replay.json["order"]["printed"] == []
    assert os.listdir(tmp_path / "b") == []


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "select-update"])
def test_every_result_through_the_library(venue, monkeypatch, returning):
    """Both admission paths (UPDATE … RETURNING, and SELECT then UPDATE for SQLite < 3.35)
    give every result with its fields, and log each scan once."""
    monkeypatch.setattr(checkin, "_RETURNING", returning)
    v = venue
    event = v["ids"]["event"]
    north = checkin.Gate(v["s"], event, "north")
    south = checkin.Gate(v["s"], event, "south")
    first = north.scan(v["codes"][0])
    assert (first.result, first.ticket_id, first.event_id, first.gate) == (
        "ADMITTED",
        v["ticket_ids"][0],
        event,
        "north",
    )
    again = south.scan(v["codes"][0].lower())
    assert (again.result, again.first_used_at, again.gate) == (
        "ALREADY_USED",
        first.first_used_at,
        "north",
    )
    assert result_exit_code(again.result) == 10  # the CLI's table, not the result's
    assert south.scan(codes.generate()).result == "UNKNOWN"
    wrong = south.scan(v["other"])
    assert (wrong.result, wrong.event_id) == ("WRONG_EVENT", v["ids"]["event2"])
    assert south.scan(v["void"]).result == "VOID"
    assert south.scan(v["codes"][1][:-1]).result == "MALFORMED"
    assert south.scan(v["codes"][1]).result == "ADMITTED"  # the failed scans consumed nothing
    logged = [r[0] for r in v["s"].conn.execute("SELECT result FROM scans ORDER BY id")]
    assert logged == [
        "ADMITTED",
        "ALREADY_USED",
        "UNKNOWN",
        "WRONG_EVENT",
        "VOID",
        "MALFORMED",
        "ADMITTED",
    ]


def test_a_print_folder_with_a_nul_byte_is_bad_input(venue):
    v = venue
    before = dump(v["db"])
    out = cli(
        v["db"], "sell", "-i", f"{v['ids']['ga']}:1", "--pay", "cash", "--print-dir", "out\x00dir"
    )
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"
    assert dump(v["db"]) == before
