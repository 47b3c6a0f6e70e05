"""The command-line layer: thin Typer commands over the service modules.

`main()` is the console script. Errors of every kind leave through one place here: a typed
error becomes one line (or a JSON object) on stderr and its exit code; a bug becomes INTERNAL
(exit 1) with the traceback only under --debug.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from .. import render
from ..db import DatabaseError
from ..errors import ErrorCode, TicketHubError


def exit_code(code: ErrorCode) -> int:
    """The exit code of an error (the table is loaded only when something failed)."""
    from .errors import exit_code as table

    return table(code)


_VALUE_OPTIONS = {"--db", "--operator", "--server", "--token"}
_FLAG_OPTIONS = {"--json", "--debug"}


def _prescan(argv: Sequence[str]) -> tuple[bool, bool]:
    """Find --json / --debug among the global options, before the parser has run."""
    from ..settings import env_flag

    as_json, debug = env_flag("TICKETHUB_JSON"), env_flag("TICKETHUB_DEBUG")
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        if token in _VALUE_OPTIONS:
            skip = True
        elif token == "--json":
            as_json = True
        elif token == "--debug":
            debug = True
        elif not token.startswith("-"):
            break
    return as_json, debug


def _db_of(argv: Sequence[str]) -> str:
    """The database a command names (for an SQLite error that escaped with no file named):
    --db among the global options, else TICKETHUB_DB or the default."""
    from ..settings import db_path_from_env

    found, skip = None, False
    for i, token in enumerate(argv):
        if skip:
            skip = False
        elif token in _VALUE_OPTIONS:
            skip = True
            if token == "--db" and i + 1 < len(argv):
                found = argv[i + 1]
        elif not token.startswith("-"):
            break
    return found or db_path_from_env()


def _usage_error(exc: typer.TyperException) -> TicketHubError:
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f"see `{ctx.command_path} --help`" if ctx is not None else "see `tickethub --help`"
    return TicketHubError(ErrorCode.USAGE, message.strip(), hint=hint)


class TicketHubGroup(TyperGroup):
    """Runs the parser in non-standalone mode so every failure is rendered our way."""

    def globals_first(self, argv: list[str]) -> list[str]:
        """Global options may also follow the command (`tickethub event list --json`):
        they are moved before it. The command's own options that take a value keep it, so
        `event create --name --json` still names the event "--json"; `--` ends the scan."""
        path: list[Any] = [self]
        head, rest, skip = [], list(argv), False
        while rest and not skip and hasattr(path[-1], "commands"):  # down to the command
            token = rest[0]
            if token in _VALUE_OPTIONS:
                head += rest[:2]
                rest = rest[2:]
            elif token.startswith("-"):
                head.append(rest.pop(0))
            else:
                sub = getattr(path[-1], "commands", {}).get(token)
                if sub is None:
                    skip = True
                else:
                    path.append(sub)
                    head.append(rest.pop(0))
        if len(path) == 1:
            return argv
        takes_value = {
            name
            for param in getattr(path[-1], "params", [])
            if not getattr(param, "is_flag", True) and not getattr(param, "count", False)
            for name in getattr(param, "opts", [])
        }
        moved: list[str] = []
        kept: list[str] = []
        i = 0
        while i < len(rest):
            token = rest[i]
            if token == "--":
                kept += rest[i:]
                break
            if token in takes_value:
                kept += rest[i : i + 2]
                i += 2
            elif token in _FLAG_OPTIONS:
                moved.append(token)
                i += 1
            elif token in _VALUE_OPTIONS and i + 1 < len(rest):
                moved += rest[i : i + 2]
                i += 2
            else:
                kept.append(token)
                i += 1
        return moved + head + kept

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not argv:
            argv = ["--help"]
        argv = self.globals_first(argv)
        as_json, debug = _prescan(argv)
        render.reset()
        code = 0
        try:
            rv = super().main(
                args=argv,
                prog_name=prog_name or "tickethub",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except TicketHubError as err:
            render.error(err, as_json=as_json)
            code = exit_code(err.code)
        except typer.TyperException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                code = 2  # a group without its subcommand: Typer has printed its help
            else:
                err = _usage_error(exc)
                render.error(err, as_json=as_json)
                code = exit_code(err.code)
        except typer.Abort:
            render.error(TicketHubError(ErrorCode.USAGE, "aborted"), as_json=as_json)
            code = 130
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            code = 130
        except DatabaseError as exc:
            from ..db import translate

            err = translate(exc, _db_of(argv))
            if debug:
                traceback.print_exc()
            render.error(err, as_json=as_json)
            code = exit_code(err.code)
        except BrokenPipeError:
            sys.stderr.close()
            code = 1
        except Exception as exc:  # noqa: BLE001 - the one place a bug becomes INTERNAL
            if debug:
                traceback.print_exc()
            err = TicketHubError(
                ErrorCode.INTERNAL,
                f"internal error: {type(exc).__name__}: {exc}",
                hint=None if debug else "rerun with --debug for the traceback, and report it",
            )
            render.error(err, as_json=as_json)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


# Which module defines each top-level command: a one-shot command loads (and builds the
# parser for) only its own module, which keeps start-up close to a bare Typer app.
COMMAND_MODULES = {
    "init": "admin",
    "event": "events",
    "ticket-type": "events",
    "purchase": "orders",
    "sell": "orders",
    "order": "orders",
    "payment": "orders",
    "reconcile": "orders",
    "doctor": "orders",
    "config": "orders",
    "batch": "batch",
    "validate": "gate",
    "gate": "gate",
    "checkin": "gate",
    "ticket": "gate",
    "report": "gate",
    "serve": "serve",
    "token": "tokens",
    "db": "database",
}
ALL_MODULES = tuple(dict.fromkeys(COMMAND_MODULES.values()))


def _command_name(argv: Sequence[str]) -> str | None:
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUE_OPTIONS:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def load_commands(modules: Sequence[str] = ALL_MODULES) -> typer.Typer:
    """Import command modules (each registers its commands on the shared app)."""
    from importlib import import_module

    from .base import app

    for name in modules:
        import_module(f".{name}", __name__)
    app.info.cls = TicketHubGroup
    return app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app, for tests and scripts: `from tickethub_cli.cli import app`
        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    command = _command_name(sys.argv[1:])
    module = COMMAND_MODULES.get(command or "")
    load_commands((module,) if module else ALL_MODULES)()
