"""The gate against a server: `tickethub --server URL --token T gate|validate …`.

Scanners on other devices share one box office: each scan is a `POST /tickets/validate`
on one keep-alive connection (the standard library's http.client: no web stack is loaded),
and its answer becomes the same ScanResult the local gate prints. Importing this module
loads neither fastapi, starlette nor uvicorn.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from ..checkin import NOT_JUDGED, RESULTS, ScanResult, check_gate_name
from ..errors import ErrorCode, TicketHubError, invalid

TIMEOUT_S = 30.0
# answered, but not judged: the scanner says "scan again" for that line and goes on
_SCAN_AGAIN = (ErrorCode.DB_BUSY, ErrorCode.RATE_LIMITED, ErrorCode.IN_PROGRESS)


class Remote:
    """One connection to a TicketHub server, with a bearer token."""

    def __init__(self, url: str, token: str | None) -> None:
        parts = urlsplit(url.strip())
        if parts.username is not None or parts.password is not None:  # never echoed back
            raise invalid("--server must not carry a user or password: the token goes in --token")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise invalid(f"--server must be an http(s) URL, got {url[:80]!r}")
        if not token or not token.strip():
            raise invalid("--server needs --token (or TICKETHUB_TOKEN)")
        self._https = parts.scheme == "https"
        # a bearer token in clear text beyond this machine: said once on stderr by the CLI
        self.insecure = not self._https and parts.hostname not in ("localhost", "127.0.0.1", "::1")
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self._token = token.strip()
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = kind(self._host, self._port, timeout=TIMEOUT_S)
        return self._conn

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST JSON; (status, decoded body). One reconnect if a kept-alive connection was
        closed by the server meanwhile (a scan is safe to send again only then: nothing
        reached the server)."""
        data = json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
        }
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", self._base + path, data, headers)
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                if attempt == 2:
                    raise _unreachable(exc) from None
                continue
            try:
                response = conn.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                self.close()
                raise _unreachable(exc) from None
            try:
                return response.status, json.loads(raw or b"{}")
            except ValueError:
                raise _not_tickethub(response.status) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _unreachable(exc: BaseException) -> TicketHubError:
    return TicketHubError(
        ErrorCode.DB_BUSY,
        f"server not reachable ({type(exc).__name__}: {exc})",
        hint="check --server and the network, then scan again",
    )


def _not_tickethub(status: int) -> TicketHubError:
    """The server's answer is not one a TicketHub server gives (a proxy's page, another
    service, a hostile one): like a file that is not a TicketHub database, not our bug."""
    return TicketHubError(
        ErrorCode.DB_ERROR,
        f"the server answered {status} but not as a TicketHub server does",
        hint="check --server",
    )


def _error(body: dict[str, Any], status: int) -> TicketHubError:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return _not_tickethub(status)
    try:
        code = ErrorCode(str(err.get("code")))
    except ValueError:
        return _not_tickethub(status)
    return TicketHubError(code, str(err.get("message", "")), order_id=err.get("order_id"))


class RemoteGate:
    """What `Gate` offers the CLI (scan, answer_many, event_id, gate), over HTTP."""

    def __init__(
        self, remote: Remote, event_id: object, gate: str | None = None, *, dry_run: bool = False
    ) -> None:
        self.remote = remote
        text = str(event_id).strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise TicketHubError(ErrorCode.NOT_FOUND, f"event {text[:40]!r} not found")
        self.event_id = int(text)
        self.gate = check_gate_name(gate)
        self.dry_run = dry_run

    def scan(self, raw: str) -> ScanResult:
        """One scan; an error answer is raised (as the local `validate` would)."""
        status, body = self._send(raw)
        if status != 200:
            raise _error(body, status)
        return _result(body)

    def answer_many(self, raws: list[str]) -> list[ScanResult]:
        """Each line answered in order; a line the server could not judge now (busy, rate
        limited, unreachable) is answered "scan again"; any other error ends the gate."""
        results = []
        for raw in raws:
            try:
                status, body = self._send(raw)
            except TicketHubError as err:
                status, body = 503, {"error": err.to_dict()}
            if status == 200:
                results.append(_result(body))
                continue
            err = _error(body, status)
            if err.code not in _SCAN_AGAIN:
                raise err
            error = {"code": str(err.code), "message": f"{err.message}; scan again"}
            results.append(
                ScanResult(
                    raw[:64], NOT_JUDGED, event_id=self.event_id, gate=self.gate, error=error
                )
            )
        return results

    def _send(self, raw: str) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"code": raw, "event_id": self.event_id}
        if self.gate is not None:
            body["gate"] = self.gate
        if self.dry_run:
            body["dry_run"] = True
        return self.remote.post("/tickets/validate", body)


def _result(body: dict[str, Any]) -> ScanResult:
    """The answer as a ScanResult, once its shape is the validate JSON's (the gate looks
    results up by name and prints the rest: anything else is refused, never a crash)."""
    if not (
        isinstance(body, dict)
        and body.get("result") in RESULTS
        and all(_is(body.get(k), int) for k in ("ticket_id", "event_id"))
        and all(_is(body.get(k), str) for k in ("code", "first_used_at", "gate"))
    ):
        raise _not_tickethub(200)
    return ScanResult(
        str(body.get("code", "")),
        str(body["result"]),
        body.get("ticket_id"),
        body.get("event_id"),
        body.get("first_used_at"),
        body.get("gate"),
        bool(body.get("dry_run", False)),
    )


def _is(value: Any, kind: type) -> bool:
    """None, or a `kind` (a bool is no id)."""
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))
