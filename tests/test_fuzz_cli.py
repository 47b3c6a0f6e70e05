"""Fuzz every command with hypothesis: random argument lists and stdin. A command may refuse,
but never with exit 1 (a bug), never with a traceback, and a refusal (exit 2 or 3) never
changes the database."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
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
    "--role",
    "--host",
    "--port",
    "--workers",
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
    "admin",
    "gate",
    "65536",
    "127.0.0.1",
    "::1",
    "[::1]",
    "localhost",
    "th_" + "0" * 40,
]
value = st.one_of(st.sampled_from(EDGE_VALUES), st.text(max_size=40))
token = st.one_of(st.sampled_from(OPTIONS), value)


@pytest.fixture(autouse=True)
def serve_binds_but_never_serves(monkeypatch):
    """`serve` runs for real up to its socket (argument checks, the database, binding
    --host/--port, where hostile hosts and ports are refused), then closes that socket
    instead of serving: a fuzz example never listens, forks workers or blocks."""
    from tickethub_cli.http import server

    def bound_then_closed(db_path, host, sock, *workers):
        sock.close()
        return 0

    monkeypatch.setattr(server, "_run_one", bound_then_closed)
    monkeypatch.setattr(server, "_run_many", bound_then_closed)


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


SERVER_COMMANDS = [c for c in COMMANDS if c[0] in ("serve", "token")]
SERVER_VALUES = ["0", "1", "-1", "65535", "65536", "64", "65", "127.0.0.1", "::1", "", "\x00"]


def test_fuzz_serve_and_token_arguments():
    """`serve` and `token` with hostile arguments: refused (exit 2) or done, never exit 1."""
    fuzz = Fuzz()
    try:

        @FUZZ_SETTINGS
        @given(
            command=st.sampled_from(SERVER_COMMANDS),
            args=st.lists(
                st.one_of(
                    st.sampled_from(["--host", "--port", "--workers", "--role", "--event"]),
                    st.sampled_from(SERVER_VALUES),
                    token,
                ),
                max_size=6,
            ),
        )
        def check(command, args):
            fuzz.run([*command, *args], None)

        check()
    finally:
        fuzz.close()


@pytest.mark.parametrize("host", ["\x00", "\ud800", "\udcff", "x" * 300, "a" * 64 + ".b"])
def test_serve_refuses_a_host_it_cannot_bind_with_one_line(host, tmp_path):
    db = str(tmp_path / "s.db")
    seed(db)
    result = CliRunner().invoke(app, ["--db", db, "serve", "--host", host, "--port", "0"])
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "INVALID_INPUT" in result.stderr and "Traceback" not in result.stderr


# --- hostile families (issue 10) -------------------------------------------------------------
# Each family is input a hostile user, file or environment can send. The invariant is the one
# above: no exit 1, no traceback, a refusal writes nothing; plus, for files, no row is lost.

MARKUP = [
    "[/]",
    "[/x]@evil.org",
    "[link=https://evil.example]pay here[/link]",
    "[conceal]x",
    "[bold",
]
ESCAPES = [
    "\x1b[2J\x1b[H ADMITTED",
    "a\x1b]8;;https://evil.example\x07b",
    "\u009b31m",
    "\u009dtitle",
    "\u202eevil\u202c",
    "\u2066x\u2069",
    "tab\there",
    "cr\rhere",
]
GIANT = ["x" * 140_000, "9" * 5000, "[" * 40_000 + "]" * 40_000, "\ud800", "\udcff"]
hostile_text = st.one_of(
    st.sampled_from(MARKUP + ESCAPES),
    st.builds(lambda a, b: a + b, st.sampled_from(MARKUP + ESCAPES), st.text(max_size=10)),
)
hostile_token = st.one_of(st.sampled_from(OPTIONS), hostile_text, st.sampled_from(GIANT), value)
FEW = max(8, FUZZ_SETTINGS.max_examples // 8)  # real processes cost ~0.2 s each
FEW_SETTINGS = settings(FUZZ_SETTINGS, max_examples=FEW)


def test_fuzz_markup_escapes_and_giant_values_in_every_command():
    """Markup, ESC/C1/bidi and giant values as arguments of every command (JSON mode: the
    human rendering of stored text is checked by the output side's tests)."""
    fuzz = Fuzz()
    try:

        @FUZZ_SETTINGS
        @given(command=st.sampled_from(COMMANDS), args=st.lists(hostile_token, max_size=8))
        def check(command, args):
            fuzz.run(["--json", *command, *args], None)

        check()
    finally:
        fuzz.close()


def _good_row(key: str) -> dict:
    return {"idempotency_key": key, "ticket_type_id": 1, "quantity": 1, "pay": "cash"}


def _hostile_jsonl(kind: str, key: str) -> str:
    row = json.dumps(_good_row(key))
    return {
        "good": row,
        "deep": row[:-1] + ', "items": ' + "[" * 40_000 + "]" * 40_000 + "}",
        "huge-int": row.replace('"quantity": 1', '"quantity": ' + "9" * 5000),
        "surrogate-key": row.replace(f'"{key}"', '"\\ud800"'),
        "surrogate-field": '{"\\udfff": 1, ' + row[1:],
        "long": row[:-1] + ', "name": "' + "x" * 140_000 + '"}',
        "markup-field": '{"[/]": 1, ' + row[1:],
        "escape": row.replace(f'"{key}"', json.dumps(key + "\u001b[2J")),
        "not-json": "{" + row,
    }[kind]


def _hostile_csv(kind: str, key: str) -> str:
    return {
        "good": f"{key},1,1,,,cash,",
        "quote": f'{key},1,1,,"Ann,cash,',
        "long": f"{key},1,1,,{'x' * 140_000},cash,",
        "huge-int": f"{key},1,{'9' * 5000},,,cash,",
        "markup": f"{key},1,1,,[/],cash,",
        "escape": f"{key},1,1,,\u009b31m,cash,",
        "fields": f"{key},1,1",
    }[kind]


JSONL_KINDS = ["good", "deep", "huge-int", "surrogate-key", "surrogate-field", "long"]
JSONL_KINDS += ["markup-field", "escape", "not-json"]
CSV_KINDS = ["good", "quote", "long", "huge-int", "markup", "escape", "fields"]


def test_fuzz_hostile_batch_files_lose_no_row():
    """Giant, deep, badly quoted and badly encoded rows among good ones: the run never ends
    in exit 1 and its summary counts every data row of the file."""
    fuzz = Fuzz()
    serial = iter(range(10**9))
    try:

        @FUZZ_SETTINGS
        @given(
            csv_format=st.booleans(),
            kinds=st.lists(st.integers(0, 100), min_size=1, max_size=60),
            latin1_row=st.one_of(st.none(), st.integers(0, 59)),
        )
        def check(csv_format, kinds, latin1_row):
            pool = CSV_KINDS if csv_format else JSONL_KINDS
            chosen = [pool[k % len(pool)] if k < 30 else "good" for k in kinds]
            make = _hostile_csv if csv_format else _hostile_jsonl
            rows = [make(kind, f"fz-{next(serial)}").encode() for kind in chosen]
            if latin1_row is not None and latin1_row < len(rows):
                rows[latin1_row] += b"\xe9"
            head = [b"idempotency_key,ticket_type_id,quantity,email,name,pay,card"]
            path = os.path.join(fuzz.dir, "rows.txt")
            with open(path, "wb") as fh:
                fh.write(b"\n".join((head if csv_format else []) + rows) + b"\n")
            result = CliRunner().invoke(app, ["--db", fuzz.db, "--json", "batch", path])
            out = (result.stdout or "") + (result.stderr or "")
            assert result.exit_code in (0, 8), (chosen, out[-2000:])
            assert "Traceback" not in out
            summary = json.loads(result.stdout.splitlines()[-1])["summary"]
            assert summary["rows"] == len(rows), (chosen, summary)

        check()
    finally:
        fuzz.close()


def _signed(payload: bytes) -> str:
    import hashlib
    import hmac

    return hmac.new(b"s", payload, hashlib.sha256).hexdigest()


def test_fuzz_signed_hostile_callback_payloads():
    """Signed payloads (so they pass the signature) that are deep, huge or strange."""
    fuzz = Fuzz()
    try:

        @FUZZ_SETTINGS
        @given(
            field=st.sampled_from(["id", "order_id", "status", "amount_minor", "[/]", "\\ud800"]),
            raw=st.sampled_from(
                [
                    "[" * 40_000 + "]" * 40_000,
                    "9" * 5000,
                    '"\\ud800"',
                    '"[/]"',
                    '"\\u001b[2J"',
                    "1e400",
                    "-1",
                    '"' + "x" * 100_000 + '"',
                ]
            ),
        )
        def check(field, raw):
            payload = (
                '{"id": "c", "order_id": 1, "status": "succeeded", "amount_minor": 1, '
                f'"{field}": {raw}}}'
            ).encode()
            path = os.path.join(fuzz.dir, "cb.json")
            with open(path, "wb") as fh:
                fh.write(payload)
            fuzz.run(
                [
                    "--json",
                    "payment",
                    "callback",
                    "--payload",
                    path,
                    "--signature",
                    _signed(payload),
                ],
                None,
            )

        check()
    finally:
        fuzz.close()


def _process(fuzz: Fuzz, args: list[bytes | str], env: dict[bytes, bytes]) -> None:
    """A real process with raw bytes in argv and environment; the same invariants."""
    from support import tickethub_exe

    before = dump(fuzz.db)
    full = {
        **{k: v for k, v in os.environb.items() if k != b"TICKETHUB_OPERATOR"},
        b"TICKETHUB_WEBHOOK_SECRET": b"s",
        b"TICKETHUB_BUSY_TIMEOUT": b"2",
        **env,
    }
    done = subprocess.run(
        [tickethub_exe(), "--db", fuzz.db, *args],
        capture_output=True,
        env=full,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 1, (args, env, output[-2000:])
    assert b"Traceback" not in output, (args, env, output[-2000:])
    if done.returncode in (2, 3):
        assert dump(fuzz.db) == before, (args, env)
    stamps = re.findall(rb'"(?:created_at|updated_at|at)": "([^"]*)"', done.stdout)
    assert all(re.fullmatch(rb"20[0-9]{2}-.*Z", s) for s in stamps), (env, stamps[:3])


NON_UTF8 = [b"\xff", b"caf\xe9", b"\xc3", b"\xed\xa0\x80", b"a\x80b", b"\x1b[2J\xff"]
raw_bytes = st.one_of(
    st.sampled_from(NON_UTF8),
    st.builds(lambda a, b: a + b, st.binary(max_size=8), st.sampled_from(NON_UTF8)),
).filter(lambda b: b"\x00" not in b)
PROCESS_COMMANDS = [
    ["--json", "purchase", "-i", "1:1", "--pay", "cash"],
    ["--json", "order", "create", "-i", "1:1"],
    ["--json", "event", "create", "--name", "Gig", "--starts-at", "2027-01-01T20:00:00Z"],
    ["--json", "validate", "--event", "1"],
    ["--json", "order", "list"],
    ["purchase", "-i", "1:1", "--pay", "cash"],
    ["event", "list"],
]
ENV_NAMES = [b"LOGNAME", b"USER", b"TICKETHUB_OPERATOR", b"TICKETHUB_WEBHOOK_SECRET"]


def test_fuzz_non_utf8_argv_and_environment():
    """Bytes that are not UTF-8 in options, arguments and the environment, as a shell passes
    them (Python sees lone surrogates)."""
    fuzz = Fuzz()
    try:

        @FEW_SETTINGS
        @given(
            command=st.sampled_from(PROCESS_COMMANDS),
            extra=st.lists(
                st.tuples(
                    st.sampled_from(
                        ["--email", "--name", "-k", "--gate", "--venue", "--name", "--reason"]
                    ),
                    raw_bytes,
                ),
                max_size=2,
            ),
            env=st.dictionaries(st.sampled_from(ENV_NAMES), raw_bytes, max_size=2),
        )
        def check(command, extra, env):
            args: list[bytes | str] = list(command)
            for option, raw in extra:
                args += [option, raw]
            if command[1:2] == ["validate"]:
                args.insert(2, b"K7QF\xff")
            _process(fuzz, args, env)

        check()
    finally:
        fuzz.close()


def test_fuzz_clock_offsets():
    """TICKETHUB_CLOCK_OFFSET from the plausible to the absurd: refused before any write,
    or used with every stamp a 4-digit year."""
    fuzz = Fuzz()
    offsets = st.one_of(
        st.sampled_from(["inf", "-inf", "nan", "1e30", "1e12", "-1e12", "soon", "", "86400"]),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.integers(-(10**13), 10**13).map(str),
    )

    @FEW_SETTINGS
    @given(offset=offsets, command=st.sampled_from(PROCESS_COMMANDS[:3] + PROCESS_COMMANDS[4:5]))
    def check(offset, command):
        _process(fuzz, list(command), {b"TICKETHUB_CLOCK_OFFSET": offset.encode()})

    try:
        check()
    finally:
        fuzz.close()
