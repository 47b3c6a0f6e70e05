"""Every example in every `--help` works: each is run, as written, against a copy of a demo
box office and must exit 0, or the code its help text documents right after it
("`tickethub validate …` (exit 10 when used)").

The demo box office has what the examples name: event 1 with types 1-3, PAID orders 1-11
(order 11 by card), a PENDING order 12, the ticket K7QF-… unused and H2W9-… admitted, and
the files sales.csv, codes.txt and cb.json (a callback for order 12) in the folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import typer
from support import proc, tickethub_exe

from tickethub_cli.cli import load_commands

EXAMPLE = re.compile(r"`(tickethub [^`]+)`(?:\s*\(exit (\d+))?")
UNUSED_CODE = "K7QF3M2A98XCTP4DZN6WR2B6"
ADMITTED_CODE = "H2W9LQ4XC7RT5VKM3PZ8NAJN"
SECRET = "whsec_help"


def examples() -> list[tuple[str, str, int]]:
    """(command path, example, expected exit code) from every command's help and epilog."""
    root = typer.main.get_command(load_commands())
    found: list[tuple[str, str, int]] = []

    def walk(cmd: object, path: list[str]) -> None:
        text = f"{getattr(cmd, 'help', '') or ''}\n{getattr(cmd, 'epilog', '') or ''}"
        for example, code in EXAMPLE.findall(text):
            found.append((" ".join(path) or "tickethub", example, int(code or 0)))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(root, [])
    return found


@pytest.fixture(scope="module")
def demo_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("help-demo")
    db = str(folder / "box.db")

    def ok(*args: str) -> dict:
        done = proc(db, *args)
        assert done.code == 0, (args, done.stderr)
        return done.json

    ok("init")
    ok("event", "create", "--name", "Jazz Night", "--starts-at", "2027-06-01T20:00:00+02:00")
    for name, price in (("General", "25"), ("Front row", "60"), ("Balcony", "40")):
        ok("ticket-type", "add", "1", "--name", name, "--price", price, "--capacity", "200")
    for _ in range(10):
        ok("sell", "-i", "1:2", "--pay", "cash")
    paid = ok("sell", "-i", "2:1", "--pay", "card", "--card", "4242424242424242")["order"]
    assert paid["id"] == 11
    pending = ok("order", "create", "-i", "1:2", "--email", "cat@example.org")["order"]
    assert pending["id"] == 12
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE tickets SET code = ? WHERE id = 1", (UNUSED_CODE,))
        conn.execute("UPDATE tickets SET code = ? WHERE id = 2", (ADMITTED_CODE,))
    conn.close()
    ok("validate", ADMITTED_CODE, "--event", "1", "--gate", "north")
    (folder / "sales.csv").write_text(
        "idempotency_key,ticket_type_id,quantity,email,name,pay,card\n"
        "web-2001,1,2,dan@example.org,Dan,card,4242424242424242\n"
        "web-2002,3,1,,,cash,\n"
    )
    (folder / "codes.txt").write_text(f"{UNUSED_CODE}\n{ADMITTED_CODE}\n")
    (folder / "cb.json").write_text(
        json.dumps({"id": "cb_9", "order_id": 12, "status": "succeeded", "amount_minor": 5000})
    )
    return folder


@pytest.mark.parametrize("where, example, expected", examples(), ids=lambda v: str(v)[:60])
def test_every_help_example_runs(
    demo_shop: Path, tmp_path: Path, where: str, example: str, expected: int
) -> None:
    work = tmp_path / "work"
    shutil.copytree(demo_shop, work)
    env = {
        **os.environ,
        "PATH": f"{Path(tickethub_exe()).parent}{os.pathsep}{os.environ['PATH']}",
        "TICKETHUB_DB": str(work / "box.db"),
        "TICKETHUB_WEBHOOK_SECRET": SECRET,
    }
    done = subprocess.run(
        ["bash", "-c", example],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert done.returncode == expected, f"{where}: {example}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_examples_cover_every_command() -> None:
    """A command without an example in its help fails here: each one must show one."""
    root = typer.main.get_command(load_commands())
    shown = {where for where, _, _ in examples()}
    missing = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        elif " ".join(path) not in shown:
            missing.append(" ".join(path))

    walk(root, [])
    assert not missing, f"commands whose --help has no example: {missing}"
