"""The node's HTTP surface (FastAPI): thin wrappers around :mod:`tkms.node.delegation`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, Counter
from starlette.responses import Response

from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import Wallet
from tkms.node.config import NodeConfig, load_node_config
from tkms.node.delegation import ChainKey, Delegator, resolve_chain
from tkms.node.routes_v1 import DKG_PREFIX, add_threshold_routes, build_threshold_runtime
from tkms.web import openapi
from tkms.web.common import add_common_routes, json_response, require_json
from tkms.web.errors import ApiError, install_error_handlers
from tkms.web.middleware import BodyLimit, Metrics

log = logging.getLogger("tkms.node")


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


def build_delegator(config: NodeConfig) -> Delegator:
    wallet = Wallet(parse_hex(config.wallet_key.get_secret_value(), length=32))
    chains = {
        chain_id: ChainKey(parse_hex(chain.ecc_key.get_secret_value(), length=32), chain.gateway())
        for chain_id, chain in config.chains.items()
        if chain.ecc_key is not None
    }
    return Delegator(wallet, chains)


def create_app(config: NodeConfig) -> FastAPI:
    registry = CollectorRegistry()
    delegations = Counter(
        "tkms_node_delegations_total",
        "Delegations served, by chain and protocol version",
        ["chain_id", "version"],
        registry=registry,
    )
    errors = Counter(
        "tkms_node_errors_total", "Error answers by error code", ["code"], registry=registry
    )
    delegator = build_delegator(config)

    app = FastAPI(title="tkms node", version="0.1.0", docs_url=None, redoc_url=None)
    install_error_handlers(app, on_error=lambda code: errors.labels(code).inc())
    add_common_routes(app, config.service_name, registry)

    async def delegate_v0(request: Request) -> Response:
        require_json(request)
        query = request.query_params
        answer = delegator.delegate_v0(
            query.get("chain_id"),
            query.get("salt"),
            request.headers.get("authorization"),
            await request.body(),
        )
        # Label by the resolved id: the raw value is the caller's to vary.
        delegations.labels(str(resolve_chain(query.get("chain_id"), delegator.chains)), "v0").inc()
        return json_response(answer)

    app.router.add_api_route(
        "/v0/delegate",
        delegate_v0,
        methods=["POST"],
        route_class_override=PlainRoute,
        openapi_extra=openapi.DELEGATE,
    )

    threshold = build_threshold_runtime(config, delegator.wallet)
    add_threshold_routes(app, threshold, delegations)

    app.state.delegator = delegator
    app.state.threshold = threshold
    app.add_middleware(
        BodyLimit,
        limit=config.max_body_bytes,
        prefix_limits={DKG_PREFIX: config.dkg_max_body_bytes},
    )
    app.add_middleware(Metrics, registry=registry, prefix="tkms_node")
    log.info(
        "node signer 0x%s, chains %s", delegator.wallet.address.hex(), sorted(delegator.chains)
    )
    return app


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: each worker process reads the same environment."""
    return create_app(load_node_config())


__all__ = ["ApiError", "create_app", "create_app_from_env"]
