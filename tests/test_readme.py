"""The output README shows is what the commands print (tools/readme_transcripts.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support import tickethub_exe

ROOT = Path(__file__).resolve().parent.parent


def test_readme_transcripts_show_real_output():
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "readme_transcripts.py"),
            "--check",
            "--bin",
            str(Path(tickethub_exe()).parent),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
