"""Idempotency-Key over HTTP (IETF draft, Stripe's semantics) on top of the domain's keys.

The domain already makes a key safe (one order, one charge; a mismatch refused; a live
worker's key answered IN_PROGRESS) and shares one key space with the CLI. This adds what
HTTP needs: the key header's rule, the request hash (method, path and the validated body,
card masked as in the domain's fingerprint), an in-process guard (two requests of one
server process with one key: the second is IN_PROGRESS at once), and the stored response,
replayed byte for byte but for `"replayed": true` and the `Idempotent-Replayed` header.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from .. import idempotency
from ..errors import ErrorCode, TicketHubError, invalid
from .deps import Backend, dumps, error_body, status_of

FALSE_TAIL = b',"replayed":false}'
TRUE_TAIL = b',"replayed":true}'
# final answers worth replaying; others (busy, in progress, unknown outcome, refusals that
# wrote nothing) are not stored: a retry asks again
STORED_ERRORS = (ErrorCode.PAYMENT_DECLINED,)


def check_header(raw: str | None) -> str:
    """1-255 printable ASCII characters (the CLI's --idempotency-key rule, in ASCII)."""
    if raw is None or raw.strip() == "":
        raise invalid("Idempotency-Key header is required", hint="send a unique key per purchase")
    key = raw.strip()
    if len(key) > idempotency.MAX_KEY or not all(32 <= ord(ch) < 127 for ch in key):
        raise invalid("Idempotency-Key must be 1-255 printable ASCII characters")
    return idempotency.check_key(key)


def request_hash(method: str, path: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{method}\n{path}\n{fingerprint}".encode()).hexdigest()


def _respond(status: int, body_false: bytes, replayed: bool) -> Response:
    body = body_false[: -len(FALSE_TAIL)] + TRUE_TAIL if replayed else body_false
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(body, status, headers=headers, media_type="application/json")


def _mismatch(key: str) -> TicketHubError:
    return TicketHubError(
        ErrorCode.IDEMPOTENCY_MISMATCH,
        f"idempotency key {key!r} was used for a different request",
        hint="use a new key for a new request",
    )


async def run(
    b: Backend,
    key: str,
    digest: str,
    operator: str,
    work: Callable[[], Awaitable[Any]],
) -> Response:
    """Answer one keyed request: replay, refuse, or do `work` (→ OrderResult) and store."""
    if key in b.in_flight:
        raise TicketHubError(
            ErrorCode.IN_PROGRESS,
            f"a request with idempotency key {key!r} is still being processed",
            hint="retry in a moment",
        )
    b.in_flight.add(key)  # the loop runs one coroutine at a time: check-and-add is atomic
    try:
        stored = b.read_here(lambda s: idempotency.stored_response(s, key))
        if stored is not None:
            return _replay(key, digest, stored)
        try:
            result = await work()
        except TicketHubError as err:
            if err.code not in STORED_ERRORS or err.order_id is None:
                raise
            status, body = status_of(err), dumps({**error_body(err), "replayed": False})
            replayed = False
        else:
            if result.replayed:  # a key answered before: by another process, or the CLI
                stored = b.read_here(lambda s: idempotency.stored_response(s, key))
                if stored is not None:
                    return _replay(key, digest, stored)
            status, body = 201, dumps({"order": result.order, "replayed": False})
            replayed = result.replayed
        # the order is committed either way; unstored, a retry replays it by the domain's key
        with contextlib.suppress(TicketHubError):
            await b.unit(
                lambda s: idempotency.store_response(s, key, digest, status, body), operator
            )
        return _respond(status, body, replayed)
    finally:
        b.in_flight.discard(key)


def _replay(key: str, digest: str, stored: tuple[str, int, bytes]) -> Response:
    stored_digest, status, body = stored
    if stored_digest != digest:
        raise _mismatch(key)
    return _respond(status, body, True)
