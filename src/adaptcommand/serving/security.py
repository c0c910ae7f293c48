"""Request guards: who is asking (bearer token or per-user keys), the body size limit, and
JSON error bodies (a 500 carries an error id that is in the server log, never the exception)."""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adaptcommand.serving.keys import ANONYMOUS, TOKEN_ADMIN, KeyStore, Principal
from adaptcommand.serving.schemas import ErrorDetail, ErrorResponse

log = logging.getLogger(__name__)
ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
               413: "request_too_large"}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None,
    error_id: str | None = None,
) -> JSONResponse:
    """Every error the server sends: `{"error": {message, type, code}}`, as OpenAI does."""
    kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = ErrorResponse(error=ErrorDetail(message=message, type=kind, code=status, id=error_id))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def internal_error(what: str, exc: BaseException | None = None) -> tuple[str, str]:
    """(error id, client message) for a failure the client cannot fix. `what` is a fixed
    phrase; the exception and its traceback go to the server log under the id, never to the
    client (they may name files, users or internals)."""
    error_id = f"err_{uuid.uuid4().hex[:16]}"
    log.error("error %s: %s: %r", error_id, what, exc,
              exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None)
    return error_id, f"{what} (error id {error_id}; the details are in the server log)"


def internal_error_response(what: str, exc: BaseException | None = None) -> JSONResponse:
    error_id, message = internal_error(what, exc)
    return error_response(500, message, error_id=error_id)


async def current_principal() -> Principal:
    """Placeholder dependency of every /v1 route; create_app overrides it with `authenticator`
    for the configured credentials."""
    raise NotImplementedError("create_app installs the authenticator")


def authenticator(
    token: SecretStr | None, keys: KeyStore | None
) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency naming who asks: anyone when no credential is configured, else the bearer
    token (acts for every user, admin) or a key from the keys file; anything else is a 401."""

    async def principal(request: Request) -> Principal:
        if token is None and keys is None:
            return ANONYMOUS
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and given:
            if token is not None and hmac.compare_digest(
                    given.encode(), token.get_secret_value().encode()):
                return TOKEN_ADMIN
            found = keys.lookup(given) if keys is not None else None
            if found is not None:
                return found
        raise HTTPException(401, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})

    return principal


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`, declared (Content-Length) or streamed (chunked): the
    body is read up to the limit before the app sees it, then replayed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body over the limit of {self.max_bytes} bytes"
        await error_response(413, message)(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the buffered body once, then defers to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
