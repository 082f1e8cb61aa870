"""Pure-ASGI middleware (BaseHTTPMiddleware costs a task per request).

:class:`BodyLimit` reads at most ``limit`` bytes of a request body and answers
413 past that, so no handler ever buffers a hostile body. :class:`Metrics`
counts requests and latency per route template (never the raw path, whose
cardinality an attacker controls) and status. CORS is :mod:`tkms.web.cors`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from tkms.web.errors import error_body, send_error_answer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    await send_error_answer(send, status, error_body(code, message), (b"connection", b"close"))


def _too_large(limit: int) -> str:
    return f"request body exceeds {limit} bytes"


async def read_body(scope: Scope, receive: Receive, send: Send, limit: int) -> bytes | None:
    """The request's whole body, at most ``limit`` bytes; None once it is answered
    (400 for a bad Content-Length, 413 past the limit) or the client has gone."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                await _send_error(send, 400, "bad_request", "invalid Content-Length")
                return None
            if declared > limit:
                await _send_error(send, 413, "payload_too_large", _too_large(limit))
                return None
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _send_error(send, 413, "payload_too_large", _too_large(limit))
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def limit_for(path: str, limit: int, prefix_limits: dict[str, int]) -> int:
    """The body limit of ``path``: the last prefix it starts with, else ``limit``."""
    for prefix, special in prefix_limits.items():
        if path.startswith(prefix):
            limit = special
    return limit


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then the real one's messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class BodyLimit:
    def __init__(
        self, app: ASGIApp, limit: int, prefix_limits: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        # Bulk endpoints (a DKG round: 1.5 MiB at n = 64) get their own ceiling.
        self.prefix_limits = prefix_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"], self.limit, self.prefix_limits)
        body = await read_body(scope, receive, send, limit)
        if body is not None:
            await self.app(scope, replaying(body, receive), send)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_CACHED_CHILDREN = 1024


class RouteMetrics:
    """Requests and latency per route template, method and status.

    One per service, shared by :class:`Metrics` and the fast path
    (:mod:`tkms.web.fastpath`), which answers its routes without that middleware.
    """

    def __init__(self, registry: CollectorRegistry, prefix: str) -> None:
        self.requests = Counter(
            f"{prefix}_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # labels() takes a lock and builds a key on every call; the children of the
        # few (route, method, status) triples a service answers are kept here.
        self._children: dict[tuple[str, str, object], tuple[Any, Any]] = {}

    def record(self, template: str, method: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        key = (template, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(template, method, str(status)),
                self.latency.labels(template),
            )
            if len(self._children) < _MAX_CACHED_CHILDREN:
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class Metrics:
    def __init__(self, app: ASGIApp, recorder: RouteMetrics) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.recorder.record(template, scope["method"], status, time.perf_counter() - start)
