"""The node's HTTP surface (FastAPI): thin wrappers around the v0 and v1 delegators."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter

from tkms.crypto.encoding import parse_address, parse_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.metric_labels import Children
from tkms.node.audit import AuditLog, Decisions
from tkms.node.binding_routes import BODY_LIMIT as BINDINGS_BODY_LIMIT
from tkms.node.binding_routes import PREFIX as BINDINGS_PREFIX
from tkms.node.binding_routes import BindingRegistration, add_binding_routes
from tkms.node.bindings import BindingRegistry, RegistryError
from tkms.node.ceremony_metrics import LifecycleCollector
from tkms.node.chain import NodeChains, check_chains_at_start
from tkms.node.config import NodeConfig, load_node_config
from tkms.node.delegate_route import add_delegate_route
from tkms.node.delegation_batch import add_batch_route
from tkms.node.delegation_v0 import ChainKey, Delegator
from tkms.node.routes_v1 import DKG_PREFIX, RESHARE_PREFIX, add_threshold_routes
from tkms.node.runner_batch import runner_batch_check
from tkms.node.runtime import build_threshold_runtime
from tkms.node.user_checks import build_user_checks, user_mode_delegate
from tkms.protocol.batch_delegation import BATCH_PATH
from tkms.web.common import add_common_routes
from tkms.web.errors import ApiError, install_error_handlers
from tkms.web.fastpath import FastAPIWithFastPath
from tkms.web.middleware import BodyLimit, Metrics, RouteMetrics

log = logging.getLogger("tkms.node")
# The routes a gateway (or a user) calls per decryption, and the keyset every gateway
# polls (every 2 s, docs/gateway.md): served by the fast path.
FAST_ROUTES = (
    ("POST", "/v0/delegate"),
    ("POST", "/v1/delegate"),
    ("POST", "/v1/delegate/batch"),
    ("GET", "/v1/keyset"),
)


def build_delegator(config: NodeConfig) -> Delegator:
    wallet = Wallet(parse_hex(config.wallet_key.get_secret_value(), length=32))
    chains = {
        chain_id: ChainKey(parse_hex(chain.ecc_key.get_secret_value(), length=32), chain.gateway())
        for chain_id, chain in config.chains.items()
        if chain.ecc_key is not None
    }
    return Delegator(wallet, chains)


def build_audit_log(config: NodeConfig) -> AuditLog | None:
    """The log, checked now (a directory that cannot be made is a config error); opened later."""
    directory = config.audit_directory()
    if directory is None:
        log.warning("no audit log: set TKMS_NODE_AUDIT_DIR or TKMS_NODE_STATE_DIR")
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"TKMS_NODE_AUDIT_DIR: {directory}: {exc.strerror}") from None
    return AuditLog(directory, max_bytes=config.audit_max_bytes)


def build_binding_registry(config: NodeConfig) -> BindingRegistry | None:
    """The imported records' bindings, in the state directory (none without one)."""
    if config.state_dir is None:
        return None
    try:
        return BindingRegistry.in_state_dir(config.state_dir)
    except RegistryError as exc:
        raise ConfigError(f"TKMS_NODE_STATE_DIR: {exc}") from None


def create_app(config: NodeConfig) -> FastAPI:
    registry = CollectorRegistry()
    delegations = Children(
        Counter(
            "tkms_node_delegations_total",
            "Delegations served, by chain and protocol version",
            ["chain_id", "version"],
            registry=registry,
        )
    )
    errors = Children(
        Counter(
            "tkms_node_errors_total", "Error answers by error code", ["code"], registry=registry
        )
    )
    # A linked chain (RPC_URL + contract) is checked as nox-kms does before anything
    # serves; its gateway then comes from the contract (node/chain.py).
    config, views = check_chains_at_start(config)
    delegator = build_delegator(config)
    threshold = build_threshold_runtime(config, delegator.wallet)
    if threshold.reshare is not None:
        reshare = threshold.reshare
        registry.register(LifecycleCollector(reshare.secrets, lambda: reshare.last))
    chains = NodeChains(config, views, delegator, threshold.partials)
    linked = bool(chains.watches)
    audit = build_audit_log(config)
    decisions = Decisions(registry, audit)
    # user mode (docs/node-authorization.md): this node checks the user on its own chain reads,
    # and the bindings of imported records registered at it (docs/binding.md).
    bindings = build_binding_registry(config)
    user_checks = build_user_checks(config, bindings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Opened here, in the serving process (each worker takes its own slot),
        # and closed after the last request: its buffer is written and fsynced.
        if audit is not None:
            audit.open()
        try:
            if linked:
                async with chains.lifespan(app):
                    yield
            else:
                yield
        finally:
            await user_checks.aclose()
            if bindings is not None:
                bindings.close()
            if audit is not None:
                audit.close()

    app = FastAPIWithFastPath(
        title="tkms node",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )

    def count_error(code: str) -> None:
        errors(code).inc()

    install_error_handlers(app, on_error=count_error)
    add_common_routes(
        app, config.service_name, registry, health_check=chains.health if linked else None
    )

    add_delegate_route(app, "v0", delegator.delegate_v0, delegator.chains, delegations, decisions)
    add_threshold_routes(
        app,
        threshold,
        delegations,
        decisions,
        ready=chains.require_v1 if linked else None,
        delegate=user_mode_delegate(threshold.partials, user_checks)
        if user_checks.readers
        else None,
    )

    # In user mode a batch is the runner's operands, each key checked (node/runner_batch.py).
    add_batch_route(  # docs/batch-delegation.md
        app,
        threshold.partials,
        delegations,
        decisions,
        config.max_delegation_batch,
        ready=chains.require_v1 if linked else None,
        user_check=runner_batch_check(user_checks) if user_checks.readers else None,
    )

    admin = parse_address(config.dkg_admin_address) if config.dkg_admin_address else None
    open_ = config.binding_registration == "open"
    add_binding_routes(app, BindingRegistration(bindings, admin, config.chains, open_=open_))

    app.state.delegator = delegator
    app.state.threshold = threshold
    app.state.chains = chains
    app.state.audit = audit
    body_limits = {
        DKG_PREFIX: config.dkg_body_limit(),
        RESHARE_PREFIX: config.dkg_body_limit(),
        # A user-mode batch carries the runner's statement (≤ 24 KiB) and per key its
        # binding inputs (~300 bytes): 128 keys need more than the default 64 KiB.
        BATCH_PATH: max(config.max_body_bytes, 256 * 1024),
        BINDINGS_PREFIX: max(config.max_body_bytes, BINDINGS_BODY_LIMIT),
    }
    app.add_middleware(BodyLimit, limit=config.max_body_bytes, prefix_limits=body_limits)
    recorder = RouteMetrics(registry, "tkms_node")
    app.add_middleware(Metrics, recorder=recorder)
    # Outermost: the delegate routes skip FastAPI's layers, doing what ours do
    # (limits, metrics, error answers) themselves (web/fastpath.py, docs/architecture.md).
    app.fast_path(
        paths=FAST_ROUTES,
        recorder=recorder,
        body_limit=config.max_body_bytes,
        prefix_limits=body_limits,
        on_error=count_error,
    )
    log.info(
        "node signer 0x%s, chains %s, user mode on %s",
        delegator.wallet.address.hex(),
        sorted(delegator.chains),
        sorted(user_checks.readers) or "none",
    )
    return app


def create_app_from_env() -> FastAPI:
    """The uvicorn factory: each worker process reads the same environment."""
    return create_app(load_node_config())


__all__ = ["ApiError", "create_app", "create_app_from_env"]
