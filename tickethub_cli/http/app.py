"""The FastAPI application: routes, the error handlers (all through deps.error_response) and
the edge (request ids, body bound, access log). Built per process by `create_app`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TextIO

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .. import __version__
from ..db import DatabaseError, translate
from ..errors import ErrorCode, TicketHubError
from .deps import Backend, error_response, validation_error
from .edge import Edge

_HTTP_CODES = {
    400: ErrorCode.INVALID_INPUT,  # FastAPI's "error parsing the body" (not UTF-8, too deep)
    404: ErrorCode.NOT_FOUND,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
}


def create_app(db_path: str, *, access_log: TextIO | None = sys.stderr) -> Any:
    """An ASGI app over the database at `db_path` (opened and checked now: a missing or
    too-old file is refused before the server binds). Returns the app wrapped in the edge."""
    backend = Backend(db_path)
    backend.check()  # NOT_FOUND / schema errors now, not on the first request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        backend.close()  # drain queued writes before the process ends

    app = FastAPI(
        title="TicketHub",
        version=__version__,
        description="The box office over HTTP: the services of the `tickethub` CLI.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend

    @app.exception_handler(TicketHubError)
    async def _domain(request: Request, exc: TicketHubError) -> Response:
        return error_response(exc)

    def _token_first(request: Request) -> Response | None:
        """FastAPI reads a JSON body before it runs the token dependency: a body it cannot
        parse would answer 400 to a caller without a valid token. Every route whose body
        FastAPI parses needs a token, so that caller gets the 401 (as on fast.py's routes)."""
        try:
            backend.token_for(request.headers.get("authorization"))
        except TicketHubError as err:
            return error_response(err)
        return None

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            refused = _token_first(request)
            if refused is not None:
                return refused
        return error_response(validation_error(errors))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:  # the body could not be parsed: see _token_first
            refused = _token_first(request)
            if refused is not None:
                return refused
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.USAGE)
        response = error_response(TicketHubError(code, str(exc.detail)))
        response.status_code = exc.status_code
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(DatabaseError)
    async def _db(request: Request, exc: DatabaseError) -> Response:
        return error_response(translate(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        return error_response(
            TicketHubError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")
        )

    from .routes import router

    app.include_router(router)
    from .fast import FastPath

    edge = Edge(app, access_log, fast=FastPath(backend))
    app.state.edge = edge
    edge.state = app.state  # type: ignore[attr-defined]  # tests reach the backend
    return edge
