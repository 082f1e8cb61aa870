"""CORS: Starlette's middleware with JSON refusals, and its answers' headers for the fast path.

:class:`JsonCORS` is Starlette's ``CORSMiddleware`` whose refused preflights are
our JSON error. :class:`SimpleCors` adds to an answer the headers that
middleware's ``send`` adds to a non-preflight answer, for a layer that answers
without it (the gateway's reads, :mod:`tkms.web.fastpath`): the same headers
in the same order, byte for byte, computed once per configuration instead of
through ``MutableHeaders`` per answer. An answer that already carries one of
the headers it sets (whose merge rules are the middleware's) goes through the
middleware's own ``send``, unchanged.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from tkms.web.errors import error_body
from tkms.web.middleware import Message, Send

RawHeaders = list[tuple[bytes, bytes]]
_VARY_ORIGIN = (b"vary", b"Origin")
_ALLOW_ORIGIN = b"access-control-allow-origin"


class JsonCORS(CORSMiddleware):
    """A refused preflight answers 400 in the JSON error shape, not Starlette's text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode("ascii", "replace").removeprefix("Disallowed CORS ")
        headers = {
            k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
        }
        return Response(
            error_body("cors_refused", f"CORS preflight refused: {refused} not allowed"),
            status_code=400,
            headers=headers,
            media_type="application/json",
        )


def request_origin(raw: RawHeaders) -> bytes | None:
    """The first ``Origin`` of a request's headers (ASGI names are lower case), as
    ``Headers.get("origin")`` finds it."""
    for name, value in raw:
        if name == b"origin":
            return value
    return None


class SimpleCors:
    """What ``cors.send`` does to a non-preflight answer's ``http.response.start``."""

    def __init__(self, cors: CORSMiddleware) -> None:
        self.cors = cors
        self._simple: RawHeaders = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in cors.simple_headers.items()
        ]
        # The names the middleware sets: an answer with none of them is only appended to.
        self._names = frozenset({name for name, _ in self._simple} | {b"vary", _ALLOW_ORIGIN})
        self._explicit = cors.allow_all_origins and cors.allow_credentials
        self._without_origin: RawHeaders = [_VARY_ORIGIN]
        self._with_origin: RawHeaders = [*self._simple, _VARY_ORIGIN]

    def _added(self, origin: bytes | None) -> RawHeaders:
        """Headers appended to an answer that has none of ``_names``, in the middleware's order."""
        if origin is None:
            return self._without_origin  # its `else`: Vary, whatever the configuration
        cors = self.cors
        if self._explicit:  # the simple headers, "*" replaced in place by the origin
            return [
                (name, origin if name == _ALLOW_ORIGIN else value) for name, value in self._simple
            ] + [_VARY_ORIGIN]
        if not cors.allow_all_origins and cors.is_allowed_origin(origin.decode("latin-1")):
            return [*self._simple, (_ALLOW_ORIGIN, origin), _VARY_ORIGIN]
        return self._with_origin

    async def send(self, message: Message, send: Send, request: RawHeaders) -> None:
        """Send ``message`` (any ASGI message) as it leaves the middleware."""
        if message["type"] == "http.response.start":
            headers: RawHeaders = message.get("headers", [])
            if not any(name in self._names for name, _ in headers):
                origin = request_origin(request)
                message["headers"] = [*headers, *self._added(origin)]
            else:
                await self.cors.send(message, send, Headers(raw=request))
                return
        await send(message)
