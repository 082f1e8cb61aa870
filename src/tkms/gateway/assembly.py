"""Building a :class:`GatewayService` and its collaborators from the configuration.

The service takes its storage, ACL and KMS side ready-made, so that a test or
the benchmark can hand it others; this is the one place that reads the
configuration to make them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from tkms.crypto.encoding import parse_address, parse_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.acl import AccessControl, EmbeddedAcl
from tkms.gateway.chain_acl import ChainAcl
from tkms.gateway.config import GatewayConfig
from tkms.gateway.fanout import Fanout, NodeRef
from tkms.gateway.keysets import KeysetSource
from tkms.gateway.service import GatewayService, KmsSide
from tkms.gateway.single import SingleNode
from tkms.gateway.storage import SqlRecordStore


def kms_side(config: GatewayConfig, wallet: Wallet, registry: CollectorRegistry) -> KmsSide:
    """The committee's fan-out and keyset source (if nodes are configured), the single node."""
    chain_id = config.chain.id
    trusted = parse_hex(config.kms.public_key, length=33) if config.kms.public_key else None
    nodes = {i: NodeRef(i, n.url, parse_address(n.signer)) for i, n in config.nodes.items()}
    fanout = keysets = None
    if nodes:
        node_outcomes = Counter(
            "tkms_gateway_node_requests_total",
            "Partial requests by node and outcome",
            ["node", "outcome"],
            registry=registry,
        )
        fanout = Fanout(
            nodes,
            wallet,
            chain_id,
            spare=config.spare,
            deadline=config.deadline,
            node_timeout=config.node_timeout,
            on_outcome=lambda i, o: node_outcomes.labels(str(i), o).inc(),
        )
        keysets = KeysetSource(nodes, chain_id, trusted)
    single = None
    if config.kms.url is not None and config.kms.signer_address is not None:
        single = SingleNode(
            config.kms.url,
            parse_address(config.kms.signer_address),
            wallet,
            chain_id,
            timeout=config.deadline,
        )
    return KmsSide(fanout, keysets, single, trusted)


def build_gateway_service(
    config: GatewayConfig,
    store: SqlRecordStore,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    access: AccessControl | None = None,
) -> GatewayService:
    """The service of ``config`` over ``store``; ``access`` replaces the embedded ACL.

    On a linked chain (``config.chain_acl``) the ACL is NoxCompute's, by ``eth_call``.
    """
    registry = registry or CollectorRegistry()
    wallet = Wallet(parse_hex(config.signer.wallet_key.get_secret_value(), length=32))
    acl = None
    chain_acl = None
    if access is None and config.chain_acl:
        assert config.chain.rpc_url is not None
        chain_acl = ChainAcl(
            config.chain.rpc_url,
            parse_address(config.chain.nox_compute_contract),
            config.chain.id,
            timeout=config.chain.call_timeout,
            connect_timeout=config.chain.connect_timeout,
        )
    elif access is None:
        acl = access = EmbeddedAcl(store, clock=lambda: int(clock()))
    return GatewayService(
        wallet=wallet,
        chain_id=config.chain.id,
        contract=parse_address(config.chain.nox_compute_contract),
        store=store,
        access=access,
        acl=acl,
        chain_acl=chain_acl,
        kms=kms_side(config, wallet, registry),
        max_record_bytes=config.max_record_bytes,
        registry=registry,
        clock=clock,
    )
