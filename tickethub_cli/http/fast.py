"""The two hot routes without the framework's per-request machinery.

`POST /tickets/validate` and `POST /tickets/purchase` (with a JSON body) are answered here,
by the very functions the FastAPI routes call (routes.scan, routes.do_purchase) after
the same checks in the same order: the token (401/403, nothing written), then the body (the
same pydantic model, strict), then the route's work; errors through the same table. FastAPI
keeps the routes for /openapi.json and answers any other request to them. Measured: the
dependency solving, routing and middleware stack of FastAPI cost more than the scan itself.
The answer leaves as the two raw ASGI messages (no Response object per request), carrying
the same headers a Response would plus the edge's request id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from ..db import translate
from ..errors import ErrorCode, TicketHubError
from . import models as m
from . import routes
from .deps import JSON_TYPE, Backend, check_role, dumps, error_response, validation_error

# a Response, or the body of a 200 JSON answer
Handler = Callable[[Backend, dict[str, Any], Any, dict[bytes, bytes]], Awaitable[Any]]
_JSON_TYPE = (b"content-type", JSON_TYPE.encode())


async def _validate(b: Backend, token: dict[str, Any], body: Any, headers: dict[bytes, bytes]):
    return await routes.scan(b, token, body)  # a 200 answer's body: sent as raw bytes


async def _purchase(b: Backend, token: dict[str, Any], body: Any, headers: dict[bytes, bytes]):
    key = headers.get(b"idempotency-key")
    return await routes.do_purchase(b, token, body, None if key is None else key.decode("latin-1"))


# (body model, roles, handler, whether its unit re-checks the token: see token_cached)
ROUTES: dict[tuple[str, str], tuple[type[BaseModel], tuple[str, ...], Handler, bool]] = {
    ("POST", "/tickets/validate"): (m.ValidateIn, routes.GATE, _validate, True),
    ("POST", "/tickets/purchase"): (m.PurchaseIn, routes.BOX_OFFICE, _purchase, False),
}


class FastPath:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def __call__(self, scope: Any, body: bytes, send: Any) -> bool:
        """Answer the request if it is one of ROUTES with a JSON body; False otherwise."""
        entry = ROUTES.get((scope["method"], scope["path"]))
        if entry is None:
            return False
        headers = dict(scope["headers"])
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return False
        model, roles, handler, rechecked = entry
        state = scope.setdefault("state", {})
        state["route"] = scope["path"]
        try:
            authorization = headers.get(b"authorization")
            lookup = self.backend.token_cached if rechecked else self.backend.token_for
            token = lookup(None if authorization is None else authorization.decode("latin-1"))
            state["token_id"] = token["id"]
            check_role(token, roles)
            try:
                parsed = model.model_validate_json(body)
            except ValidationError as exc:
                raise validation_error(exc.errors()) from None
            response = await handler(self.backend, token, parsed, headers)
        except TicketHubError as err:
            response = error_response(err)
        except sqlite3.Error as exc:
            response = error_response(translate(exc))
        except Exception as exc:  # noqa: BLE001 - the route's own "bug → 500 INTERNAL"
            response = error_response(
                TicketHubError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}")
            )
        if isinstance(response, dict):  # the headers a json_response would carry, in order
            status, answer = 200, dumps(response)
            sent = [(b"content-length", b"%d" % len(answer)), _JSON_TYPE]
        else:
            status, answer, sent = response.status_code, response.body, response.raw_headers
        state["status"] = status
        rid = state.get("request_id_header")
        if rid is not None:
            sent = [*sent, rid]
        await send({"type": "http.response.start", "status": status, "headers": sent})
        await send({"type": "http.response.body", "body": answer})
        return True
