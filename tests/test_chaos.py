"""The short chaos run inside the suite, on each backend (about 20 s on SQLite, 10 s on
PostgreSQL); `make chaos` runs the long one (`make chaos DB_URL=postgresql://…` on PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "chaos.py"


def test_short_chaos_run_keeps_every_guarantee(make_db, backend):
    default = "20" if backend == "sqlite" else "10"
    seconds = os.environ.get("TICKETHUB_CHAOS_SECONDS", default)
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
