"""What every request passes first and last (pure ASGI, no per-request objects of its own):
a request id, the 1 MiB body bound, and one structured access-log line.

The log line names the route's template (`/tickets/{code}`), never the raw path, and never a
header or a body: no token secret, ticket code or card number can reach the log.

Lines are written as each request ends when the server is otherwise idle; while other
requests are in flight they are gathered and written together at the end of the event loop's
turn (one write for a whole commit group's answers instead of one per line), and at most
LOG_BATCH lines wait. Only a kill -9 can lose the lines of that one turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TextIO

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 1 << 20  # 1 MiB
LOG_BATCH = 256  # access-log lines gathered at most before they are written
_TOO_LARGE = json.dumps(
    {"error": {"code": "INVALID_INPUT", "message": "request body larger than 1 MiB"}}
).encode()


_q = json.encoder.encode_basestring_ascii  # a JSON string literal, as json.dumps writes it
_PREFIX = f"{uuid.uuid4().hex[:12]}-{os.getpid():x}-"  # unique per process start
_serial = itertools.count(1)


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-Id when it is a sane token (so a trace spans systems), else
    a fresh one: this process's random prefix and a serial (no syscall per request)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and all(33 <= ord(ch) < 127 for ch in text):
                return text
            break
    return f"{_PREFIX}{next(_serial)}"


class Edge:
    def __init__(self, app: Any, log: TextIO | None = sys.stderr, fast: Any = None) -> None:
        self.app = app
        self.log = log
        self.fast = fast  # answers the hot routes without the framework (fast.py)
        self.in_flight = 0  # requests being answered now (healthz shows it: drain checks)
        self._lines: list[str] = []  # access-log lines not yet written (see flush_log)
        self._second = -1
        self._stamp = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())
        state["request_id_header"] = rid_header  # fast.py sends it itself
        size = 0
        self.in_flight += 1
        try:
            body = await self._bounded_body(scope, receive)
            if body is None:
                await _send_413(_tagged(send, state, rid_header))
                return
            size = len(body)
            if self.fast is None or not await self.fast(scope, body, send):
                await self.app(scope, _replay(body, receive), _tagged(send, state, rid_header))
        finally:
            self.in_flight -= 1
            if self.log is not None:
                self._log(scope, rid, state.get("status", 0), started, size)

    async def _bounded_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it is over MAX_BODY (by Content-Length before
        reading a byte, or counted while streaming a chunked one)."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                text = value.decode("latin-1").strip()
                if not text.isdigit() or int(text) > MAX_BODY:
                    return None if text.isdigit() else b""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _log(self, scope: Scope, rid: str, status: int, started: float, size: int) -> None:
        route = scope.get("route")
        state = scope.get("state", {})
        now = time.time()
        if int(now) != self._second:  # the same text for every line of one second
            self._second = int(now)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._second))
        path = getattr(route, "path", None) or state.get("route")
        token_id = state.get("token_id")
        # the JSON object {"at", "request_id", "method", "route", "status", "ms", "bytes_in",
        # "token_id"}, written out (a line per request: a third of the encoder's time)
        self._lines.append(
            f'{{"at":"{self._stamp}","request_id":{_q(rid)},"method":{_q_or_null(scope.get("method"))},'
            f'"route":{_q_or_null(path)},"status":{int(status)},'
            f'"ms":{round((time.perf_counter() - started) * 1000, 2)!r},"bytes_in":{int(size)},'
            f'"token_id":{"null" if token_id is None else int(token_id)}}}\n'
        )
        if self.in_flight == 0 or len(self._lines) >= LOG_BATCH:
            self.flush_log()
        elif len(self._lines) == 1:
            asyncio.get_running_loop().call_soon(self.flush_log)

    def flush_log(self) -> None:
        """Write the gathered access-log lines (a broken log never fails a request)."""
        if not self._lines or self.log is None:
            return
        text, self._lines = "".join(self._lines), []
        with contextlib.suppress(OSError, ValueError):
            self.log.write(text)


def _q_or_null(text: str | None) -> str:
    return "null" if text is None else _q(text)


def _tagged(send: Send, state: dict[str, Any], rid_header: tuple[bytes, bytes]) -> Send:
    """`send` that records the status and adds the request id header (fast.py does both
    itself)."""

    async def tagged(message: Message) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
            message = {**message, "headers": [*message.get("headers", ()), rid_header]}
        await send(message)

    return tagged


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _send_413(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_TOO_LARGE)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _TOO_LARGE})
