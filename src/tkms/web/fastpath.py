"""A raw ASGI fast path for a service's hot routes, in front of FastAPI.

Under FastAPI a request passes ServerErrorMiddleware, its telemetry hook, our
pure-ASGI layers (:class:`~tkms.web.middleware.Metrics`,
:class:`~tkms.web.middleware.BodyLimit`, :class:`~tkms.web.errors.CatchAll`),
ExceptionMiddleware, the router's match over every route and the route's own
wrapper: each is a coroutine, a closure around ``send`` or a regex, and
together they cost about as much as one scalar multiplication per request
(docs/performance.md). :class:`FastPath` answers a few named routes itself
and hands every other request, unchanged, to the app behind it.

For its routes it does what those layers do, in the same order and with the
same answers:

* the body is read at most to the limit BodyLimit applies to that path (the
  same ``limit`` and ``prefix_limits``)
  (400 ``bad_request`` for a bad Content-Length, 413 past the limit, nothing
  on a disconnect); GET, HEAD and OPTIONS bodies are not read, as there;
* the route's own endpoint (it takes the Request and returns a Response: a
  ``PlainRoute``, or an endpoint whose one parameter is the Request) is
  called with ``scope["route"]`` and ``path_params`` set as the router sets them;
* an exception is answered by the app's handler for its type (ApiError,
  NotEnoughNodes, …) as ExceptionMiddleware would, any other by the JSON 500
  of CatchAll (its type logged, never its message), counted by ``on_error``;
* the request is counted in the same :class:`~tkms.web.middleware.RouteMetrics`
  under the route's template (``unmatched`` when refused before the route,
  as Metrics does);
* with ``cors`` (the service's CORS middleware, configured as in its stack),
  every answer gets the headers that middleware adds to a non-preflight answer
  (:class:`~tkms.web.cors.SimpleCors`; a preflight is an OPTIONS, never a fast
  route's method).

Only the method a route names is taken (a HEAD, or any other method, falls
through to FastAPI and gets its 405). A fast route must be the router's first
match for its paths (no earlier route of the same method matching them), as
every one of ours is. A middleware placed outside the fast
path still applies; one placed inside it does not, so a service places it
inside only what does not concern its routes (the gateway's write rate limit
is for POSTs, its fast routes are GETs) or what FastPath does itself (CORS).
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.datastructures import QueryParams
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from tkms.web.cors import SimpleCors
from tkms.web.errors import send_internal_error
from tkms.web.middleware import (
    ASGIApp,
    Receive,
    RouteMetrics,
    Scope,
    Send,
    limit_for,
    read_body,
    replaying,
)

log = logging.getLogger("tkms.web")

Endpoint = Callable[[Request], Any]
ErrorHandler = Callable[[Request, Exception], Any]
_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


def query_params(raw: bytes) -> QueryParams:
    """Starlette's QueryParams of ``raw``, without parse_qsl when nothing is escaped.

    With no ``%`` and no ``+``, parse_qsl(keep_blank_values=True) only splits on
    ``&`` (dropping empty pieces) and then on the first ``=``: so does this.
    """
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return QueryParams(text)
    return QueryParams([(name, value) for name, _, value in _pieces(text)])


def _pieces(text: str) -> list[tuple[str, str, str]]:
    return [piece.partition("=") for piece in text.split("&") if piece]


def query_values(raw: bytes) -> dict[str, str]:
    """What ``query_params(raw).get(name)`` answers for each name (the last value of a
    repeated one), as a dict: for a route that reads its scope (:func:`reads_scope`)."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return {name: value for name, _, value in _pieces(text)}


def reads_scope(endpoint: Endpoint) -> Endpoint:
    """Marks a fast route's endpoint that reads its query and headers from
    ``request.scope`` itself: the fast path builds no QueryParams for it. A node's
    delegation is served at every read of a record, and each object a request builds
    counts there (docs/performance.md)."""
    endpoint.__dict__["fast_reads_scope"] = True
    return endpoint


class _Fast:
    __slots__ = ("endpoint", "method", "reads_scope", "regex", "route")

    def __init__(self, route: APIRoute, method: str) -> None:
        self.route = route
        self.method = method
        self.endpoint: Endpoint = route.endpoint
        self.reads_scope: bool = getattr(route.endpoint, "fast_reads_scope", False)
        self.regex: re.Pattern[str] | None = route.path_regex if route.param_convertors else None
        parameters = list(inspect.signature(route.endpoint).parameters.values())
        if len(parameters) != 1 or route.dependencies:
            raise TypeError(f"fast route {route.path}: its endpoint must take the Request only")


class FastPath:
    """``app`` is what runs everything else; ``fastapi`` holds the routes and handlers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        fastapi: FastAPI,
        paths: Iterable[tuple[str, str]],
        recorder: RouteMetrics,
        body_limit: int | None,
        prefix_limits: dict[str, int] | None = None,
        on_error: Callable[[str], None],
        cors: CORSMiddleware | None = None,
    ) -> None:
        self.app = app
        self.cors = SimpleCors(cors) if cors is not None else None
        self.fastapi = fastapi
        self.recorder = recorder
        self.body_limit = body_limit
        self.prefix_limits = prefix_limits or {}
        self.on_error = on_error
        self.exact: dict[tuple[str, str], _Fast] = {}
        self.patterned: list[_Fast] = []
        wanted = set(paths)
        for route in fastapi.router.routes:
            if not isinstance(route, APIRoute):
                continue
            for method in route.methods or ():
                if (method, route.path) not in wanted:
                    continue
                wanted.discard((method, route.path))
                fast = _Fast(route, method)
                if fast.regex is None:
                    self.exact[(method, route.path)] = fast
                else:
                    self.patterned.append(fast)
        if wanted:
            raise ValueError(f"fast path: no such routes {sorted(wanted)}")

    def _match(self, method: str, path: str) -> tuple[_Fast, dict[str, Any]] | None:
        fast = self.exact.get((method, path))
        if fast is not None:
            return fast, {}
        for fast in self.patterned:
            if fast.method != method or fast.regex is None:
                continue
            match = fast.regex.match(path)
            if match is not None:
                params = match.groupdict()
                for key, convert in fast.route.param_convertors.items():
                    params[key] = convert.convert(params[key])
                return fast, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self._match(scope["method"], scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        fast, params = found
        start = time.perf_counter()
        status = 500
        started = False
        template = "unmatched"
        body: bytes | None = None

        cors = self.cors

        async def record_status(message: Any) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                if cors is not None:
                    await cors.send(message, send, scope["headers"])
                    return
            await send(message)

        try:
            if self.body_limit is not None and scope["method"] not in _NO_BODY:
                limit = limit_for(scope["path"], self.body_limit, self.prefix_limits)
                body = await read_body(scope, receive, record_status, limit)
                if body is None:
                    return
                receive = replaying(body, receive)
            template = fast.route.path
            scope["app"] = self.fastapi
            scope["route"] = fast.route
            scope["path_params"] = params
            request = Request(scope, receive)
            if not fast.reads_scope:
                # What Request would compute on first use, for less (both are its own caches).
                request._query_params = query_params(scope["query_string"])
            if body is not None:
                request._body = body
            try:
                try:
                    response: Response = await fast.endpoint(request)
                except Exception as exc:
                    handled = await self._handled(request, exc)
                    if handled is None:
                        raise
                    response = handled
                await response(scope, receive, record_status)
            except Exception as exc:  # as CatchAll: the JSON 500, the type logged
                self.on_error("internal_error")
                log.error("internal_error %s", type(exc).__name__)
                if not started:
                    await send_internal_error(record_status)
        finally:
            self.recorder.record(template, scope["method"], status, time.perf_counter() - start)

    async def _handled(self, request: Request, exc: Exception) -> Response | None:
        """The app's answer for the exception's type, as ExceptionMiddleware finds it."""
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # that handler is for outer layers; CatchAll's 500 is ours
            handler: ErrorHandler | None = self.fastapi.exception_handlers.get(cls)
            if handler is not None:
                answer = handler(request, exc)
                if inspect.isawaitable(answer):
                    answer = await answer
                assert isinstance(answer, Response)
                return answer
        return None


class FastAPIWithFastPath(FastAPI):
    """A FastAPI app whose fast routes are served before FastAPI's own layers.

    As middleware, FastPath would still sit under FastAPI's ``__call__``
    (its telemetry hook), ServerErrorMiddleware and every layer outside it;
    here it is the outermost callable: the node's, and the gateway's, whose
    CORS it applies itself (``cors``). ``fast_path(...)`` takes FastPath's
    arguments; it is built on the first call, when every route is in.
    """

    _fast_options: dict[str, Any] | None = None
    _fast: FastPath | None = None

    def fast_path(self, **options: Any) -> None:
        self._fast_options = options

    def fast_path_off(self) -> None:
        """Every route through FastAPI again: the benchmarks' "before", and the
        reference tests/slow_gateway.py serves for tests/test_gateway_fastpath.py."""
        self._fast_options = self._fast = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self._fast
        if fast is None:
            if self._fast_options is None:
                await super().__call__(scope, receive, send)
                return
            fast = self._fast = FastPath(super().__call__, fastapi=self, **self._fast_options)
        await fast(scope, receive, send)
