"""The gate's full-screen view: the real `tickethub gate` on a real pseudo-terminal (tmux),
read back with capture-pane the way gate staff see it, and the pure screen builder.

What is asserted is what a person reads without colour: the big letters and the shape drawn
in block characters, the reason in words, the totals, and that only one result is on the
screen. The pane is polled until the expected text appears (waiting for a condition, with a
timeout), never slept on.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from support import buy, seed, tickethub_exe

import tickethub_cli as th
from tickethub_cli import checkin, clock, codes
from tickethub_cli.checkin import Counters, ScanResult
from tickethub_cli.cli import gate_screen
from tickethub_cli.cli.gate_screen import View, build

TMUX = shutil.which("tmux") or "/usr/bin/tmux"
needs_tmux = pytest.mark.skipif(
    not os.path.exists(TMUX),
    reason="tmux is needed to drive a real terminal (apt-get install tmux)",
)

# A few rows of the art, written out here (not computed): block letters and block shapes.
ADMIT_ART = "█████  ██████  ███    ███ ██ ████████"  # top row of ADMIT in block letters
REJECT_ART = "██████  ███████      ██ ███████  ██████ ████████"  # top row of REJECT
SAME_ART = "███████  █████  ███    ███ ███████"  # top row of SAME
CHECK_ART = "███      ███"  # the tick's two strokes meeting
CROSS_ART = "███        ███"  # the cross's outer corners
SAME_SHAPE = "██████████████"  # the equals sign's bars
WOULD_ADMIT_ART = r"\ \    / / _ \| | | | |  |   \    /_\ |   \|  \/  |_ _|_   _|"


@pytest.fixture
def venue(tmp_path):
    path = str(tmp_path / "gate.db")
    ids = seed(path, capacity=50)
    s = th.open_session(path, operator="gatekeeper")
    sold = buy(s, [f"{ids['ga']}:3"], name="Ada Lovelace").order
    other = buy(s, [f"{ids['other']}:1"]).order
    s.close()
    forged = codes.generate()  # well formed, never sold: UNKNOWN
    yield {
        "db": path,
        "ids": ids,
        "codes": [t["code"] for t in sold["tickets"]],
        "other": other["tickets"][0]["code"],
        "forged": codes.pretty(forged),
    }


class Pane:
    """One tmux server on its own socket running one command in a detached pane of a
    fixed size; the pane stays after the command ends so its screen and status can be read."""

    def __init__(self, argv: list[str], width: int = 80, height: int = 24) -> None:
        self.socket = f"th-gate-{uuid.uuid4().hex[:12]}"
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        # bash waits for the gate and writes its exit status to a file: tmux 3.3 may leave an
        # ended pane's process unreaped (pane_dead 1, no status) for a long time
        self.status_file = Path(tempfile.mkdtemp(prefix="th-pane-")) / "status"
        script = f"{shlex.join(argv)} ; echo $? > {shlex.quote(str(self.status_file))}"
        command = f"bash -c {shlex.quote(script)}"
        self._tmux(
            "-f", "/dev/null", "start-server", ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-x", str(width), "-y", str(height), command,
            env=env,
        )  # fmt: skip

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=True,
        )
        return done.stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def type_line(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)
        self._tmux("send-keys", "Enter")

    def screen(self, history: bool = False) -> str:
        return self._tmux("capture-pane", "-p", *(["-S", "-"] if history else []))

    def resize(self, width: int, height: int) -> None:
        self._tmux("resize-window", "-x", str(width), "-y", str(height))

    def wait_for(self, *texts: str, timeout: float = 30) -> str:
        """The screen once every one of `texts` is on it (fails with the screen after
        `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen()
            if all(t in shown for t in texts):
                return shown
            if time.monotonic() > deadline:
                pytest.fail(f"never saw {texts!r} on the screen:\n{shown}")
            time.sleep(0.05)

    def exit_status(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            text = self.status_file.read_text() if self.status_file.exists() else ""
            if text.endswith("\n"):
                return int(text)
            if time.monotonic() > deadline:
                pytest.fail(f"the gate did not end:\n{self.screen()}")
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def panes():
    started: list[Pane] = []

    def start(argv: list[str], width: int = 80, height: int = 24) -> Pane:
        started.append(Pane(argv, width, height))
        return started[-1]

    yield start
    for pane in started:
        pane.kill()


def gate_argv(v, *extra: str) -> list[str]:
    return [tickethub_exe(), "--db", v["db"], "gate", "--event", str(v["ids"]["event"]), *extra]


@needs_tmux
def test_one_result_at_a_time_in_big_letters_with_a_shape(venue, panes):
    """REJECT, REJECT, ADMIT on an 80x24 terminal: only the ADMIT is on the screen, in block
    letters beside a tick, with the ticket type, the holder, the header and the totals."""
    v = venue
    pane = panes(gate_argv(v, "--gate", "north"))
    first = pane.wait_for("Ctrl-C or Ctrl-D: stop", "scan ▸")
    assert "Gig (event 1) · gate north" in first.splitlines()[0]  # the event by its name
    pane.type_line("bogus")
    shown = pane.wait_for("scan 1 at")
    assert REJECT_ART in shown and CROSS_ART in shown and "mistyped" in shown
    pane.type_line(v["forged"])
    shown = pane.wait_for("scan 2 at")
    assert REJECT_ART in shown and "no such ticket (UNKNOWN)" in shown
    pane.type_line(v["codes"][0])
    shown = pane.wait_for("scan 3 at")
    assert ADMIT_ART in shown and CHECK_ART in shown
    assert "valid ticket (ADMITTED)" in shown
    assert "type GA · holder Ada Lovelace" in shown
    gone = (REJECT_ART, CROSS_ART, "REJECT", "UNKNOWN", "MALFORMED", "no such ticket", "bogus")
    for earlier in (*gone, "mistyped or not a ticket code"):
        assert earlier not in shown, earlier  # nothing of the rejects is left
    rows = shown.splitlines()
    assert len(rows) <= 24 and all(len(r) <= 80 for r in rows)
    assert "scanned 3 · admitted 1 · rejected 2 (unknown 1, mistyped 1)" in shown
    assert re.search(r"scan 3 at \d\d:\d\d:\d\d · code ", shown)
    pane.keys("C-d")  # end of input: the screen is put back, the summary printed, exit 0
    assert pane.exit_status() == 0
    after = pane.screen(history=True)
    assert ADMIT_ART not in after  # the full screen is gone
    assert "Gate summary: Gig (event 1), gate north" in after


@needs_tmux
def test_double_read_wrong_event_resize_and_ctrl_c(venue, panes):
    v = venue
    pane = panes(gate_argv(v, "--gate", "north"))
    pane.wait_for("scan ▸")
    pane.type_line(v["codes"][1])
    pane.wait_for("scan 1 at", "valid ticket (ADMITTED)")
    pane.type_line(v["codes"][1])  # the scanner read it twice
    shown = pane.wait_for("scan 2 at")
    assert SAME_ART in shown and SAME_SHAPE in shown
    assert re.search(r"same ticket again: admitted \d s ago at this gate \(\d\d:\d\d:\d\d\)", shown)
    assert "REJECT" not in shown and REJECT_ART not in shown and CROSS_ART not in shown
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", shown)  # no microseconds
    pane.type_line(v["other"])
    shown = pane.wait_for("scan 3 at")
    assert "ticket for another event: Other (event 2)" in shown
    assert REJECT_ART in shown and CROSS_ART in shown
    assert "scanned 3 · admitted 1 · rejected 2 (already used 1, wrong event 1)" in shown
    pane.resize(60, 20)  # a smaller terminal: redrawn at once, still big letters
    shown = pane.wait_for("Gig (event 1) · gate north            Ctrl-C or Ctrl-D: stop")
    rows = shown.splitlines()
    assert len(rows) <= 20 and all(len(r) <= 60 for r in rows)
    assert REJECT_ART in shown and "██    ██" in shown  # block letters, a small cross
    assert "ticket for another event: Other (event 2)" in shown
    pane.keys("C-c")
    assert pane.exit_status() == 0
    after = pane.screen(history=True).splitlines()
    title = next(i for i, row in enumerate(after) if "Gate summary" in row)
    assert after[title].startswith("╭─ Gate summary: Gig (event 1), gate north")  # column 0
    assert "^C" not in after[title]
    counts = "\n".join(after[title:])
    assert re.search(r"│ scanned +3 +│", counts) and re.search(r"│ admitted +1 +│", counts)
    assert re.search(r"│ already used \(ALREADY_USED\) +1 +│", counts)


@needs_tmux
def test_a_trial_run_never_looks_like_an_admission(venue, panes):
    v = venue
    pane = panes(gate_argv(v, "--gate", "north", "--dry-run"))
    assert "TRIAL RUN, nobody is admitted" in pane.wait_for("scan ▸")
    pane.type_line(v["codes"][2])
    shown = pane.wait_for("scan 1 at")
    assert WOULD_ADMIT_ART in shown and "░░░" in shown
    assert "trial run: nobody is admitted" in shown
    assert ADMIT_ART not in shown and "█" not in shown  # no solid letters, no solid tick
    pane.keys("C-d")
    assert pane.exit_status() == 0
    assert checkin_count(v["db"]) == 0


def checkin_count(db: str) -> int:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL"
        ).fetchone()[0]
    finally:
        conn.close()


@needs_tmux
def test_a_terminal_that_cannot_draw_a_screen_gets_lines_and_ctrl_c_is_clean(venue, panes):
    """TERM=dumb: no full screen, the answers follow one another; the start line names the
    event, and after Ctrl-C the summary starts on its own line, not after the echoed ^C."""
    v = venue
    pane = panes(["env", "TERM=dumb", *gate_argv(v, "--gate", "north")])
    pane.wait_for("gate north for Gig (event 1): scan a code")
    pane.type_line(v["codes"][0])
    pane.wait_for("ADMIT", "scanned 1 · admitted 1 · rejected 0")
    pane.keys("C-c")
    assert pane.exit_status() == 0
    after = pane.screen(history=True).splitlines()
    title = next(i for i, row in enumerate(after) if "Gate summary" in row)
    assert after[title].startswith("╭─ Gate summary: Gig (event 1), gate north")
    assert ADMIT_ART not in "\n".join(after)


PIPED = (  # the plain output of a gate whose output is not a terminal, as it always was
    "ADMITTED     {a}  ticket 1\n"
    "ALREADY_USED {a}  first used {t} at gate east\n"
    "MALFORMED    bogus\n"
    "WRONG_EVENT  {o}  ticket 4\n"
    "ADMITTED     {b}  ticket 2\n"
    "Gate summary\n"
    "┏━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━┳━━━━━━┳━━━━━━━━━━━┓\n"
    "┃ scanned ┃ admitted ┃ ALREADY_USED ┃ UNKNOWN ┃ WRONG_EVENT ┃ VOID ┃ MALFORMED ┃\n"
    "┡━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━╇━━━━━━╇━━━━━━━━━━━┩\n"
    "│       5 │        2 │            1 │       0 │           1 │    0 │         1 │\n"
    "└─────────┴──────────┴──────────────┴─────────┴─────────────┴──────┴───────────┘\n"
)
JSON_KEYS = ["code", "result", "ticket_id", "event_id", "first_used_at", "gate"]


def test_piped_output_is_unchanged_plain_and_json(venue, tmp_path):
    """Not a terminal: the plain lines and the summary table byte for byte as before; JSON
    Lines with the same fields in the same order."""
    v = venue
    a, b = v["codes"][:2]
    lines = [a, a, "", "bogus", v["other"], b]
    env = {**os.environ, "COLUMNS": "80"}
    base = [tickethub_exe(), "--db", v["db"]]
    shutil.copyfile(v["db"], tmp_path / "copy.db")  # for the JSON run: the same tickets
    gate = ["gate", "--event", str(v["ids"]["event"]), "--gate", "east"]
    done = subprocess.run(
        [*base, *gate], input="\n".join(lines) + "\n", capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first_used = re.search(r"first used (\d\d:\d\d [A-Z]+) at", done.stdout)
    assert first_used is not None
    expected = PIPED.format(a=a, b=b, o=v["other"], t=first_used.group(1))
    assert done.stdout == expected
    js = subprocess.run(
        [tickethub_exe(), "--db", str(tmp_path / "copy.db"), "--json", *gate],
        input="\n".join(lines) + "\n", capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    out = [json.loads(x) for x in js.stdout.splitlines()]
    assert [list(o) for o in out[:-1]] == [JSON_KEYS] * 5  # no field removed, renamed or added
    assert [o["result"] for o in out[:-1]] == [
        "ADMITTED",
        "ALREADY_USED",
        "MALFORMED",
        "WRONG_EVENT",
        "ADMITTED",
    ]


# ---- the screen builder, without a terminal ---------------------------------------------


def frame(result: ScanResult | None, *, width=80, height=24, gate="north", **kw) -> str:
    counters = kw.pop("counters", None) or Counters()
    if result is not None and not kw.pop("counted", False):
        counters.add(result)
    view = View(1, kw.pop("name", "Gig"), gate, counters, kw.pop("now", NOW), result, **kw)
    rows, prompt = build(view, width, height)
    assert len(rows) == height, len(rows)
    assert all(r.cell_len == width for r in rows), [r.cell_len for r in rows]
    assert -1 <= prompt < height
    return "\n".join(r.plain for r in rows)


NOW = 1_800_000_000_000_000  # a fixed clock (microseconds)


def used(seconds_ago: float, gate: str | None) -> ScanResult:
    at = clock.text_of_us(NOW - int(seconds_ago * 1_000_000))
    r = ScanResult("K7QF", "ALREADY_USED", 7, 1, at, gate)
    r.ticket_type, r.holder = "VIP", "Ada"
    return r


def test_builder_admit_reject_and_the_reason_in_words():
    ok = ScanResult("K7QF", "ADMITTED", 7, 1, clock.text_of_us(NOW), "north")
    ok.ticket_type, ok.holder = "VIP", "Ada"
    shown = frame(ok)
    assert ADMIT_ART in shown and CHECK_ART in shown and "type VIP · holder Ada" in shown
    assert shown.count(ADMIT_ART) == 2  # drawn twice as tall when there is room
    for result, words in (
        (ScanResult("x", "MALFORMED"), "mistyped or not a ticket code (MALFORMED)"),
        (ScanResult("K7QF", "UNKNOWN"), "no such ticket (UNKNOWN)"),
        (ScanResult("K7QF", "VOID", 7, 1), "ticket cancelled (VOID)"),
    ):
        shown = frame(result)
        assert REJECT_ART in shown and CROSS_ART in shown and words in shown
        assert ADMIT_ART not in shown and CHECK_ART not in shown
    wrong = ScanResult("K7QF", "WRONG_EVENT", 7, 2)
    wrong.event_name = "Other"
    assert "ticket for another event: Other (event 2)" in frame(wrong)


def test_builder_tells_a_double_read_from_a_ticket_used_earlier_or_elsewhere():
    twice = frame(used(1.2, "north"))
    assert SAME_ART in twice and SAME_SHAPE in twice and REJECT_ART not in twice
    assert "same ticket again: admitted 1 s ago at this gate (" in twice
    elsewhere = frame(used(1.2, "south"))
    assert REJECT_ART in elsewhere and "already used: admitted 1 s ago at gate south" in elsewhere
    earlier = frame(used(5 * 60 + 3, "north"))
    assert REJECT_ART in earlier and "already used: admitted 5 min ago at this gate" in earlier
    local = re.search(r"\((\d\d:\d\d:\d\d)\)", earlier)
    assert local is not None and not re.search(r"\d\d:\d\d:\d\d\.\d", earlier)
    assert "2 h 0 min ago" in frame(used(7200, None), gate=None)
    assert "at a gate with no name" in frame(used(50, None))
    assert checkin.is_double_read(used(9, "north"), "north", NOW)
    assert not checkin.is_double_read(used(11, "north"), "north", NOW)
    assert not checkin.is_double_read(used(1, "south"), "north", NOW)


def test_builder_trial_and_retry_look_nothing_like_an_admission():
    trial = ScanResult("K7QF", "ADMITTED", 7, 1, None, "north", dry_run=True)
    shown = frame(trial, dry_run=True)
    assert WOULD_ADMIT_ART in shown and "█" not in shown and "░" in shown
    assert "TRIAL RUN, nobody is admitted" in shown.splitlines()[0]
    error = {"code": "DB_BUSY", "message": "database is busy; scan again"}
    busy = frame(ScanResult("K7QF", "ERROR", error=error))
    assert "not checked: scan again (DB_BUSY)" in busy and "███      ███" in busy  # a ?
    assert ADMIT_ART not in busy and REJECT_ART not in busy
    assert "not checked 1" in busy  # the footer counts it apart


def test_builder_fits_every_size_and_keeps_the_word_longest():
    results = [
        ScanResult("K7QF", "ADMITTED", 7, 1, clock.text_of_us(NOW), "north"),
        used(1, "north"),
        used(100, "south"),
        ScanResult("K7QF", "ADMITTED", 7, 1, dry_run=True),
        ScanResult("K7QF", "ERROR", error={"code": "DB_BUSY", "message": "busy"}),
        None,
    ]
    for width, height in ((80, 24), (60, 20), (50, 15), (40, 12), (30, 8), (20, 5), (8, 2)):
        for result in results:
            frame(result, width=width, height=height)  # exactly the size, every time
    small = frame(ScanResult("x", "MALFORMED"), width=60, height=20)
    assert REJECT_ART in small and "██    ██" in small and "mistyped" in small
    tiny = frame(ScanResult("x", "MALFORMED"), width=30, height=8)
    assert "R E J E C T" in tiny and "✗" in tiny and "scanned 1" in tiny


def test_builder_footer_counts_by_reason():
    counters = Counters()
    for result in ("ADMITTED", "ADMITTED", "UNKNOWN", "VOID", "VOID", "MALFORMED"):
        counters.add(ScanResult("x", result))
    shown = frame(ScanResult("x", "MALFORMED"), counters=counters, counted=True)
    footer = "scanned 6 · admitted 2 · rejected 4 (unknown 1, cancelled 2, mistyped 1)"
    assert footer in shown.splitlines()[-1]


def test_builder_shows_stored_text_literally():
    hostile = "[bold]x[/bold] \x1b[2J\u202e :smile:"
    r = ScanResult("K7QF\x1b[H", "ADMITTED", 7, 1, clock.text_of_us(NOW), hostile)
    r.ticket_type, r.holder = "[red]VIP", "Ada\x9b"
    view = View(1, hostile, hostile, Counters(), NOW, r)
    rows, _ = build(view, 200, 30)
    shown = "\n".join(row.plain for row in rows)
    assert "[bold]x[/bold] \\x1b[2J\\u202e :smile:" in shown  # escaped, not interpreted
    assert "type [red]VIP · holder Ada\\x9b" in shown and "code K7QF\\x1b[H" in shown
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", shown)
    assert all(not row.spans for row in rows)  # no markup was parsed into styles


def test_describe_names_the_type_holder_and_the_tickets_event(venue):
    v = venue
    s = th.open_session(v["db"])
    try:
        gate = checkin.Gate(s, v["ids"]["event"], "north")
        results = [gate.scan(v["codes"][0]), gate.scan(v["other"]), gate.scan("bogus")]
        assert [r.ticket_type for r in results] == [None, None, None]  # not on the hot path
        checkin.describe(s, results)
        ok, wrong, bad = results
        assert (ok.ticket_type, ok.holder, ok.event_name) == ("GA", "Ada Lovelace", "Gig")
        assert (wrong.ticket_type, wrong.holder, wrong.event_name) == ("Other", None, "Other")
        assert (bad.ticket_type, bad.holder, bad.event_name) == (None, None, None)
        assert checkin.event_label(s, v["ids"]["event2"])[0] == "Other"
        assert list(ok.to_json()) == JSON_KEYS  # JSON stays as it was
    finally:
        s.close()


def test_the_banner_font_ships_with_the_dependency():
    assert gate_screen.banner("ADMIT", gate_screen.BIG_FONT)[0].strip() == ADMIT_ART
    assert Path(gate_screen.__file__).name == "gate_screen.py"
