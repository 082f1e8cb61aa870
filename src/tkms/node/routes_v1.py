"""Threshold routes of a node: ``/v1/keyset``, ``/v1/delegate`` and ``/v1/dkg/…``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import Counter
from starlette.responses import Response

from tkms.crypto.encoding import parse_address, parse_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.node.config import NodeConfig
from tkms.node.delegate_route import Ready, add_delegate_route
from tkms.node.dkg_service import DkgService, holding_from
from tkms.node.keystore import KeystoreError, SealedKeystore
from tkms.node.partial import PartialDelegator
from tkms.web import openapi
from tkms.web.common import json_response, require_json
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json

DKG_PREFIX = "/v1/dkg/"


@dataclass
class ThresholdRuntime:
    partials: PartialDelegator
    dkg: DkgService | None


def build_threshold_runtime(config: NodeConfig, wallet: Wallet) -> ThresholdRuntime:
    gateways = {
        chain_id: chain.gateway()
        for chain_id, chain in config.chains.items()
        if chain.gateway_address is not None
    }
    partials = PartialDelegator(wallet, gateways)
    if config.state_dir is None:
        return ThresholdRuntime(partials, None)
    if config.sealing_key is None:
        raise ConfigError("TKMS_NODE_SEALING_KEY: required with TKMS_NODE_STATE_DIR")
    try:
        keystore = SealedKeystore(
            config.state_dir,
            parse_hex(config.sealing_key.get_secret_value(), length=32),
            wallet.address,
        )
        secrets = keystore.load_or_create()
    except (ValueError, KeystoreError) as exc:
        raise ConfigError(f"TKMS_NODE_SEALING_KEY: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"TKMS_NODE_STATE_DIR: {exc.filename}: {exc.strerror}") from None
    for chain_id, share in secrets.chains.items():
        if chain_id in gateways:
            partials.holdings[chain_id] = holding_from(share)
    admin = parse_address(config.dkg_admin_address) if config.dkg_admin_address else None
    return ThresholdRuntime(partials, DkgService(wallet, keystore, secrets, partials, admin))


async def _json_body(request: Request) -> Any:
    require_json(request)
    return parse_json(await request.body())


def add_threshold_routes(
    app: FastAPI, runtime: ThresholdRuntime, delegations: Counter, ready: Ready | None = None
) -> None:
    """``ready`` gates ``/v1/delegate`` per chain (the on-chain key check, node/chain.py)."""
    partials = runtime.partials

    @app.get("/v1/keyset", openapi_extra=openapi.operation(query=("chain_id",)))
    async def keyset(request: Request) -> Response:
        return json_response(partials.keyset(request.query_params.get("chain_id")))

    add_delegate_route(app, "v1", partials.delegate_v1, partials.gateways, delegations, ready)

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
