"""Building a :class:`GatewayService` and its collaborators from the configuration.

The service takes its storage, ACL and KMS side ready-made, so that a test or
the benchmark can hand it others; this is the one place that reads the
configuration to make them: one :class:`ServedChain` per configured chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from tkms.chain.acl_cache import AclCache
from tkms.crypto.encoding import parse_address, parse_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.acl import AccessControl, EmbeddedAcl
from tkms.gateway.admission import Admission
from tkms.gateway.chain_acl import ChainAcl
from tkms.gateway.config import ChainSettings, GatewayConfig
from tkms.gateway.fanout import Fanout, NodeRef, Outcome
from tkms.gateway.keysets import KeysetSource
from tkms.gateway.nodehttp import NodeConnections
from tkms.gateway.routing import Chains
from tkms.gateway.service import GatewayService, KmsSide, ServedChain
from tkms.gateway.single import SingleNode
from tkms.gateway.storage import SqlRecordStore
from tkms.metric_labels import Children


def kms_side(
    config: GatewayConfig,
    chain_id: int,
    wallet: Wallet,
    on_outcome: Outcome,
    pools: dict[int, NodeConnections],
) -> KmsSide:
    """One chain's fan-out and keyset source (if nodes are configured), and single node."""
    key = config.trusted_key(chain_id)
    trusted = parse_hex(key, length=33) if key else None
    nodes = {i: NodeRef(i, n.url, parse_address(n.signer)) for i, n in config.nodes.items()}
    fanout = keysets = None
    if nodes:
        fanout = Fanout(
            nodes,
            wallet,
            chain_id,
            spare=config.spare,
            deadline=config.deadline,
            node_timeout=config.node_timeout,
            on_outcome=on_outcome,
            pools=pools,
            ask_all=config.ask_all_nodes,
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


def _chain_acl(chain: ChainSettings, acl_cache_seconds: float) -> ChainAcl:
    assert chain.rpc_url is not None
    return ChainAcl(
        chain.rpc_url,
        parse_address(chain.nox_compute_contract),
        chain.id,
        timeout=chain.call_timeout,
        connect_timeout=chain.connect_timeout,
        acl_cache=AclCache(ttl=acl_cache_seconds),
    )


def build_gateway_service(
    config: GatewayConfig,
    store: SqlRecordStore,
    *,
    registry: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
    access: AccessControl | None = None,
) -> GatewayService:
    """The service of ``config`` over ``store``; ``access`` replaces the embedded ACL.

    On a linked chain (``ChainSettings.chain_acl``) the ACL is NoxCompute's, by
    ``eth_call``; every other chain shares one embedded ACL (the shared store's).
    """
    registry = registry or CollectorRegistry()
    node_outcomes = Children(
        Counter(
            "tkms_gateway_node_requests_total",
            "Partial requests by node and outcome",
            ["node", "outcome"],
            registry=registry,
        )
    )

    def on_outcome(index: int, outcome: str) -> None:
        node_outcomes(str(index), outcome).inc()

    pools: dict[int, NodeConnections] = {}
    embedded = EmbeddedAcl(store, clock=lambda: int(clock())) if access is None else None
    served = {}
    for chain_id, chain in config.served().items():
        wallet = Wallet(parse_hex(chain.wallet_key.get_secret_value(), length=32))
        kms = kms_side(config, chain_id, wallet, on_outcome, pools)
        contract = parse_address(chain.nox_compute_contract)
        if access is None and chain.chain_acl:
            served[chain_id] = ServedChain(
                chain_id,
                contract,
                wallet,
                kms,
                chain_acl=_chain_acl(chain, config.acl_cache_seconds),
            )
        else:
            reads = access if access is not None else embedded
            served[chain_id] = ServedChain(
                chain_id, contract, wallet, kms, access=reads, acl=embedded
            )
    admission = config.admission
    return GatewayService(
        chains=Chains(served, config.default_chain),
        admission=Admission(
            admission.in_flight(len(config.nodes)), admission.max_queue, admission.retry_after
        ),
        store=store,
        max_record_bytes=config.max_record_bytes,
        registry=registry,
        clock=clock,
    )
