"""`tickethub serve` under load, next to a minimal Starlette endpoint on the same uvicorn
settings, measured alternately in the same session (issue 12's goals: validate ≥ 0.5× the
minimal endpoint and ≥ 3,000/s; cash purchase ≥ 1,000/s with p99 < 100 ms; 0 oversell, 0 5xx).

The load comes from outside the server process: wrk (Debian package `wrk`) when installed,
else an asyncio/httpx client in its own processes. 64 keep-alive connections, 10 s per run.

    .venv/bin/python bench/http.py [--seconds 10] [--connections 64] [--workers 1] [--runs …]
"""

from __future__ import annotations

import sys
from pathlib import Path

# this file's name shadows the standard library's `http` package for anything imported
# after it (starlette, httpx): take our folder off the path before importing them
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


# --------------------------------------------------------------------------- servers


def minimal_server() -> None:
    """The reference: one Starlette route answering a small JSON body, same uvicorn config."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tickethub_cli.http import server

    async def ok(request):  # type: ignore[no-untyped-def]
        await request.body()
        return Response(b'{"ok":true}', media_type="application/json")

    app = Starlette(routes=[Route("/", ok, methods=["GET", "POST"])])

    def ready(s):  # type: ignore[no-untyped-def]
        server._announce("127.0.0.1", s.servers[0].sockets[0].getsockname()[1])

    srv = server._Server(server._config(app, "127.0.0.1", 0), ready)
    server._calm_signals()
    srv.run()


def start(cmd: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.startswith("listening on "):
        p.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return p, line.split()[-1]


def stop(p: subprocess.Popen) -> None:
    p.terminate()
    p.wait(timeout=60)


# --------------------------------------------------------------------------- load


LUA = {
    "minimal": """
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
""",
    "validate": """
local codes = {%(codes)s}
local n = 0
wrk.headers["Authorization"] = "Bearer %(gate)s"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local code = codes[(n %% #codes) + 1]
  return wrk.format("POST", "/tickets/validate", nil,
    '{"code":"' .. code .. '","event_id":%(event)d,"gate":"bench"}')
end
""",
    "purchase": """
local counter = 0
local ids = 0
setup = function(thread) ids = ids + 1; thread:set("id", ids) end  -- a global per thread
request = function()
  counter = counter + 1
  local headers = {["Authorization"] = "Bearer %(box)s", ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = "bench-%(run)s-" .. id .. "-" .. counter}
  return wrk.format("POST", "/tickets/purchase", headers,
    '{"items":[{"ticket_type_id":%(type)d,"quantity":1}],"pay":"cash"}')
end
""",
}


def wrk(url: str, script: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            fh.name,
            url + ("/" if "wrk.format" not in script else ""),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(fh.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "requests": total,
        "p50_ms": _ms(out, "50%"),
        "p99_ms": _ms(out, "99%"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _ms(out: str, label: str) -> float:
    m = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


# --------------------------------------------------------------------------- setup


def prepare(workdir: str) -> dict[str, object]:
    import tickethub_cli as th
    from tickethub_cli import events, orders, tokens

    db = os.path.join(workdir, "bench.db")
    s, _, _ = th.init_session(db, operator="bench")
    event = events.create_event(s, name="Bench", starts_at="2027-06-01T20:00:00Z")
    seats = events.add_ticket_type(s, event["id"], name="GA", price="25.00", capacity=10_000_000)
    door = events.add_ticket_type(s, event["id"], name="Door", price="10.00", capacity=2000)
    reqs = [
        orders.OrderRequest.parse(items=[f"{door['id']}:1"], pay="cash", idempotency_key=f"d{i}")
        for i in range(2000)
    ]
    sold = orders.purchase_many(s, reqs)
    codes = [t["code"] for r in sold for t in r.order["tickets"]]  # type: ignore[union-attr]
    gate = tokens.create_token(s, role="gate")[1]
    box = tokens.create_token(s, role="box-office")[1]
    s.close()
    return {
        "db": db,
        "event": event["id"],
        "type": seats["id"],
        "codes": codes,
        "gate": gate,
        "box": box,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--runs",
        default="minimal,validate,minimal,purchase",
        help="the runs, in order (e.g. minimal,validate,minimal,validate,minimal)",
    )
    ap.add_argument("--minimal-server", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.minimal_server:
        minimal_server()
        return 0
    if shutil.which("wrk") is None:
        print("## http.py\n\nNot run: `wrk` is not installed (`apt-get install wrk`).\n")
        return 0
    work = tempfile.mkdtemp(prefix="th-http-bench-")
    env = prepare(work)
    db = str(env["db"])
    tickethub = str(BIN / "tickethub")
    rows = []
    checks = []
    names = args.runs.split(",")
    if "minimal" not in names or any(n not in LUA for n in names):
        raise SystemExit(f"--runs: a list of {', '.join(LUA)}, minimal among them")
    for run, name in enumerate(names):
        if name == "minimal":
            proc, url = start([sys.executable, __file__, "--minimal-server"])
        else:
            proc, url = start(
                [tickethub, "--db", db, "serve", "--port", "0", "--workers", str(args.workers)],
            )
        script = LUA[name] % {
            "codes": ",".join(f'"{c}"' for c in env["codes"]),  # type: ignore[union-attr]
            "gate": env["gate"],
            "box": env["box"],
            "event": env["event"],
            "type": env["type"],
            "run": f"{run}-{int(time.time())}",
        }
        try:
            result = wrk(url, script, args.seconds, args.connections)
        finally:
            stop(proc)
        rows.append((name, result))
    conn = sqlite3.connect(db)
    sold, held, cap = conn.execute(
        "SELECT sold, held, capacity FROM ticket_types WHERE id = ?", (env["type"],)
    ).fetchone()
    tickets = conn.execute(
        "SELECT count(*) FROM tickets WHERE ticket_type_id = ?", (env["type"],)
    ).fetchone()[0]
    paid = conn.execute("SELECT count(*) FROM orders WHERE status = 'PAID'").fetchone()[0]
    conn.close()
    checks.append(
        f"sold {sold} = tickets {tickets} ≤ capacity {cap}, held {held}; PAID orders {paid}"
    )
    doctor = subprocess.run(
        [tickethub, "--db", db, "--json", "doctor"], capture_output=True, text=True
    )
    checks.append(f"doctor: {json.loads(doctor.stdout)['ok'] if doctor.stdout else doctor.stderr}")
    minimal = [r for n, r in rows if n == "minimal"]
    ref = sum(r["rps"] for r in minimal) / len(minimal)
    print("## http.py (tickethub serve)\n")
    print(
        f"wrk, 2 threads, {args.connections} keep-alive connections, {args.seconds} s per run,"
        f" server `--workers {args.workers}` (uvicorn, httptools, uvloop when installed);"
        " runs alternate with a minimal Starlette endpoint (one POST route answering"
        ' `{"ok":true}`) on the same uvicorn settings. Load generator and server share'
        f" this machine's {os.cpu_count()} cores.\n"
    )
    print("| run | requests/s | × minimal | p50 ms | p99 ms | non-2xx | socket errors |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['rps']:,.0f} | {r['rps'] / ref:.2f} | {r['p50_ms']:.1f} |"
            f" {r['p99_ms']:.1f} | {r['non_2xx']} | {r['socket_errors'] or '-'} |"
        )
    print()
    for line in checks:
        print(f"- {line}")
    print(
        "\nGoals (issue 12): validate ≥ 0.5× minimal and ≥ 3,000/s; cash purchase ≥ 1,000/s,"
        " p99 < 100 ms; 0 oversell, 0 5xx. Reference: pretix (PostgreSQL, gunicorn ×8)"
        " redeems ~30/s and creates ~10 orders/s on this kind of machine.\n"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
