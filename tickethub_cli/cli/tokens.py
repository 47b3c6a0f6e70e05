"""`token create|list|revoke`: the API tokens of `tickethub serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from .base import app
from .common import output, session

token_app = typer.Typer(
    help="API tokens for the HTTP server (tickethub serve).", no_args_is_help=True
)
app.add_typer(token_app, name="token")


@token_app.command(
    "create",
    epilog="Example: `tickethub token create --role gate --event 1 --name north-door`",
)
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="admin, box-office, gate or viewer.")],
    event: Annotated[
        str | None, typer.Option("--event", help="Only this event (gate tokens).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A label, for the audit log.")] = None,
) -> None:
    """Create a token and print its secret: shown this once, stored only as a hash."""
    from .. import tokens

    token, secret = tokens.create_token(session(ctx), role=role, event_id=event, name=name)

    def human() -> None:
        render.fields(
            f"Token {token['id']}",
            [("role", token["role"]), ("event", token["event_id"] or "any"), ("name", name)],
        )
        render.line(secret, style="bold")
        render.line("the secret is shown only now; store it where the client can read it")

    output(ctx, {"token": token, "secret": secret}, human)


@token_app.command("list", epilog="Example: `tickethub --json token list`")
def token_list(ctx: typer.Context) -> None:
    """Every token (never a secret), revoked ones with the time they were revoked."""
    from .. import tokens

    found = tokens.list_tokens(session(ctx))

    def human() -> None:
        if not found:
            render.line("no tokens; create one with `tickethub token create --role ROLE`")
            return
        render.table(
            "Tokens",
            ("id", "role", "event", "name", "created", "revoked"),
            [
                [
                    t["id"],
                    t["role"],
                    t["event_id"] or "any",
                    t["name"] or "",
                    t["created_at"],
                    t["revoked_at"] or "",
                ]
                for t in found
            ],
            numeric=("id",),
        )

    output(ctx, {"tokens": found}, human)


@token_app.command(
    "revoke",
    epilog="Example: `tickethub token create --role viewer --name old && tickethub token revoke 1`",
)
def token_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID")]
) -> None:
    """Revoke a token: refused (401) from its next request on."""
    from .. import tokens

    token = tokens.revoke_token(session(ctx), token_id)
    output(
        ctx,
        {"token": token},
        lambda: render.line(f"token {token['id']} revoked at {token['revoked_at']}"),
    )
