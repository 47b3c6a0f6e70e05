"""`make bench`: run every benchmark and rewrite bench/RESULTS.md with the machine, the date,
the commands and each figure next to its reference measured in the same run.

    .venv/bin/python bench/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, normal args, quick args); a script that is missing is reported, not skipped silently
BENCHES = [
    ("startup.py", [], ["--runs", "6"]),
    ("orders.py", [], ["--single", "200", "--workers", "16", "--per-worker", "3"]),
    ("batch.py", [], ["--rows", "500"]),
    ("gate.py", [], ["--scans", "2000"]),
    ("million.py", [], ["--tickets", "100000"]),
    ("http.py", [], ["--seconds", "3"]),  # needs wrk (Debian package); says so if missing
    # PostgreSQL beside SQLite (a pgserver PostgreSQL 16 started for the run)
    (
        "postgres.py",
        [],
        [
            "--n",
            "200",
            "--rounds",
            "1",
            "--procs",
            "4",
            "--per-proc",
            "5",
            "--http-seconds",
            "3",
            "--tickets",
            "100000",
        ],
    ),
    ("db_copy.py", [], ["--tickets", "20000"]),
]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){mem};"
        f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    sections = []
    failed = []
    for script, normal, quick in BENCHES:
        path = HERE / script
        if not path.exists():
            sections.append(f"## {script}\n\nNot present in this build.\n")
            continue
        print(f"bench: running {script} …", flush=True)
        done = subprocess.run(
            [sys.executable, str(path), *(quick if args.quick else normal)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            failed.append(script)
            sections.append(
                f"## {script}\n\nFAILED (exit {done.returncode}):\n\n```\n"
                f"{done.stderr[-2000:]}\n```\n"
            )
        else:
            sections.append(done.stdout.strip() + "\n")
        print(done.stdout)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        "# Benchmark results\n\n"
        f"Written by `make bench` (`.venv/bin/python bench/run_all.py"
        f"{' --quick' if args.quick else ''}`) on {now}.\n\n"
        f"Machine: {machine()}.\n\n"
        "Each figure stands next to its reference, measured in the same run on the same "
        "machine; ratios, not absolute numbers, are what carry across machines.\n"
    )
    history = HERE / "HISTORY.md"  # before/after comparisons measured by hand, kept as-is
    if history.exists():
        sections.append(history.read_text())
    Path(args.out).write_text(header + "\n" + "\n".join(sections))
    print(f"bench: wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
