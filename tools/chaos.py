"""Chaos run: concurrent sellers and gates against one database under kill -9 and faults.

Sellers buy with good, declined and unknown-outcome cards and cash, reuse idempotency keys,
die at random fault points (or meet a busy database right after the charge) or are killed
mid-flight; cashiers take cash for orders whose card outcome is unknown, or cancel them
(forcing it now and then for admitted tickets); gates scan sold codes (the same code at two
gates at once); signed payment callbacks arrive late, repeated and out of order. Afterwards:
reconcile, doctor (the money invariant against the provider's own ledger among its checks),
and our own checks of the ledger. Seeded: `--seed N` replays a run.

    .venv/bin/python tools/chaos.py --seconds 30 --seed 7
    .venv/bin/python tools/chaos.py --seconds 30 --db-url postgresql://localhost/chaos
(`--db-url`: an empty PostgreSQL database, made with createdb; the run fills it.)
Exit 0 when every guarantee held, 1 with a list of violations otherwise.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tickethub_cli.store.url import display  # noqa: E402

OK, DECLINED, TIMEOUT = "4242424242424242", "4000000000000002", "4000000000000119"
SECRET = "chaos-secret"
FAULTS = ("after_reserve", "after_charge", "before_issue", "busy_after_charge", "after_refund")
SELLER_CODES = {0, 4, 5, 6, 8, 137, -signal.SIGKILL}  # 8: a batch with some failed rows


def exe() -> str:
    candidate = Path(sys.executable).with_name("tickethub")
    return str(candidate) if candidate.exists() else shutil.which("tickethub") or "tickethub"


@dataclass
class Job:
    kind: str
    proc: subprocess.Popen[str]
    kill_at: float | None
    started: float
    fault: str | None = None


@dataclass
class Report:
    launched: collections.Counter[str] = field(default_factory=collections.Counter)
    exits: collections.Counter[str] = field(default_factory=collections.Counter)
    kills: int = 0
    violations: list[str] = field(default_factory=list)
    scans: collections.Counter[str] = field(default_factory=collections.Counter)

    def violate(self, text: str) -> None:
        self.violations.append(text)


class Chaos:
    def __init__(self, seconds: float, seed: int, workers: int, gates: int, db: str) -> None:
        self.seconds, self.rng, self.workers, self.gate_count = (
            seconds,
            random.Random(seed),
            workers,
            gates,
        )
        self.db = db
        self.env = {**os.environ, "TICKETHUB_WEBHOOK_SECRET": SECRET}
        self.env.pop("TICKETHUB_FAULT", None)
        self.report = Report()
        self.keys: dict[str, list[str]] = {}
        self.callback_ids: list[tuple[str, bytes]] = []
        self.last_callback_order: tuple[int, int] | None = None
        self.batch_rows: dict[str, str] = {}
        self.tmp = tempfile.mkdtemp(prefix="th-chaos-")
        self._reader: Any = None
        self._errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        # keys repeat often (retries, replays), yet a long run keeps making new orders
        self.key_pool = max(60, int(seconds * 3))

    # ---------------------------------------------------------------------------- setup

    def rows(self, sql: str) -> list[tuple]:
        """Rows of one statement read straight from the database (either backend)."""
        if self._reader is None:
            self._reader, self._errors = _open_reader(self.db)
        return [tuple(r) for r in self._reader.execute(sql).fetchall()]

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [exe(), "--db", self.db, "--json", *args],
            capture_output=True,
            text=True,
            env=env or self.env,
            timeout=120,
        )

    def setup(self) -> None:
        import tickethub_cli as th
        from tickethub_cli import events

        s, _, _ = th.init_session(self.db, operator="chaos")
        event = events.create_event(s, name="Chaos", starts_at="2027-01-01T20:00:00Z")
        self.event_id = event["id"]
        self.types = [
            events.add_ticket_type(s, event["id"], name=n, price=p, capacity=c, max_per_order=4)[
                "id"
            ]
            # enough seats that a long run keeps selling rather than meeting SOLD_OUT only
            for n, p, c in (("GA", "20", max(80, int(self.seconds * 4))), ("VIP", "75.50", 15))
        ]
        s.close()

    # -------------------------------------------------------------------------- sellers

    def seller_args(self) -> tuple[str, list[str], dict[str, str]]:
        rng = self.rng
        roll = rng.random()
        env = dict(self.env)
        if roll < 0.08:
            return "reconcile", ["reconcile", "--stale-after", str(rng.choice([0, 1, 60]))], env
        if roll < 0.16:
            return self.callback_args()
        if roll < 0.20:
            cashier = self.cashier_args(env)
            if cashier is not None:
                return cashier
        if roll < 0.24:
            oid = self.random_order()
            if oid is not None:
                if rng.random() < 0.5:
                    force = ["--force"] if rng.random() < 0.3 else []
                    return "cancel", ["order", "cancel", str(oid), "--reason", "chaos", *force], env
                card = rng.choice([OK, DECLINED, TIMEOUT])
                return "pay", ["order", "pay", str(oid), "--pay", "card", "--card", card], env
        if roll < 0.38:
            return self.batch_args(env)
        if roll < 0.44:
            type_id = rng.choice(self.types)
            return (
                "create",
                [
                    "order",
                    "create",
                    "-i",
                    f"{type_id}:{rng.randint(1, 3)}",
                    "--hold-minutes",
                    rng.choice(["0.02", "15"]),
                ],
                env,
            )
        key = f"key-{rng.randint(0, self.key_pool)}"
        args = self.keys.get(key)
        if args is None or rng.random() < 0.05:  # now and then the same key, another request
            type_id = rng.choice(self.types)
            pay = rng.choices(["ok", "cash", "declined", "timeout"], [6, 3, 1, 1])[0]
            args = ["purchase", "-i", f"{type_id}:{rng.randint(1, 3)}", "-k", key]
            args += (
                ["--pay", "cash"]
                if pay == "cash"
                else [
                    "--pay",
                    "card",
                    "--card",
                    {"ok": OK, "declined": DECLINED, "timeout": TIMEOUT}[pay],
                ]
            )
            self.keys.setdefault(key, args)
        if rng.random() < 0.12:
            env["TICKETHUB_FAULT"] = rng.choice(FAULTS)
        return "purchase", args, env

    def cashier_args(self, env: dict[str, str]) -> tuple[str, list[str], dict[str, str]] | None:
        """At the desk: an order whose card outcome is unknown gets cash, or is called off."""
        found = self.rows(
            "SELECT order_id FROM payments WHERE status IN ('unknown', 'pending')"
            " ORDER BY random() LIMIT 1"
        )
        if not found:
            return None
        row = found[0]
        if self.rng.random() < 0.6:
            return "cash_after_unknown", ["order", "pay", str(row[0]), "--pay", "cash"], env
        return "cancel_unknown", ["order", "cancel", str(row[0]), "--reason", "gave up"], env

    def batch_args(self, env: dict[str, str]) -> tuple[str, list[str], dict[str, str]]:
        """A small batch file; its keys come from their own pool, each always the same row,
        so re-runs replay and never conflict."""
        rng = self.rng
        rows = []
        for _ in range(rng.randint(2, 8)):
            key = f"bkey-{rng.randint(0, self.key_pool)}"
            if key not in self.batch_rows:
                pay = rng.choices(["ok", "cash", "declined", "timeout"], [6, 3, 1, 1])[0]
                card = {"ok": OK, "declined": DECLINED, "timeout": TIMEOUT}.get(pay, "")
                self.batch_rows[key] = (
                    f"{key},{rng.choice(self.types)},{rng.randint(1, 3)},,,"
                    f"{'cash' if pay == 'cash' else 'card'},{card}"
                )
            if all(not r.startswith(key + ",") for r in rows):
                rows.append(self.batch_rows[key])
        path = os.path.join(self.tmp, f"batch-{rng.randint(0, 10**9)}.csv")
        with open(path, "w") as fh:
            fh.write("idempotency_key,ticket_type_id,quantity,email,name,pay,card\n")
            fh.write("\n".join(rows) + "\n")
        if rng.random() < 0.12:
            env["TICKETHUB_FAULT"] = rng.choice(FAULTS)
        return "batch", ["batch", path], env

    def random_order(self) -> int | None:
        rows = self.rows("SELECT id FROM orders ORDER BY random() LIMIT 1")
        return rows[0][0] if rows else None

    def callback_args(self) -> tuple[str, list[str], dict[str, str]]:
        import hashlib
        import hmac

        rng = self.rng
        if self.callback_ids and rng.random() < 0.3:
            name, payload = rng.choice(self.callback_ids)  # a repeat, possibly out of order
        else:
            found = self.rows("SELECT id, total_minor FROM orders ORDER BY random() LIMIT 1")
            if not found:
                return "reconcile", ["reconcile"], dict(self.env)
            row = found[0]
            if self.last_callback_order is not None and rng.random() < 0.4:
                row = self.last_callback_order  # a twin: another id, same order, same moment
            self.last_callback_order = row
            body = {
                "id": f"cb-{rng.randint(0, 10**9)}",
                "order_id": row[0],
                "status": rng.choice(["succeeded", "succeeded", "failed"]),
                "amount_minor": row[1],
            }
            payload = json.dumps(body).encode()
            name = f"cb-{len(self.callback_ids)}.json"
            self.callback_ids.append((name, payload))
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as fh:
            fh.write(payload)
        sig = hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
        if rng.random() < 0.1:
            sig = "0" * 64
        return (
            "callback",
            ["payment", "callback", "--payload", path, "--signature", sig],
            dict(self.env),
        )

    # ---------------------------------------------------------------------------- gates

    def start_gates(self) -> list[tuple[subprocess.Popen[str], list[str], threading.Thread]]:
        probe = subprocess.run([exe(), "gate", "--help"], capture_output=True, text=True)
        if probe.returncode != 0:
            print("chaos: no `gate` command in this build; running without gates")
            return []
        gates = []
        for n in range(self.gate_count):
            p = subprocess.Popen(
                [
                    exe(),
                    "--db",
                    self.db,
                    "--json",
                    "gate",
                    "--event",
                    str(self.event_id),
                    "--gate",
                    f"g{n}",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
                bufsize=1,
            )
            lines: list[str] = []
            reader = threading.Thread(
                target=lambda p=p, lines=lines: lines.extend(p.stdout), daemon=True
            )
            reader.start()
            gates.append((p, lines, reader))
        return gates

    def feed_gates(self, gates: list) -> None:
        if not gates:
            return
        codes = [r[0] for r in self.rows("SELECT code FROM tickets ORDER BY random() LIMIT 3")]
        for code in codes:
            targets = self.rng.sample(gates, k=min(2, len(gates)))  # same code, two gates
            for p, _, _ in targets:
                try:
                    p.stdin.write(code + "\n")
                    p.stdin.flush()
                except (BrokenPipeError, OSError):
                    self.report.violate("a gate process died")

    # ------------------------------------------------------------------------------ run

    def run(self) -> Report:
        self.setup()
        gates = self.start_gates()
        jobs: list[Job] = []
        deadline = time.monotonic() + self.seconds
        last_feed = 0.0
        while time.monotonic() < deadline or jobs:
            now = time.monotonic()
            while now < deadline and len(jobs) < self.workers:
                kind, args, env = self.seller_args()
                p = subprocess.Popen(
                    [exe(), "--db", self.db, "--json", *args],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                kill_at = now + self.rng.uniform(0.05, 0.6) if self.rng.random() < 0.1 else None
                jobs.append(Job(kind, p, kill_at, now, env.get("TICKETHUB_FAULT")))
                self.report.launched[kind] += 1
            for job in list(jobs):
                if job.kill_at is not None and job.proc.poll() is None and now >= job.kill_at:
                    job.proc.send_signal(signal.SIGKILL)
                    self.report.kills += 1
                    job.kill_at = None
                if job.proc.poll() is not None:
                    self.finish(job)
                    jobs.remove(job)
            if gates and now - last_feed > 0.2 and now < deadline:
                self.feed_gates(gates)
                last_feed = now
            time.sleep(0.01)  # polling cadence of the harness, not a synchronisation
        self.stop_gates(gates)
        self.verify()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.report

    def finish(self, job: Job) -> None:
        out, err = job.proc.communicate()
        code = job.proc.returncode
        self.report.exits[f"{job.kind}:{code}"] += 1
        if "Traceback" in err or "Traceback" in out:
            self.report.violate(f"traceback from {job.kind}: {err[-300:]}")
        if code == 1:
            self.report.violate(f"internal error (exit 1) from {job.kind}: {err[-300:]}")
        if code == 7 and job.fault == "busy_after_charge":
            self.check_busy_after_charge(job, err)
        elif code == 7:
            self.report.violate(f"DB_BUSY/DB_ERROR from {job.kind}: {err[-300:]}")
        if code not in SELLER_CODES | {2, 3, 7}:
            self.report.violate(f"unexpected exit {code} from {job.kind}: {err[-300:]}")
        if code == 2 and job.kind != "callback":
            self.report.violate(f"bad input from generated {job.kind}: {err[-300:]}")

    def check_busy_after_charge(self, job: Job, err: str) -> None:
        """The settlement met a busy database after the charge: the error must name the
        order and the key, and say that a payment may exist (a later retry finishes it)."""
        try:
            body = json.loads(err)["error"]
        except (ValueError, KeyError):
            self.report.violate(f"busy_after_charge without a JSON error: {err[-300:]}")
            return
        if not body.get("order_id") or not body.get("idempotency_key"):
            self.report.violate(f"busy_after_charge error names no order or key: {body}")
        if not body.get("payment_may_exist"):
            self.report.violate(f"busy_after_charge error hides the charge: {body}")
        self.report.exits["busy_after_charge named order+key"] += 1

    def stop_gates(self, gates: list) -> None:
        admitted: collections.Counter[int] = collections.Counter()
        for p, lines, reader in gates:
            p.stdin.close()
            code = p.wait(timeout=60)
            reader.join(timeout=10)
            err = p.stderr.read()
            if code != 0 or "Traceback" in err:
                self.report.violate(f"gate exited {code}: {err[-300:]}")
            for line in lines:
                body = json.loads(line)
                if "summary" in body:
                    continue
                self.report.scans[body["result"]] += 1
                if body["result"] == "ADMITTED":
                    admitted[body["ticket_id"]] += 1
        twice = [t for t, n in admitted.items() if n > 1]
        if twice:
            self.report.violate(f"tickets admitted twice by the gates: {twice[:10]}")

    def verify(self) -> None:
        # the run is over: a day later every hold has expired, so nothing may stay PENDING
        later = {**self.env, "TICKETHUB_CLOCK_OFFSET": "86400"}
        for attempt in range(2):
            rec = self.cli("reconcile", "--stale-after", "0", env=later)
            if rec.returncode != 0:
                self.report.violate(f"reconcile failed: {rec.stderr[-300:]}")
            elif attempt == 1 and json.loads(rec.stdout)["repaired"]:
                self.report.violate("a second reconcile still repaired something")
        doc = self.cli("doctor")
        if doc.returncode != 0:
            self.report.violate(f"doctor: {doc.stdout[-1500:]}")
        checks = {
            "orders left PENDING": "SELECT count(*) FROM orders WHERE status = 'PENDING'",
            "keys with two orders": "SELECT count(*) FROM (SELECT idempotency_key FROM orders"
            " GROUP BY idempotency_key HAVING count(*) > 1) AS x",
            "oversold types": "SELECT count(*) FROM ticket_types WHERE sold + held > capacity",
            "sold differs from seats taken": "SELECT count(*) FROM ticket_types t WHERE sold <>"
            " (SELECT count(*) FROM tickets k JOIN orders o ON o.id = k.order_id"
            " WHERE k.ticket_type_id = t.id AND ((k.status = 'valid' AND o.status = 'PAID')"
            " OR (k.status = 'void' AND k.checked_in_at IS NOT NULL)))",
            "more admitted than places": "SELECT count(*) FROM (SELECT k.ticket_type_id FROM"
            " tickets k JOIN ticket_types t ON t.id = k.ticket_type_id WHERE k.checked_in_at"
            " IS NOT NULL GROUP BY k.ticket_type_id HAVING count(*) > max(t.capacity)) AS x",
            "tickets admitted twice": "SELECT count(*) FROM (SELECT ticket_id FROM scans"
            " WHERE result = 'ADMITTED' AND dry_run = 0 GROUP BY ticket_id"
            " HAVING count(*) > 1) AS x",
            "captured charges of unpaid orders": "SELECT count(*) FROM mockpay_charges m"
            " JOIN orders o ON o.id = m.order_id WHERE m.status = 'captured'"
            " AND o.status <> 'PAID'",
            # the money invariant on the provider's side: what it kept per order
            "provider keeps money of unpaid orders, or not the total of paid ones": (
                "SELECT count(*) FROM orders o WHERE (SELECT coalesce(sum(CASE WHEN m.status"
                " IN ('captured', 'refunded') THEN m.amount_minor - m.refunded_minor ELSE 0 END),"
                " 0) FROM mockpay_charges m WHERE m.order_id = o.id) NOT IN (0, CASE WHEN"
                " o.status = 'PAID' AND o.pay_method = 'card' THEN o.total_minor ELSE 0 END)"
            ),
            "orders with two captured charges at the provider": "SELECT count(*) FROM (SELECT"
            " order_id FROM mockpay_charges WHERE status = 'captured' GROUP BY order_id"
            " HAVING count(*) > 1) AS x",
            "refunded more than captured at the provider": "SELECT count(*) FROM mockpay_charges"
            " WHERE refunded_minor > amount_minor",
            "refunds still owed": "SELECT count(*) FROM payments WHERE refund_state = 'requested'",
        }
        for name, sql in checks.items():
            try:
                n = self.rows(sql)[0][0]
            except self._errors as exc:  # e.g. no scans table column yet (an older build)
                n = 0
                print(f"chaos: check {name!r} skipped: {exc}")
            if n:
                self.report.violate(f"{name}: {n}")
        self.totals = dict(
            orders=self.rows("SELECT count(*) FROM orders")[0][0],
            payments=self.rows("SELECT count(*) FROM payments")[0][0],
            refunds=self.rows("SELECT count(*) FROM payments WHERE status = 'refunded'")[0][0],
            cash_after_unknown=self.rows(
                "SELECT count(*) FROM payments c JOIN payments u ON u.order_id = c.order_id"
                " AND u.id < c.id WHERE c.method = 'cash' AND u.method = 'card'"
            )[0][0],
            paid=self.rows("SELECT count(*) FROM orders WHERE status='PAID'")[0][0],
            sold=int(self.rows("SELECT sum(sold) FROM ticket_types")[0][0] or 0),
            admitted=self.rows("SELECT count(*) FROM tickets WHERE checked_in_at IS NOT NULL")[0][
                0
            ],
        )
        self._reader.close()
        self._reader = None


def _open_reader(target: str) -> tuple[Any, tuple[type[Exception], ...]]:
    """A plain connection for the harness's own reads (autocommit: every read is fresh),
    and the errors its driver raises."""
    from tickethub_cli.store.url import is_postgres

    if is_postgres(target):
        import psycopg

        return psycopg.connect(target, autocommit=True), (psycopg.Error,)
    return sqlite3.connect(target, isolation_level=None), (sqlite3.Error,)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--workers", type=int, default=4, help="concurrent seller processes")
    ap.add_argument("--gates", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the database for inspection")
    ap.add_argument(
        "--db-url",
        default=None,
        help="run on this PostgreSQL database (postgresql://…, empty: made with createdb)"
        " instead of a new SQLite file",
    )
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randint(0, 10**6)
    from tickethub_cli.store.url import is_postgres

    if args.db_url is not None and not is_postgres(args.db_url):
        ap.error("--db-url takes a postgresql:// URL (without it the run makes an SQLite file)")
    folder = tempfile.mkdtemp(prefix="th-chaos-db-")
    db = args.db_url or os.path.join(folder, "chaos.db")
    print(
        f"chaos: seed {seed}, {args.seconds:g} s, {args.workers} sellers, {args.gates} gates,"
        f" db {display(db)}"
    )
    chaos = Chaos(args.seconds, seed, args.workers, args.gates, db)
    report = chaos.run()
    print("chaos: launched", dict(report.launched))
    print("chaos: exits (command:code)", dict(sorted(report.exits.items())))
    print("chaos: kills", report.kills, "| scans", dict(report.scans))
    print("chaos: totals", chaos.totals)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    if report.violations:
        print(f"chaos: {len(report.violations)} VIOLATION(S) — replay with --seed {seed}")
        for v in report.violations:
            print("  -", v)
        return 1
    print("chaos: every guarantee held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
