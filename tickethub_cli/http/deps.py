"""The HTTP layer's one door into the domain: sessions, the writer, errors → statuses, tokens.

Routes never open connections or map errors themselves: reads run on per-thread sessions in
the thread pool, writes go through the process's group-commit writer, and every error
leaves through `error_response` with the status of ONE table (`STATUS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .. import tokens
from ..db import DatabaseError
from ..errors import ErrorCode, TicketHubError
from ..session import Session, open_session
from ..store.url import is_postgres
from ..store.writer import Writer
from ..validation import UNSAFE_CHARS

# The one error → status table of the HTTP transport (HTTP_API.md, "Errors").
STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.USAGE: 400,
    ErrorCode.SIGNATURE_INVALID: 400,
    ErrorCode.AMOUNT_MISMATCH: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.PAYMENT_DECLINED: 402,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.INVALID_STATE: 409,
    ErrorCode.IN_PROGRESS: 409,
    ErrorCode.SOLD_OUT: 409,
    ErrorCode.IDEMPOTENCY_MISMATCH: 422,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.DB_ERROR: 500,
    ErrorCode.BATCH_PARTIAL: 500,
    ErrorCode.INVARIANT_VIOLATION: 500,
    ErrorCode.PAYMENT_UNKNOWN: 502,
    ErrorCode.DB_BUSY: 503,
}
RETRY_AFTER: dict[ErrorCode, int] = {ErrorCode.IN_PROGRESS: 1, ErrorCode.DB_BUSY: 1}

JSON_TYPE = "application/json"
# and lone surrogates, which UTF-8 cannot carry: escaped, never a failed answer
_UNSHOWABLE = re.compile(UNSAFE_CHARS.pattern[:-1] + "\ud800-\udfff]")
# json.dumps with any keyword builds a new encoder per call: one, reused (it keeps no state)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(payload: Any) -> bytes:
    """The one serializer of response bodies (compact, UTF-8, key order as built). Stored
    text is data: characters that steer a terminal or reorder text (C1, bidi controls, line
    separators; json escapes C0 itself) leave as \\u escapes, the same JSON value, so
    `curl` in a terminal shows them inert, as the CLI's --json does."""
    out = _ENCODER.encode(payload)
    if _UNSHOWABLE.search(out) is not None:
        out = _UNSHOWABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return out.encode("utf-8")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None):
    return Response(dumps(payload), status, headers=headers, media_type=JSON_TYPE)


def status_of(err: TicketHubError) -> int:
    return STATUS.get(err.code, 500)


def error_headers(err: TicketHubError) -> dict[str, str]:
    retry = err.details.get("retry_after") if err.code is ErrorCode.RATE_LIMITED else None
    retry = retry or RETRY_AFTER.get(err.code)
    return {"Retry-After": str(retry)} if retry else {}


def error_body(err: TicketHubError) -> dict[str, Any]:
    return {"error": err.to_dict()}


def error_response(err: TicketHubError) -> Response:
    return json_response(error_body(err), status_of(err), error_headers(err))


def validation_error(errors: Sequence[Any]) -> TicketHubError:
    """pydantic's complaint as one INVALID_INPUT line naming the field (the input is never
    echoed: it may hold a card number)."""
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or "body"
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "json_invalid":
        field, message = "body", "request body is not valid JSON"
    return TicketHubError(ErrorCode.INVALID_INPUT, f"{field}: {message}", details={"field": field})


def unauthorized(message: str = "a valid bearer token is required") -> TicketHubError:
    return TicketHubError(
        ErrorCode.UNAUTHORIZED,
        message,
        hint="send Authorization: Bearer <secret> from `tickethub token create`",
    )


def forbidden(message: str) -> TicketHubError:
    return TicketHubError(ErrorCode.FORBIDDEN, message)


# Reads of one process that run at once on PostgreSQL: each holds a server connection,
# and a server has ~100 for every process of every machine (SQLite's readers cost a file
# handle each and keep the thread pool's own bound)
PG_READERS = 8


class Backend:
    """What one server process holds: the database path, a pool of read sessions, the
    writer, and the idempotency keys this process is working on right now."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dialect = backend_name(path)
        self._idle: list[Session] = []  # read sessions not in use (the last used first)
        self._sessions: list[Session] = []  # every open read session, to close at the end
        self._lock = threading.Lock()
        self._limiter: Any = None  # PostgreSQL: PG_READERS pool reads at once (see read)
        self.writer = Writer(lambda: open_session(path, operator="http"))
        self.in_flight: set[str] = set()  # keys; touched only on the event loop
        self._known: dict[str, dict[str, Any]] = {}  # secret → token, see token_cached

    # ------------------------------------------------------------------ reading
    def check(self) -> None:
        """Open a read session now: a missing or too-old database is refused at start."""
        self._give(self._take())

    def _take(self) -> Session:
        """An idle read session, or a new one. Sessions belong to no thread (a pool thread
        may end, and its connection must not end up leaked): one read at a time each."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        s = open_session(self.path, operator="http")
        with self._lock:
            self._sessions.append(s)
        return s

    def _give(self, s: Session) -> None:
        with self._lock:
            self._idle.append(s)

    async def read(self, fn: Callable[[Session], Any]) -> Any:
        """Run a read on a pool thread, on a pooled session."""
        if not is_postgres(self.path):
            return await run_in_threadpool(self._read_now, fn)
        import anyio.to_thread

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(PG_READERS)
        return await anyio.to_thread.run_sync(self._read_now, fn, limiter=self._limiter)

    def read_here(self, fn: Callable[[Session], Any]) -> Any:
        """A read of one indexed row, on the calling thread (the event loop): cheaper than
        a hop to the pool. Only for reads that cannot wait (WAL readers never do)."""
        return self._read_now(fn)

    def _read_now(self, fn: Callable[[Session], Any]) -> Any:
        """Run a read; one that met a connection the server dropped (a PostgreSQL restart
        or failover, an idle timeout) runs once more on a new one: a read changes nothing,
        so running it again is safe, and the caller never sees the old connection's end."""
        s = self._take()
        try:
            return self._on(s, fn)
        except TicketHubError:
            if not s.broken:
                raise
        finally:
            self._settle(s)
        s = self._take()
        try:
            return self._on(s, fn)
        finally:
            self._settle(s)

    def _settle(self, s: Session) -> None:
        """Back to the idle pool, or closed and forgotten when its connection is gone."""
        if not s.broken:
            self._give(s)
            return
        with self._lock:
            if s in self._sessions:
                self._sessions.remove(s)
        with contextlib.suppress(Exception):
            s.close()

    @staticmethod
    def _on(s: Session, fn: Callable[[Session], Any]) -> Any:
        try:
            return fn(s)
        finally:
            s.end_read()  # a read never keeps a snapshot open between requests

    # ------------------------------------------------------------------ writing
    # answered on this loop, a whole commit group in one hop (see store.writer)
    async def unit(self, fn: Callable[[Session], Any], operator: str) -> Any:
        return await self.writer.unit(fn, operator, asyncio.get_running_loop())

    async def gather(self, fn: Callable[[Session, list[Any]], list[Any]], arg: Any, operator: str):
        return await self.writer.gather(fn, arg, operator, asyncio.get_running_loop())

    async def batch(self, fn: Callable[[Session, list[Any]], list[Any]], arg: Any, operator: str):
        return await self.writer.batch(fn, arg, operator, asyncio.get_running_loop())

    async def solo(self, fn: Callable[[Session], Any], operator: str) -> Any:
        return await self.writer.solo(fn, operator, asyncio.get_running_loop())

    # ------------------------------------------------------------------ tokens
    def token_for(self, authorization: str | None) -> dict[str, Any]:
        """The live token of an `Authorization: Bearer …` header; 401 otherwise. Reads only."""
        secret = bearer_secret(authorization)
        if secret is None:
            raise unauthorized()
        token = self._read_now(lambda s: tokens.authenticate(s, secret))
        if token is None:
            raise unauthorized("unknown or revoked token")
        return token

    def token_cached(self, authorization: str | None) -> dict[str, Any]:
        """`token_for` without the lookup for a secret this process has seen: ONLY for
        routes whose unit of work checks `tokens.is_live` in its own transaction first, so a
        revocation still refuses the very next request (401, nothing written). Unknown
        secrets are never remembered; a token's role and event never change."""
        secret = bearer_secret(authorization)
        token = self._known.get(secret) if secret else None
        if token is None:
            token = self.token_for(authorization)
            if len(self._known) >= 10_000:
                self._known.clear()
            self._known[secret] = token
        return token

    def close(self) -> None:
        """Drain the writer (its session closes in its thread), then close the read
        sessions (the requests that used them have all been answered)."""
        self.writer.close()
        with self._lock:
            for s in self._sessions:
                with contextlib.suppress(DatabaseError, TicketHubError):
                    s.close()
            self._sessions.clear()
            self._idle.clear()


def bearer_secret(authorization: str | None) -> str | None:
    """The secret of an `Authorization: Bearer <secret>` value (scheme in any case), or
    None for anything else: the one parser of the header, cached lookups included."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def operator_of(token: dict[str, Any]) -> str:
    """Who acts, for the audit log: the token, by id and name (never its secret)."""
    name = token.get("name")
    return f"token:{token['id']}" + (f":{name}" if name else "")


def check_role(token: dict[str, Any], roles: tuple[str, ...]) -> None:
    if token["role"] != "admin" and token["role"] not in roles:
        raise forbidden(f"a {token['role']} token may not do this")


def check_event(token: dict[str, Any], event_id: object) -> None:
    """A token bound to one event (`token create --event`) acts on that event only."""
    bound = token.get("event_id")
    if bound is not None and str(event_id).strip() != str(bound):
        raise forbidden(f"this token is for event {bound} only")


def backend_name(target: str) -> str:
    """What /healthz calls the database behind `target` (never the target itself: a URL
    may carry a password)."""
    return "postgresql" if is_postgres(target) else "sqlite"
