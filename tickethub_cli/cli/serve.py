"""`serve`: the box office over HTTP (see HTTP_API.md). The only command that loads the web
stack, and only once it runs."""

from __future__ import annotations

from typing import Annotated

import typer

from .base import app
from .common import globals_of


@app.command(
    "serve",
    epilog="Example: tickethub --db box.db serve --port 8000 --workers 4 (runs until SIGTERM"
    " or Ctrl-C). Start, wait until ready, stop: `tickethub serve --port 0 > up.txt &"
    " until grep -q listening up.txt; do sleep 0.1; done; kill $!; wait $!`",
)
def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes sharing the port and the database.")
    ] = 1,
) -> None:
    """Serve the HTTP API. Prints `listening on http://HOST:PORT` when ready; SIGTERM or
    Ctrl-C finishes every request in flight, then exits 0."""
    from ..errors import invalid
    from ..http import server

    if not 0 <= port <= 65535:
        raise invalid("--port must be 0..65535")
    if not 1 <= workers <= 64:
        raise invalid("--workers must be 1..64")
    raise typer.Exit(server.run(globals_of(ctx).db, host, port, workers))
