"""Routes every tkms service answers: ``/``, ``/health``, ``/metrics``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from tkms.web.errors import ApiError

_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per call
_JSON_TYPE = (b"content-type", b"application/json")


class _JsonBytes(Response):
    """Starlette's Response of a JSON body, its two headers built here.

    The same ``raw_headers`` as ``Response(body, status, media_type=...)`` (content-length,
    then content-type), without the generic ``render`` and ``init_headers`` per answer.
    """

    media_type = "application/json"

    def __init__(self, body: bytes, status_code: int, timing: str | None = None) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), _JSON_TYPE]
        if timing is not None:  # a headers mapping's fields come first, then those two
            self.raw_headers.insert(0, (b"server-timing", timing.encode("latin-1")))


def json_response(data: object, status: int = 200, *, timing: str | None = None) -> Response:
    """Serialize with the stdlib: FastAPI's jsonable_encoder costs more than our crypto.

    The same answer as ``Response(body, status, media_type="application/json",
    headers={"Server-Timing": timing} if timing else None)``."""
    body = _COMPACT.encode(data).encode()
    if status < 200 or status in (204, 304):  # no content-length: Starlette's own rule
        headers = None if timing is None else {"Server-Timing": timing}
        return Response(body, status_code=status, media_type="application/json", headers=headers)
    return _JsonBytes(body, status, timing)


def require_json(request: Request) -> None:
    require_json_type(request.headers.get("content-type", ""))


def require_json_type(ctype: str) -> None:
    """The request's Content-Type (its first such header, "" when none) is JSON's."""
    if ctype.split(";", 1)[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "Content-Type must be application/json")


def add_common_routes(
    app: FastAPI,
    service_name: str,
    registry: CollectorRegistry,
    health_check: Callable[[], Awaitable[Response]] | None = None,
) -> None:
    """``health_check`` answers ``/health`` for a service with more to report than "up"."""

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return json_response({"service": service_name, "timestamp": now})

    @app.get("/health")
    async def health() -> Response:
        if health_check is not None:
            return await health_check()
        return json_response({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
