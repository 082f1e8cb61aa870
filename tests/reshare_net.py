"""Helpers of the reshare tests: committees drawn from one cluster of node processes.

A chain is one key: each scenario runs its own DKG (nodes 1..5, 3-of-5) on a
chain of its own, then reshares it to another subset of the cluster's nodes,
which take new indexes 1..m in the new committee's order.
"""

from __future__ import annotations

import asyncio

from tests.cluster import Cluster
from tests.procs import wait_healthy
from tkms.client.nodes import PartialsRound, fetch_partials
from tkms.client.recombine import decrypt_record
from tkms.client.relay import Committee, CommitteeNode
from tkms.crypto import ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.protocol.keyset import VerifiedKeyset, verify_keyset


def committee_of(cluster: Cluster, chain_id: int, nodes: list[int]) -> Committee:
    """The cluster's nodes ``nodes`` (spec numbers), indexed 1..m in that order."""
    return Committee(
        chain_id,
        tuple(CommitteeNode(k, cluster.nodes[n].url) for k, n in enumerate(nodes, start=1)),
    )


def directory_of(cluster: Cluster, nodes: list[int]) -> dict[int, tuple[str, bytes]]:
    return {
        k: (cluster.nodes[n].url, cluster.nodes[n].wallet.address)
        for k, n in enumerate(nodes, start=1)
    }


def verified(body: dict[str, object], chain_id: int, trusted: bytes) -> VerifiedKeyset:
    return verify_keyset(body, chain_id, trusted)


def partials(
    cluster: Cluster,
    chain_id: int,
    directory: dict[int, tuple[str, bytes]],
    record: ecies.EciesRecord,
    key: rsa.RSAPrivateKey,
) -> PartialsRound:
    return asyncio.run(
        fetch_partials(
            directory,
            cluster.gateway,
            chain_id,
            to_hex(record.ephemeral_pubkey),
            to_hex(rsa.public_key_der(key)),
        )
    )


def decrypts(
    keyset: VerifiedKeyset,
    key: rsa.RSAPrivateKey,
    record: ecies.EciesRecord,
    answers: PartialsRound,
) -> bytes:
    return decrypt_record(keyset, key, record, answers.answers)


def start_slowly(cluster: Cluster, nodes: list[int] | None = None) -> None:
    """Start nodes three at a time: nine cold starts at once overrun a loaded 2-core box."""
    chosen = sorted(cluster.nodes) if nodes is None else nodes
    for k in range(0, len(chosen), 3):
        batch = chosen[k : k + 3]
        for i in batch:
            cluster.start(i)
        for i in batch:
            service = cluster.nodes[i].service
            assert service is not None
            wait_healthy(service, timeout=90.0)
