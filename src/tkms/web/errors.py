"""The one error shape of every endpoint: ``{"error": "<code>", "message": "…"}``.

Handlers raise :class:`ApiError`; everything else a framework raises is mapped
to the same shape, and an unexpected exception becomes a bare 500 whose body
says nothing about the code or the data (its type goes to the log, never its
message, which might hold request material, nor its traceback).

The 500 is answered by :class:`CatchAll`, a pure-ASGI layer just outside the
routes, and not by Starlette's ``ServerErrorMiddleware``: that one re-raises
after answering, so uvicorn would log the whole traceback and close the
keep-alive connection under the client's next request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tkms.web")


class ApiError(Exception):
    """A documented client (or availability) error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": code, "message": message}).encode()


def error_response(status: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status_code=status, media_type="application/json")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI, on_error: Callable[[str], None] | None = None) -> None:
    """Map every error to the JSON shape; ``on_error`` sees each code (for metrics)."""
    count = on_error or (lambda _code: None)

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        count(exc.code)
        return error_response(exc.status, exc.code, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = f"no route {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        count(code)
        response = error_response(exc.status_code, code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        count("invalid_request")
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")

    async def unexpected(_: Request, exc: Exception) -> Response:
        # Only for a failure outside CatchAll (in an outer middleware).
        count("internal_error")
        log.error("internal_error %s", type(exc).__name__)
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)
    # Added first, so innermost: its 500 still passes the metrics, limits and CORS.
    app.add_middleware(CatchAll, on_error=count)


_INTERNAL = error_body("internal_error", "internal error")


async def send_error_answer(
    send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]
) -> None:
    """An error body as raw ASGI messages, for a layer that answers below the handlers:
    ``content-type``, ``content-length``, then ``extra`` (a fresh header list each time:
    a layer outside, CORS, edits it in place)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


async def send_internal_error(send: Send) -> None:
    """CatchAll's answer, also for a layer that catches in its place (tkms.web.fastpath)."""
    await send_error_answer(send, 500, _INTERNAL)


class CatchAll:
    """Answer an exception no handler took with the JSON 500, and swallow it.

    The log gets the code and the exception's type, never its message or
    traceback. The connection stays usable: the answer is a complete response.
    If the response had already started, it cannot be answered any more: the
    server then closes that one connection (and logs one line saying so).
    """

    def __init__(self, app: ASGIApp, on_error: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.count = on_error or (lambda _code: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            self.count("internal_error")
            log.error("internal_error %s", type(exc).__name__)
            if started:
                return
            await send_internal_error(send)
