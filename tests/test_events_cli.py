"""Events and ticket types through the CLI (in process and as real processes): happy paths,
every bad input from the foundation issue, names as data, global options, help examples."""

from __future__ import annotations

import pytest
from backends import BACKENDS, new_target
from support import ALL_COMMANDS, cli, count, dump, proc, raw_query
from typer.testing import CliRunner

import tickethub_cli as th
from tickethub_cli.cli import app

START = "2027-06-01T20:00:00+02:00"


def _box(path: str) -> tuple[str, int, int]:
    assert cli(path, "init").code == 0
    event = cli(path, "event", "create", "--name", "Gig", "--starts-at", START).json["event"]
    tt = cli(
        path,
        "ticket-type",
        "add",
        str(event["id"]),
        "--name",
        "GA",
        "--price",
        "25.50",
        "--capacity",
        "100",
    ).json["ticket_type"]
    return path, event["id"], tt["id"]


@pytest.fixture
def box(make_db):
    return _box(make_db())


@pytest.fixture(scope="module", params=BACKENDS)
def refusing_box(request, tmp_path_factory):
    """One box per backend for the tests of refusals: each checks that it wrote nothing."""
    return _box(new_target(request.param, str(tmp_path_factory.mktemp("refusing"))))


def test_event_create_list_show(box):
    path, event_id, type_id = box
    shown = cli(path, "event", "show", str(event_id)).json["event"]
    assert shown["starts_at"] == "2027-06-01T18:00:00Z" and shown["currency"] == "EUR"
    (tt,) = shown["ticket_types"]
    assert tt == {
        **tt,
        "id": type_id,
        "event_id": event_id,
        "price_minor": 2550,
        "capacity": 100,
        "sold": 0,
        "held": 0,
        "available": 100,
    }
    listed = cli(path, "event", "list").json["events"]
    assert [e["id"] for e in listed] == [event_id]
    assert cli(path, "ticket-type", "list", str(event_id)).json["ticket_types"][0]["id"] == type_id


def test_currencies_with_other_exponents(box):
    path, _, _ = box
    yen = cli(
        path,
        "event",
        "create",
        "--name",
        "Tokyo",
        "--starts-at",
        "2027-01-01T10:00Z",
        "--currency",
        "jpy",
    ).json["event"]
    assert yen["currency"] == "JPY"
    tt = cli(
        path,
        "ticket-type",
        "add",
        str(yen["id"]),
        "--name",
        "A",
        "--price",
        "5000",
        "--capacity",
        "1",
    ).json["ticket_type"]
    assert tt["price_minor"] == 5000
    assert (
        cli(
            path,
            "ticket-type",
            "add",
            str(yen["id"]),
            "--name",
            "B",
            "--price",
            "1.5",
            "--capacity",
            "1",
        ).code
        == 2
    )
    dinar = cli(
        path,
        "event",
        "create",
        "--name",
        "Manama",
        "--starts-at",
        "2027-01-01T10:00Z",
        "--currency",
        "BHD",
    ).json["event"]
    assert (
        cli(
            path,
            "ticket-type",
            "add",
            str(dinar["id"]),
            "--name",
            "C",
            "--price",
            "1.234",
            "--capacity",
            "1",
        ).json["ticket_type"]["price_minor"]
        == 1234
    )


def test_update_ticket_type_and_capacity_floor(box):
    path, _, type_id = box
    s = th.open_session(path)
    from support import buy

    buy(s, [f"{type_id}:30"])
    s.close()
    ok = cli(path, "ticket-type", "update", str(type_id), "--capacity", "30", "--price", "27")
    assert ok.code == 0 and ok.json["ticket_type"]["capacity"] == 30
    assert ok.json["ticket_type"]["price_minor"] == 2700
    before = dump(path)
    low = cli(path, "ticket-type", "update", str(type_id), "--capacity", "29")
    assert low.code == 4 and low.error["code"] == "INVALID_STATE"
    assert dump(path) == before
    nothing = cli(path, "ticket-type", "update", str(type_id))
    assert nothing.code == 2


BAD = [
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "1.234", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "-5", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "abc", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "NaN", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "1e3", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "١٢", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "10000000.01", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "1", "--capacity", "-1"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "1", "--capacity", "10000001"], 2),
    (["ticket-type", "add", "{e}", "--name", "X", "--price", "1", "--capacity", "١٢"], 2),
    (["ticket-type", "add", "{e}", "--name", "", "--price", "1", "--capacity", "1"], 2),
    (["ticket-type", "add", "{e}", "--name", "   ", "--price", "1", "--capacity", "1"], 2),
    (
        [
            "ticket-type",
            "add",
            "{e}",
            "--name",
            "X",
            "--price",
            "1",
            "--capacity",
            "1",
            "--max-per-order",
            "0",
        ],
        2,
    ),
    (["ticket-type", "add", "999", "--name", "X", "--price", "1", "--capacity", "1"], 3),
    (["ticket-type", "update", "{t}", "--capacity", "-1"], 2),
    (["ticket-type", "update", "999", "--capacity", "1"], 3),
    (["event", "create", "--name", "", "--starts-at", START], 2),
    (["event", "create", "--name", "X", "--starts-at", "tomorrow-ish"], 2),
    (["event", "create", "--name", "X", "--starts-at", "2027-13-45T25:00:00"], 2),
    (["event", "create", "--name", "X", "--starts-at", "2027-06-01T20:00:00"], 2),
    (["event", "create", "--name", "X", "--starts-at", START, "--currency", "EURO"], 2),
    (["event", "create", "--name", "X", "--starts-at", START, "--currency", "XYZ"], 2),
    (["event", "create", "--name", "line\nbreak", "--starts-at", START], 2),
    (["event", "show", "999"], 3),
    (["event", "show", "abc"], 3),
    (["ticket-type", "list", "999"], 3),
    (["event", "create", "--starts-at", START], 2),
    (["no-such-command"], 2),
]


@pytest.mark.parametrize(("args", "code"), BAD)
@pytest.mark.parametrize("as_json", [True, False])
def test_bad_input(refusing_box, args, code, as_json):
    path, event_id, type_id = refusing_box
    args = [a.format(e=event_id, t=type_id) for a in args]
    before = dump(path)
    result = CliRunner().invoke(app, ["--db", path, *(["--json"] if as_json else []), *args])
    assert result.exit_code == code, (args, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    missing_name = args[:2] == ["event", "create"] and "--name" not in args
    usage = args[0] == "no-such-command" or missing_name
    expected = "NOT_FOUND" if code == 3 else "USAGE" if usage else "INVALID_INPUT"
    lines = result.stderr.strip().splitlines()
    if as_json:
        import json

        assert len(lines) == 1, result.stderr
        assert json.loads(lines[0])["error"]["code"] == expected
    else:
        assert len(lines) == 1, result.stderr  # one line; a hint rides on it
        assert lines[0].startswith("error: ") and f"[{expected}]" in lines[0]
    assert dump(path) == before


@pytest.mark.parametrize(
    "name",
    [
        'Jazz "Night"',
        "O'Brien's",
        "x'); DROP TABLE events; --",
        "名前 🎟️",
        "שלום עולם",  # right-to-left text is data (direction *controls* are refused)
        "[/] [link=https://x]a[/link] :smile:",
        "Ünïcödé  spaces ",
        "%s %d {0}",
    ],
)
def test_names_are_data_and_round_trip(box, name):
    path, _, _ = box
    event = cli(path, "event", "create", "--name", name, "--starts-at", START).json["event"]
    assert cli(path, "event", "show", str(event["id"])).json["event"]["name"] == name
    tt = cli(
        path,
        "ticket-type",
        "add",
        str(event["id"]),
        "--name",
        name,
        "--price",
        "1",
        "--capacity",
        "1",
    ).json["ticket_type"]
    assert tt["name"] == name
    assert count(path, "SELECT count(*) FROM events") == 2


def test_operator_and_env_fallbacks(make_db, monkeypatch):
    path = make_db("env")
    monkeypatch.setenv("TICKETHUB_DB", path)
    monkeypatch.setenv("TICKETHUB_OPERATOR", "env-op")
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert (
        runner.invoke(
            app, ["--operator", "flag-op", "event", "create", "--name", "A", "--starts-at", START]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(app, ["event", "create", "--name", "B", "--starts-at", START]).exit_code == 0
    )
    ops = [
        r[0]
        for r in raw_query(
            path, "SELECT operator FROM audit_log WHERE entity = 'event' ORDER BY id"
        )
    ]
    assert ops == ["flag-op", "env-op"]


def test_debug_shows_traceback_only_for_bugs(box, monkeypatch):
    path, _, _ = box
    from tickethub_cli import events

    def boom(*_a, **_k):
        raise ValueError("boom")

    monkeypatch.setattr(events, "list_events", boom)
    plain = CliRunner().invoke(app, ["--db", path, "event", "list"])
    assert plain.exit_code == 1 and "Traceback" not in plain.stderr
    assert "INTERNAL" in plain.stderr
    debug = CliRunner().invoke(app, ["--db", path, "--debug", "event", "list"])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr


def test_human_output_has_tables(box):
    path, event_id, _ = box
    result = CliRunner().invoke(app, ["--db", path, "event", "show", str(event_id)])
    assert result.exit_code == 0
    for word in ("Gig", "GA", "25.50 EUR", "seats", "free"):
        assert word in result.stdout


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_happy_path_through_the_installed_console_script(make_db):
    path = make_db("real")
    assert proc(path, "init").json["created"] is True
    event = proc(path, "event", "create", "--name", "Real", "--starts-at", START).json["event"]
    tt = proc(
        path,
        "ticket-type",
        "add",
        str(event["id"]),
        "--name",
        "GA",
        "--price",
        "10",
        "--capacity",
        "5",
    ).json["ticket_type"]
    assert proc(path, "ticket-type", "update", str(tt["id"]), "--capacity", "6").code == 0
    assert proc(path, "event", "list").json["events"][0]["available"] == 6
    assert (
        proc(path, "event", "show", str(event["id"])).json["event"]["ticket_types"][0]["capacity"]
        == 6
    )
    sale = proc(path, "purchase", "-i", f"{tt['id']}:2", "--pay", "cash")
    assert sale.code == 0 and len(sale.json["order"]["tickets"]) == 2
    bad = proc(path, "event", "show", "77")
    assert bad.code == 3 and bad.error["code"] == "NOT_FOUND"


def test_python_dash_m_works(make_db):
    import subprocess
    import sys

    path = make_db("m")
    done = subprocess.run(
        [sys.executable, "-m", "tickethub_cli", "--db", path, "--json", "init"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and '"schema_version"' in done.stdout


def test_a_group_without_its_subcommand_prints_its_help_once():
    result = CliRunner().invoke(app, ["order"])
    assert result.exit_code == 2
    assert (result.stdout + result.stderr).count("Usage:") == 1


@pytest.mark.parametrize("price", [" 5", "5 ", "5\n", "\t5"])
def test_prices_match_the_contract_pattern_exactly(refusing_box, price):
    path, event_id, _ = refusing_box
    before = dump(path)
    out = cli(
        path,
        "ticket-type",
        "add",
        str(event_id),
        "--name",
        "P",
        "--price",
        price,
        "--capacity",
        "1",
    )
    assert out.code == 2 and out.error["code"] == "INVALID_INPUT"
    assert dump(path) == before


def test_human_errors_are_one_line_with_the_hint_on_it(box):
    path, _, _ = box
    result = CliRunner().invoke(
        app, ["--db", path, "event", "create", "--name", "X", "--starts-at", "2027-06-01T20:00:00"]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "[INVALID_INPUT]; hint: " in line


def test_empty_db_option_is_refused():
    result = CliRunner().invoke(app, ["--db", "", "--json", "event", "list"])
    assert result.exit_code == 2
    assert '"INVALID_INPUT"' in result.stderr
