"""``POST /v0/delegate`` and ``POST /v1/delegate``: one thin route shape for both."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from prometheus_client import Counter
from starlette.responses import Response

from tkms.metric_labels import Children
from tkms.node.audit import AuditNote, Decisions
from tkms.node.delegation_v1 import REQUESTED_EPOCH
from tkms.node.request_checks import chain_of_request
from tkms.web import openapi
from tkms.web.common import json_response, require_json_type
from tkms.web.errors import ApiError
from tkms.web.fastpath import query_values, reads_scope


class Delegate(Protocol):
    """(chain_id, salt, Authorization header, body, note) → the answer; raises ApiError.

    An awaitable answer is awaited (``user`` mode reads the chain: node/user_checks.py).

    ``note`` is filled in as the checks pass, for the audit log.
    """

    def __call__(
        self,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        body: bytes,
        note: AuditNote | None = None,
    ) -> Mapping[str, Any] | Awaitable[Mapping[str, Any]]: ...


Ready = Callable[[str | None], Awaitable[None]]
"""(chain_id) → None when the chain may be served now; raises ApiError (e.g. a 503)."""


def _epoch(raw: str | None) -> int | None:
    """``?epoch=`` (optional): which epoch's share answers, while a node holds two."""
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise ApiError(400, "invalid_epoch", "epoch must be a decimal integer")
    return int(raw)


class PlainRoute(APIRoute):
    """An APIRoute whose endpoint takes the Request and returns a Response itself.

    FastAPI's per-request handler (dependency solving, endpoint context,
    response serialization) costs about as much as a scalar multiplication;
    an endpoint that only needs the raw request skips it. Everything else is
    the APIRoute's: matching (and ``scope["route"]``, which the Metrics
    middleware reads for its route template), 405 answers, exception handlers
    and the OpenAPI entry.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler


def _headers(scope: Mapping[str, Any]) -> tuple[str, str | None]:
    """(Content-Type, Authorization) as Starlette's ``request.headers.get`` reads them
    (the first of each name; "" and None when absent), in one pass over the scope's list."""
    ctype: str | None = None
    authorization: str | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if ctype is None:
                ctype = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    return ctype or "", authorization


def add_delegate_route(
    app: FastAPI,
    version: str,
    delegate: Delegate,
    chains: Mapping[int, Any],
    delegations: Children[Counter],
    decisions: Decisions,
    ready: Ready | None = None,
) -> None:
    # Served at every read of a record: the query and the two headers it needs are read
    # from the scope (no QueryParams, no Headers: web/fastpath.py's reads_scope).
    @reads_scope
    async def endpoint(request: Request) -> Response:
        scope = request.scope
        query = query_values(scope["query_string"])
        chain_raw = query.get("chain_id")
        note = AuditNote(version)
        # Every request that reaches the route is one decision, served or refused
        # (docs/audit.md); a body over the limit is refused before it, by BodyLimit.
        try:
            ctype, authorization = _headers(scope)
            require_json_type(ctype)
            REQUESTED_EPOCH.set(_epoch(query.get("epoch")))
            if ready is not None:
                await ready(chain_raw)
            answer = delegate(
                chain_raw, query.get("salt"), authorization, await request.body(), note
            )
            # A dict is the common answer: isawaitable would ask the Awaitable ABC of it.
            if type(answer) is not dict and inspect.isawaitable(answer):
                answer = await answer
        except ApiError as exc:
            decisions.record(note, "refused", exc.code)
            raise
        except Exception:
            decisions.record(note, "refused", "internal_error")
            raise
        decisions.record(note, "served", None)
        # Label by the resolved id (the raw value is the caller's to vary): the delegate
        # resolved it into the note, or it is resolved again here.
        chain_id = note.chain_id
        if chain_id is None:
            chain_id = chain_of_request(chain_raw, chains)
        delegations(str(chain_id), version).inc()
        return json_response(answer)

    endpoint.__name__ = f"delegate_{version}"
    app.router.add_api_route(
        f"/{version}/delegate",
        endpoint,
        methods=["POST"],
        route_class_override=PlainRoute,
        openapi_extra=openapi.DELEGATE,
    )
