"""The gateway's HTTP surface (FastAPI): thin wrappers around :class:`GatewayService`.

Routes hand the raw request parts to the service and turn its ``Answer``
into JSON with a ``Server-Timing`` header (time spent waiting for the KMS,
and in the gateway itself). CORS is open, as the Nox gateway's is, so a
browser dapp can call it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.responses import Response

from tkms.crypto.encoding import parse_address
from tkms.envconfig import ConfigError
from tkms.gateway import compute_threshold
from tkms.gateway.admission import GatewayBusy
from tkms.gateway.assembly import build_gateway_service
from tkms.gateway.chain_start import check_chain_at_start
from tkms.gateway.client_encrypted import create_client_encrypted
from tkms.gateway.compute import Compute, RunnerPolicy
from tkms.gateway.config import GatewayConfig, load_gateway_config
from tkms.gateway.health import StoreHealth
from tkms.gateway.keysets import KeysetUnavailable
from tkms.gateway.public import PublicDecryption
from tkms.gateway.ratelimit import WriteRateLimit
from tkms.gateway.records import StorageError
from tkms.gateway.service import Answer, GatewayService, NotEnoughNodes, ServedChain
from tkms.gateway.status import HandleStatus
from tkms.gateway.storage import SqlRecordStore, open_record_store
from tkms.metric_labels import Children
from tkms.web import openapi
from tkms.web.common import add_common_routes, json_response, require_json
from tkms.web.cors import JsonCORS
from tkms.web.errors import error_response, install_error_handlers
from tkms.web.fastpath import FastAPIWithFastPath
from tkms.web.middleware import ASGIApp, BodyLimit, Metrics, RouteMetrics

log = logging.getLogger("tkms.gateway")
STATUS_PATH = "/v0/public/handles/status"
# A user's decryption reads one of these: served by the fast path.
FAST_ROUTES = (("GET", "/v0/secrets/{handle}"), ("GET", "/v1/secrets/{handle}"))


def _respond(answer: Answer, start: float) -> Response:
    total = time.perf_counter() - start
    kms = answer.timings.get("kms", 0.0)
    timing = f"gateway;dur={(total - kms) * 1000:.3f}"
    if "kms" in answer.timings:
        timing += f", kms;dur={kms * 1000:.3f}"
    return json_response(answer.body, timing=timing)


def cors_layer(app: ASGIApp, allow_headers: list[str]) -> JsonCORS:
    """Open CORS, as the Nox gateway's: the stack's layer and the fast path's twin."""
    return JsonCORS(
        app,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=allow_headers,
        expose_headers=["Server-Timing", "Retry-After"],
        max_age=600,
    )


def open_store(config: GatewayConfig) -> SqlRecordStore:
    try:
        return open_record_store(config.database_target())
    except (StorageError, OSError) as exc:
        raise ConfigError(f"TKMS_GATEWAY_DATABASE_URL: {exc}") from None


def create_app(config: GatewayConfig, store: SqlRecordStore | None = None) -> FastAPI:
    registry = CollectorRegistry()
    errors = Children(
        Counter(
            "tkms_gateway_errors_total", "Error answers by error code", ["code"], registry=registry
        )
    )
    service = build_gateway_service(config, store or open_store(config), registry=registry)
    admission = service.admission
    Gauge(
        "tkms_gateway_reads_in_flight", "Reads asking the nodes now", registry=registry
    ).set_function(lambda: admission.active)
    Gauge(
        "tkms_gateway_reads_queued", "Reads waiting to be admitted", registry=registry
    ).set_function(lambda: admission.queued)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Read the keyset early so the first user does not wait for it; a failure
        # here is retried on first use (the nodes may still be starting).
        _log_start(config, service)  # here: logging is set up once the server runs
        warmup = asyncio.ensure_future(_warm_up(service))
        # A reshare is learnt when signed, not when a request fails (docs/gateway.md).
        polls = [
            asyncio.ensure_future(chain.kms.keysets.poll(config.keyset_refresh))
            for chain in service.chains
            if chain.kms.keysets is not None and config.keyset_refresh > 0
        ]
        try:
            yield
        finally:
            warmup.cancel()
            for poll in polls:
                poll.cancel()
            await service.aclose()
            service.store.close()

    app = FastAPIWithFastPath(
        title="tkms gateway", version="0.1.0", docs_url=None, redoc_url=None, lifespan=lifespan
    )

    def count_error(code: str) -> None:
        errors(code).inc()

    install_error_handlers(app, on_error=count_error)

    async def not_enough(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotEnoughNodes)
        errors(exc.code).inc()
        body = {"error": exc.code, "message": exc.message, **exc.extra}
        return Response(json.dumps(body).encode(), 503, media_type="application/json")

    app.add_exception_handler(NotEnoughNodes, not_enough)

    async def busy(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayBusy)
        errors(exc.code).inc()
        response = error_response(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    app.add_exception_handler(GatewayBusy, busy)
    add_common_routes(app, config.service_name, registry, StoreHealth(service.store).response)

    def route(
        path: str,
        method: str,
        call: Callable[[Request], Awaitable[Answer]],
        *,
        body: bool,
        spec: dict[str, Any],
    ) -> None:
        async def endpoint(request: Request) -> Response:
            start = time.perf_counter()
            if body:
                require_json(request)
            return _respond(await call(request), start)

        endpoint.__name__ = f"{method.lower()}_{path.strip('/').replace('/', '_')}"
        app.add_api_route(path, endpoint, methods=[method], openapi_extra=spec)

    def q(request: Request, name: str) -> str | None:
        return request.query_params.get(name)

    async def create(r: Request) -> Answer:
        return await service.create_secret(q(r, "chain_id"), q(r, "salt"), await r.body())

    async def create_v1(r: Request) -> Answer:  # the client encrypted it: gateway/client_encrypted
        return await create_client_encrypted(
            service, q(r, "chain_id"), q(r, "salt"), await r.body()
        )

    async def read_v0(r: Request) -> Answer:
        handle, auth = r.path_params["handle"], r.headers.get("authorization")
        return await service.secret_v0(handle, q(r, "chain_id"), q(r, "salt"), auth)

    async def read_v1(r: Request) -> Answer:
        handle, auth = r.path_params["handle"], r.headers.get("authorization")
        exclude = r.query_params.getlist("exclude")
        return await service.secret_v1(handle, q(r, "chain_id"), q(r, "salt"), auth, exclude)

    async def keyset(r: Request) -> Answer:
        return await service.keyset_body(q(r, "chain_id"))

    async def grant(r: Request) -> Answer:
        return await service.grant(q(r, "chain_id"), q(r, "salt"), await r.body())

    async def acl(r: Request) -> Answer:
        handle, auth = r.path_params["handle"], r.headers.get("authorization")
        return await service.acl_listing(handle, q(r, "chain_id"), q(r, "salt"), auth)

    params = ("chain_id", "salt")
    secret = openapi.fields(value=openapi.HEX, solidityType="string", owner=openapi.HEX)
    secret["properties"]["applicationContract"] = openapi.HEX
    read = openapi.operation(path=("handle",), query=params, authorization=True)
    read_v1_spec = openapi.operation(
        path=("handle",), query=(*params, "exclude"), authorization=True
    )
    grant_body = openapi.fields(payload="object", signature=openapi.HEX)
    route(
        "/v0/secrets", "POST", create, body=True, spec=openapi.operation(query=params, body=secret)
    )
    record = openapi.fields(
        handle=openapi.HEX,
        ephemeralPubKey=openapi.HEX,
        iv=openapi.HEX,
        ciphertext=openapi.HEX,
        solidityType="string",
        owner=openapi.HEX,
    )
    record["properties"]["applicationContract"] = openapi.HEX
    route(
        "/v1/secrets",
        "POST",
        create_v1,
        body=True,
        spec=openapi.operation(query=params, body=record),
    )
    route("/v0/secrets/{handle}", "GET", read_v0, body=False, spec=read)
    route("/v1/secrets/{handle}", "GET", read_v1, body=False, spec=read_v1_spec)
    route("/v1/keyset", "GET", keyset, body=False, spec=openapi.operation(query=("chain_id",)))
    route(
        "/v1/acl/grant",
        "POST",
        grant,
        body=True,
        spec=openapi.operation(query=params, body=grant_body),
    )
    route(
        "/v1/acl/{handle}",
        "GET",
        acl,
        body=False,
        spec=openapi.operation(path=("handle",), query=params, authorization=True),
    )

    # --- the runner (gateway/compute.py, docs/runner.md) ---
    runner = config.runner_address
    compute = Compute(
        service,
        RunnerPolicy(
            parse_address(runner) if runner else None,
            config.max_compute_handles,
            config.runner_max_block_age,
        ),
    )

    async def operands_v0(r: Request) -> Answer:
        return await compute.operands_v0(q(r, "salt"), r.headers.get("authorization"))

    async def results(r: Request) -> Answer:
        auth = r.headers.get("authorization")
        return await compute.results(q(r, "salt"), auth, await r.body())

    async def operands_v1(r: Request) -> Answer:
        return await compute_threshold.operands_v1(
            compute, q(r, "salt"), r.headers.get("authorization")
        )

    runner_spec = openapi.operation(query=("salt",), authorization=True)
    route("/v0/compute/operands", "GET", operands_v0, body=False, spec=runner_spec)
    route("/v1/compute/operands", "GET", operands_v1, body=False, spec=runner_spec)
    results_spec = openapi.operation(query=("salt",), authorization=True, body={"type": "array"})
    route("/v0/compute/results", "POST", results, body=True, spec=results_spec)

    # --- public decryption and readiness polling (gateway/public.py, gateway/status.py) ---
    public = PublicDecryption(service)  # makes the gateway's own RSA key: one per process
    status = HandleStatus(service, config.max_handles)

    async def read_public(r: Request) -> Answer:
        return await public.decrypt(r.path_params["handle"], q(r, "salt"))

    async def handle_status(r: Request) -> Answer:
        return await status.statuses(q(r, "salt"), await r.body())

    public_spec = openapi.operation(path=("handle",), query=("salt",))
    status_body = openapi.fields(handles={"type": "array", "items": openapi.HEX})
    route("/v0/public/{handle}", "GET", read_public, body=False, spec=public_spec)
    status_spec = openapi.operation(query=("salt",), body=status_body)
    route(STATUS_PATH, "POST", handle_status, body=True, spec=status_spec)

    app.state.service = service
    # A status batch of MAX_HANDLES_PER_REQUEST handles is larger than MAX_BODY_BYTES' 64 KiB.
    limits = {STATUS_PATH: config.status_body_bytes()}
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, prefix_limits=limits)
    # Outside the body limit: a client over its rate is refused before its body is read.
    app.add_middleware(
        WriteRateLimit,
        config=config.rate_limit,
        on_limited=lambda: errors("rate_limited").inc(),
    )
    recorder = RouteMetrics(registry, "tkms_gateway")
    app.add_middleware(Metrics, recorder=recorder)
    # Outermost, so that every answer (413s and 404s too) carries the CORS headers.
    app.add_middleware(cors_layer, allow_headers=config.server.cors_allowed_headers)
    # The reads skip every layer, FastAPI's own and ours, doing what they do themselves,
    # CORS included, by a twin of the layer above (web/fastpath.py, web/cors.py).
    # Only GETs: the write rate limit, which this skips, is for POSTs.
    app.fast_path(
        paths=FAST_ROUTES,
        recorder=recorder,
        body_limit=config.max_body_bytes,
        prefix_limits=limits,
        on_error=count_error,
        cors=cors_layer(app, config.server.cors_allowed_headers),
    )
    if config.unsupported():
        log.warning(
            "not supported, ignored (records live in the gateway's database): %s",
            ", ".join(config.unsupported()),
        )
    return app


def _log_start(config: GatewayConfig, service: GatewayService) -> None:
    mode = "threshold" if config.threshold_mode else "single-node"
    log.info(
        "gateway %s mode, nodes %s, default chain %d, chains: %s",
        mode,
        sorted(config.nodes) or "a single v0 node",  # never its URL: it may hold credentials
        service.chains.default,
        "; ".join(_describe(chain) for chain in service.chains),
    )


def _describe(chain: ServedChain) -> str:
    """A chain in the start log line: its wallet and ACL (never its RPC URL: it may hold a key)."""
    acl = (
        f"ACL on chain (NoxCompute 0x{chain.contract.hex()})"
        if chain.chain_acl is not None
        else "ACL embedded"
    )
    return f"{chain.chain_id} (signer 0x{chain.wallet.address.hex()}, {acl})"


async def _warm_up(service: GatewayService) -> None:
    await asyncio.gather(*(_warm_up_chain(chain) for chain in service.chains))


async def _warm_up_chain(chain: ServedChain) -> None:
    if chain.kms.keysets is None:
        return
    try:
        loaded = await chain.kms.keysets.get()
    except KeysetUnavailable as exc:  # says which node failed how; no secret in it
        log.warning("chain %d: keyset not loaded yet: %s", chain.chain_id, exc)
        return
    except Exception as exc:
        log.warning("chain %d: keyset not loaded yet: %s", chain.chain_id, type(exc).__name__)
        return
    log.info(
        "chain %d: keyset epoch %d, threshold %d",
        chain.chain_id,
        loaded.keyset.epoch,
        loaded.keyset.threshold,
    )


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: each worker process reads the same environment."""
    return create_app(check_chain_at_start(load_gateway_config()))
