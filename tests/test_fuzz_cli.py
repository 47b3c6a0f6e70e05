"""Fuzz every command with hypothesis: random argument lists and stdin. A command may refuse,
but never with exit 1 (a bug), never with a traceback, and a refusal (exit 2 or 3) never
changes the database."""

from __future__ import annotations

import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import ALL_COMMANDS, OK_CARD, dump, seed
from typer.testing import CliRunner

from tickethub_cli.cli import app

COMMANDS = ALL_COMMANDS
OPTIONS = [
    "--name",
    "--starts-at",
    "--venue",
    "--currency",
    "--price",
    "--capacity",
    "--max-per-order",
    "--item",
    "-i",
    "--email",
    "--pay",
    "--card",
    "--idempotency-key",
    "-k",
    "--hold-minutes",
    "--reason",
    "--event",
    "--status",
    "--limit",
    "--stale-after",
    "--payload",
    "--signature",
    "--gate",
    "--dry-run",
    "--csv",
    "--stop-on-error",
    "--help",
]
EDGE_VALUES = [
    "",
    "0",
    "-1",
    "1",
    "2",
    "1:1",
    "1:0",
    "1:-2",
    "1:1000",
    "1:1001",
    "2:1",
    "99:1",
    "1:two",
    "10000000",
    "10000001",
    "9" * 30,
    "1e3",
    "NaN",
    "Infinity",
    "-5",
    "1.234",
    "25.00",
    "EUR",
    "EURO",
    "JPY",
    "card",
    "cash",
    "bitcoin",
    OK_CARD,
    "4000000000000002",
    "1234",
    "2027-01-01T20:00:00Z",
    "2027-13-45T25:00:00",
    "tomorrow-ish",
    "a@b.org",
    "not-an-email",
    "PAID",
    "pending",
    "-",
    "'; DROP TABLE orders; --",
    "\u202eevil\u202c",
    "x" * 5000,
    "\x00",
    "\x1b[31m",
    "名前",
    "🎟️",
]
value = st.one_of(st.sampled_from(EDGE_VALUES), st.text(max_size=40))
token = st.one_of(st.sampled_from(OPTIONS), value)


class Fuzz:
    """One seeded database per test function, reused across examples (refusals change
    nothing; a success may change it, and then the next baseline is taken afresh)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="th-fuzz-")
        self.db = os.path.join(self.dir, "fuzz.db")
        seed(self.db)

    def run(self, args: list[str], stdin: str | None) -> None:
        before = dump(self.db)
        result = CliRunner().invoke(
            app,
            ["--db", self.db, *args],
            input=stdin,
            env={"TICKETHUB_WEBHOOK_SECRET": "s", "TICKETHUB_BUSY_TIMEOUT": "2"},
        )
        output = (result.stdout or "") + (result.stderr or "")
        assert result.exit_code != 1, (args, output[-2000:])
        assert "Traceback" not in output, (args, output[-2000:])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError((args, repr(result.exception)))
        if result.exit_code in (2, 3):
            assert dump(self.db) == before, args

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("TICKETHUB_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_fuzz_every_command_with_random_arguments():
    fuzz = Fuzz()
    try:

        @FUZZ_SETTINGS
        @given(
            command=st.sampled_from(COMMANDS),
            args=st.lists(token, max_size=8),
            stdin=st.one_of(st.none(), st.text(max_size=200)),
        )
        def check(command, args, stdin):
            fuzz.run([*command, *args], stdin)

        check()
    finally:
        fuzz.close()


def test_fuzz_global_options_and_unknown_commands():
    fuzz = Fuzz()
    try:

        @FUZZ_SETTINGS
        @given(
            before=st.lists(
                st.sampled_from(["--json", "--debug", "--operator", "--db", "x"]), max_size=4
            ),
            rest=st.lists(token, max_size=5),
        )
        def check(before, rest):
            # --db must stay ours: drop a fuzzed --db so nothing touches other files
            cleaned = [t for t in before if t != "--db"]
            fuzz.run([*cleaned, *rest], None)

        check()
    finally:
        fuzz.close()
