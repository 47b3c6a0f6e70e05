"""Start-up: whole-process wall time of one-shot commands against a minimal Typer app that
prints "ok", median of N alternating runs (so both see the same machine state).

    .venv/bin/python bench/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchlib import fresh_shop, median, scratch_dir, tickethub_exe

MINIMAL = """import typer
app = typer.Typer()
@app.command()
def main() -> None:
    print("ok")
app()
"""


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 11):
        raise SystemExit(f"{argv} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def compare(ours: list[str], reference: list[str], runs: int) -> tuple[float, float]:
    a, b = [], []
    timed(ours), timed(reference)  # warm the page cache for both
    for _ in range(runs):
        a.append(timed(ours))
        b.append(timed(reference))
    return median(a), median(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    path, _ = fresh_shop(scratch_dir("startup"), capacity=10)
    minimal = os.path.join(tempfile.mkdtemp(), "minimal_typer.py")
    with open(minimal, "w") as fh:
        fh.write(MINIMAL)
    reference = [sys.executable, minimal]
    rows = []
    cases = [("tickethub --json event list", ["--json", "event", "list"])]
    probe = subprocess.run([tickethub_exe(), "validate", "--help"], capture_output=True)
    if probe.returncode == 0:
        cases.append(
            (
                "tickethub --json validate CODE --event 1",
                [
                    "--json",
                    "validate",
                    "0000-0000-0000-0000-0000-0000",
                    "--event",
                    "1",
                    "--dry-run",
                ],
            )
        )
    for label, argv in cases:
        ours, ref = compare([tickethub_exe(), "--db", path, *argv], reference, args.runs)
        rows.append((label, ours, ref))
    print("## Start-up (issues 2 and 4)\n")
    print(
        f"Command: `.venv/bin/python bench/startup.py --runs {args.runs}` — whole processes,"
        f" median of {args.runs} alternating runs.\n"
    )
    print("| command | ours | minimal Typer app | ratio | goal |")
    print("|---|---|---|---|---|")
    for label, ours, ref in rows:
        verdict = "met" if ours / ref <= 1.15 else "MISSED"
        print(
            f"| `{label}` | {ours * 1000:.0f} ms | {ref * 1000:.0f} ms | {ours / ref:.2f}x |"
            f" ≤ 1.15x ({verdict}) |"
        )
    print()


if __name__ == "__main__":
    main()
