"""The Typer application object and the global options every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import clock, validation
from ..settings import Settings
from .common import Globals


def _placeholder(
    self: typer.core.TyperOption | typer.core.TyperArgument, ctx: object
) -> str | None:
    """Help shows what to type, in click's style: a flag shows nothing, a value its name
    (`--event EVENT`), not Typer's `<bool>` / `<str>` type labels."""
    if self.metavar is not None:
        return self.metavar
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    return (self.name or "value").upper()


typer.core.TyperOption.display_type_rich = _placeholder  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _placeholder  # type: ignore[method-assign]

app = typer.Typer(
    name="tickethub",
    help="TicketHub: a command-line box office on one SQLite file.\n\n"
    "Global options (--db, --json, --operator, --debug) go before or after the command, e.g."
    " `tickethub --db box.db --json event list` or `tickethub event list --json`.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"tickethub {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="TICKETHUB_DB",
            metavar="PATH",
            help="Database file (env TICKETHUB_DB; default ./tickethub.db).",
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", envvar="TICKETHUB_JSON", help="Print JSON for scripts."),
    ] = False,
    operator: Annotated[
        str | None,
        typer.Option(
            "--operator",
            envvar="TICKETHUB_OPERATOR",
            metavar="NAME",
            help="Who is acting, for the audit log (env TICKETHUB_OPERATOR; default OS user).",
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="TICKETHUB_DEBUG", help="Show tracebacks of bugs."),
    ] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="TICKETHUB_SERVER",
            metavar="URL",
            help="Run `gate`/`validate` against a `tickethub serve` (env TICKETHUB_SERVER).",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="TICKETHUB_TOKEN",
            metavar="SECRET",
            help="The API token for --server (env TICKETHUB_TOKEN).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    if db is not None and not db.strip():
        from ..errors import invalid

        raise invalid(
            "--db must name a file", hint="omit --db to use TICKETHUB_DB or ./tickethub.db"
        )
    # a bad TICKETHUB_CLOCK_OFFSET (or TICKETHUB_BUSY_TIMEOUT) is refused before any write
    settings = Settings.from_env(db=db, json=json_output, debug=debug)
    clock.check_offset()
    # from --operator, TICKETHUB_OPERATOR or the OS user alike: it is stored and shown again
    who = validation.name(operator or settings.default_operator(), "operator")
    settings = settings.with_operator(who)
    if server is not None and ctx.invoked_subcommand not in ("gate", "validate"):
        from ..errors import ErrorCode, TicketHubError

        raise TicketHubError(
            ErrorCode.USAGE,
            f"--server works with `gate` and `validate` only, not `{ctx.invoked_subcommand}`",
        )
    ctx.obj = Globals(settings.db_path, json_output, who, debug, settings, server, token)
