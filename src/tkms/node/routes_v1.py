"""Threshold routes of a node: ``/v1/keyset``, ``/v1/delegate`` and ``/v1/dkg/…``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import Counter
from starlette.responses import Response

from tkms.metric_labels import Children
from tkms.node.audit import Decisions
from tkms.node.delegate_route import Delegate, Ready, add_delegate_route
from tkms.node.dkg_service import DkgService
from tkms.node.reshare_service import ReshareService
from tkms.node.runtime import ThresholdRuntime
from tkms.web import openapi
from tkms.web.common import json_response, require_json
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json

DKG_PREFIX = "/v1/dkg/"
RESHARE_PREFIX = "/v1/reshare/"


async def _json_body(request: Request) -> Any:
    require_json(request)
    return parse_json(await request.body())


def add_threshold_routes(
    app: FastAPI,
    runtime: ThresholdRuntime,
    delegations: Children[Counter],
    decisions: Decisions,
    ready: Ready | None = None,
    delegate: Delegate | None = None,
) -> None:
    """``ready`` gates ``/v1/delegate`` per chain (the on-chain key check, node/chain.py);
    ``delegate`` replaces the gateway-mode answer (``user`` mode, node/user_checks.py)."""
    partials = runtime.partials

    @app.get("/v1/keyset", openapi_extra=openapi.operation(query=("chain_id",)))
    async def keyset(request: Request) -> Response:
        return json_response(partials.keyset(request.query_params.get("chain_id")))

    add_delegate_route(
        app,
        "v1",
        delegate or partials.delegate_v1,
        partials.gateways,
        delegations,
        decisions,
        ready,
    )

    def dkg() -> DkgService:
        if runtime.dkg is None:
            raise ApiError(403, "dkg_disabled", "this node has no state directory for key shares")
        return runtime.dkg

    @app.get("/v1/dkg/identity")
    async def dkg_identity() -> Response:
        return json_response(dkg().identity_json())

    @app.post(
        "/v1/dkg/start",
        openapi_extra=openapi.operation(
            body=openapi.fields(config="object", authorization=openapi.HEX)
        ),
    )
    async def dkg_start(request: Request) -> Response:
        service = dkg()
        return json_response(service.start(await _json_body(request)))

    @app.post(
        "/v1/dkg/round",
        openapi_extra=openapi.operation(
            body=openapi.fields(
                sessionId=openapi.HEX, round="integer", messages="array", authorization=openapi.HEX
            )
        ),
    )
    async def dkg_round(request: Request) -> Response:
        service = dkg()
        return json_response(service.step(await _json_body(request)))

    def reshare() -> ReshareService:
        if runtime.reshare is None:
            raise ApiError(403, "dkg_disabled", "this node has no state directory for key shares")
        return runtime.reshare

    @app.post(
        "/v1/reshare/start",
        openapi_extra=openapi.operation(
            body=openapi.fields(config="object", authorization=openapi.HEX)
        ),
    )
    async def reshare_start(request: Request) -> Response:
        service = reshare()
        return json_response(service.start(await _json_body(request)))

    @app.post(
        "/v1/reshare/round",
        openapi_extra=openapi.operation(
            body=openapi.fields(
                sessionId=openapi.HEX, round="integer", messages="array", authorization=openapi.HEX
            )
        ),
    )
    async def reshare_round(request: Request) -> Response:
        service = reshare()
        return json_response(service.step(await _json_body(request)))
