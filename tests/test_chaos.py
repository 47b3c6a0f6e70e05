"""The short chaos run (about 20 s) inside the suite; `make chaos` runs the long one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "chaos.py"


def test_short_chaos_run_keeps_every_guarantee(backend, make_db):
    seconds = os.environ.get("TICKETHUB_CHAOS_SECONDS", "20" if backend == "sqlite" else "12")
    seed = os.environ.get("TICKETHUB_CHAOS_SEED", "20261124")
    target = [] if backend == "sqlite" else ["--db-url", make_db("chaos")]
    done = subprocess.run(
        [sys.executable, str(TOOL), "--seconds", seconds, "--seed", seed, *target],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "every guarantee held" in done.stdout
