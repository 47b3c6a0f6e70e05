"""What every command shares: the global options, opening the session, printing results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer

from .. import render
from ..session import Session, init_session, open_session
from ..settings import Settings


@dataclass
class Globals:
    db: str
    json: bool
    operator: str
    debug: bool
    settings: Settings = field(default_factory=Settings)  # built once, from options and env
    server: str | None = None  # gate/validate against `tickethub serve` instead of the file
    token: str | None = None


def globals_of(ctx: typer.Context) -> Globals:
    root = ctx.find_root()
    if isinstance(root.obj, Globals):
        return root.obj
    settings = Settings.from_env()
    return Globals(settings.db_path, settings.json, settings.default_operator(), False, settings)


def session(ctx: typer.Context) -> Session:
    g = globals_of(ctx)
    return open_session(g.settings, g.operator)


def new_session(ctx: typer.Context) -> tuple[Session, int, bool]:
    g = globals_of(ctx)
    return init_session(g.settings, g.operator)


def output(ctx: typer.Context, payload: dict[str, Any], human: Callable[[], None]) -> None:
    """JSON mode prints exactly one object; human mode calls the Rich view, falling back to
    a plain dump of `payload` if the view fails: what was committed is always reported."""
    if globals_of(ctx).json:
        render.emit_json(payload)
    else:
        render.human_or_plain(human, payload)


def is_json(ctx: typer.Context) -> bool:
    return globals_of(ctx).json
