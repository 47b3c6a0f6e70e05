"""Keep the output README shows real.

Every ```console block of README.md is a transcript: lines starting with `$ ` are commands
(run by bash, in order, across all blocks, on one fresh database in a scratch folder), and
the lines after a command are what it printed (stdout, then stderr, then `(exit N)` when
it was not 0). `--write` runs them and rewrites the blocks; `--check` (the test) runs them
and fails with a diff when the README no longer shows what the commands print.

Ticket codes, times and generated keys differ from run to run, so the comparison reads
every code as `XXXX-…`, every time as `<time>` and every generated key as `auto-<key>`.
Codes in commands (`validate KFJO-…`) are taken from the outputs before them: the README's
n-th code is this run's n-th code.

    .venv/bin/python tools/readme_transcripts.py --check | --write
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^```console\n(.*?)^```$", re.M | re.S)
CODE = re.compile(r"\b[0-9A-Za-z]{4}(?:-[0-9A-Za-z]{4}){5}\b")
TIME = re.compile(
    r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|(?: [A-Z][A-Za-z0-9+-]{1,5}))?"
    r"|\b\d\d:\d\d(?::\d\d)? [A-Z]{2,5}\b"  # today's times are shown without the date
)
ENV = {
    "TICKETHUB_DB": "box.db",
    "TICKETHUB_OPERATOR": "alice",
    "TICKETHUB_WEBHOOK_SECRET": "whsec_readme",
    "COLUMNS": "80",
    "LINES": "40",
    "TERM": "dumb",
    "NO_COLOR": "1",
}


def parse(block: str) -> list[tuple[str, list[str]]]:
    """A block's (command, output lines) pairs; a command may go on over lines ending in \\."""
    steps: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if steps:
                steps[-1][1].append(line)
            i += 1
            continue
        command = line[2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command += "\n" + lines[i]
        steps.append((command, []))
        i += 1
    return steps


def codes_in(text: str) -> list[str]:
    seen: list[str] = []
    for code in CODE.findall(text):
        if code.upper() not in seen:
            seen.append(code.upper())
    return seen


AUTO_KEY = re.compile(r"\bauto-[0-9a-f]{8,}\b")


def normal(text: str) -> str:
    text = CODE.sub("XXXX-XXXX-XXXX-XXXX-XXXX-XXXX", text)
    text = AUTO_KEY.sub("auto-<key>", text)
    return TIME.sub("<time>", text)


def run(readme: str, bin_dir: Path) -> str:
    """The README with every console block's outputs replaced by what the commands print."""
    old_codes = codes_in(
        "\n".join("\n".join(out) for b in BLOCK.findall(readme) for _, out in parse(b))
    )
    new_codes: list[str] = []
    env = {**os.environ, **ENV, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("TICKETHUB_JSON", None)
    with tempfile.TemporaryDirectory(prefix="readme-") as scratch:

        def render_block(match: re.Match[str]) -> str:
            out_lines: list[str] = []
            for command, _ in parse(match.group(1)):
                for old, new in zip(old_codes, new_codes, strict=False):
                    command = command.replace(old.lower(), new.lower())
                    command = re.sub(re.escape(old), new, command, flags=re.I)
                done = subprocess.run(
                    ["bash", "-c", command],
                    cwd=scratch,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                printed = (done.stdout + done.stderr).rstrip("\n")
                for code in codes_in(printed):
                    if code not in new_codes:
                        new_codes.append(code)
                out_lines.append(f"$ {command}")
                out_lines += [line.rstrip() for line in printed.splitlines()]
                if done.returncode != 0:
                    out_lines.append(f"(exit {done.returncode})")
            return "```console\n" + "\n".join(out_lines) + "\n```"

        return BLOCK.sub(render_block, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail with a diff when stale")
    mode.add_argument("--write", action="store_true", help="rewrite README.md's transcripts")
    parser.add_argument("--bin", default=str(Path(sys.executable).parent))
    args = parser.parse_args()
    readme = README.read_text(encoding="utf-8")
    fresh = run(readme, Path(args.bin))
    if args.write:
        README.write_text(fresh, encoding="utf-8")
        print(f"rewrote {len(BLOCK.findall(fresh))} console blocks of {README.name}")
        return 0
    old, new = normal(readme).splitlines(), normal(fresh).splitlines()
    if old == new:
        print(f"{README.name}: every console block shows what its commands print")
        return 0
    sys.stdout.writelines(
        line + "\n" for line in difflib.unified_diff(old, new, "README.md", "what runs print")
    )
    print("README.md is stale: run `.venv/bin/python tools/readme_transcripts.py --write`")
    return 1


if __name__ == "__main__":
    sys.exit(main())
