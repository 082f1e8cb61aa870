"""DKG ceremonies over HTTP with a cheating dealer or a two-faced relay.

Nodes 1, 3, 4, 5 are real node processes; node 2 runs the real node app in
the test process with a cheating state machine (tests/adversary.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.adversary import BadDealer, LyingDealer, in_process_node
from tests.cluster import CHAIN_ID, Cluster
from tkms.client.nodes import fetch_partials
from tkms.client.recombine import decrypt_record
from tkms.client.relay import CeremonyOutcome, run_ceremony
from tkms.crypto import ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.dkg import DkgParticipant, parse_message
from tkms.dkg.messages import Deal, sign
from tkms.protocol.keyset import verify_keyset

EVIL = 2
# A node never replaces a key by a new DKG: each ceremony here makes the key of a chain of its own.
CHAINS = {name: CHAIN_ID + k for k, name in enumerate(("bad share", "lie", "hide", "equivocate"))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster.create(Path(tmp_path_factory.mktemp("dkgnet")), 5, tuple(CHAINS.values()))
    try:  # a node that cannot be spawned: the ones started before it are stopped
        for i in c.nodes:
            if i != EVIL:
                c.start(i)
        yield c
    finally:
        c.stop_all()


def ceremony(
    cluster: Cluster, participant: type[DkgParticipant], chain_id: int, **kwargs: Any
) -> CeremonyOutcome:
    spec = cluster.nodes[EVIL]
    with in_process_node(cluster.env(spec), participant):
        from tests.procs import wait_healthy

        for i, other in cluster.nodes.items():
            if i != EVIL:
                assert other.service is not None
                wait_healthy(other.service)
        return run_ceremony(cluster.committee(chain_id), cluster.admin, 3, **kwargs)


def decrypts_with(cluster: Cluster, outcome: CeremonyOutcome, subsets: list[set[int]]) -> None:
    assert outcome.keyset is not None
    keyset = verify_keyset(
        outcome.keyset,
        int(outcome.keyset["chainId"]),
        bytes.fromhex(outcome.keyset["publicKey"][2:]),
    )
    key = rsa.generate_private_key()
    record = ecies.encrypt(keyset.public_key, b"after the storm")
    honest = {i: v for i, v in cluster.directory().items() if i != EVIL}
    answers = asyncio.run(
        fetch_partials(
            honest,
            cluster.gateway,
            int(outcome.keyset["chainId"]),
            to_hex(record.ephemeral_pubkey),
            to_hex(rsa.public_key_der(key)),
        )
    )
    assert answers.failures == {}
    for subset in subsets:
        chosen = [a for a in answers.answers if a.index in subset]
        assert decrypt_record(keyset, key, record, chosen) == b"after the storm"


def test_bad_share_justified_correctly_keeps_the_dealer(cluster: Cluster) -> None:
    outcome = ceremony(cluster, BadDealer, CHAINS["bad share"])
    assert outcome.succeeded, outcome.errors
    assert outcome.keyset is not None
    # Every node, the cheater included, signed the one keyset, and the dealer stayed qualified.
    assert sorted(outcome.keyset["signatures"]) == ["1", "2", "3", "4", "5"]
    assert outcome.complaints == {3: [EVIL]}
    assert outcome.qualified == [1, 2, 3, 4, 5]
    # Node 3 (the victim) took the revealed share: its partial combines with the others'.
    decrypts_with(cluster, outcome, [{1, 3, 4}, {3, 4, 5}])


def test_bad_justification_disqualifies_the_dealer(cluster: Cluster) -> None:
    outcome = ceremony(cluster, LyingDealer, CHAINS["lie"])
    assert outcome.succeeded, outcome.errors
    assert outcome.keyset is not None
    # The key is made of the honest four's polynomials; node 2 still holds a share of it.
    assert outcome.complaints == {3: [EVIL]}
    assert outcome.qualified == [1, 3, 4, 5]
    assert sorted(outcome.keyset["signatures"]) == ["1", "2", "3", "4", "5"]
    decrypts_with(cluster, outcome, [{1, 3, 4}, {3, 4, 5}, {1, 4, 5}])


def test_relay_showing_different_deals_is_detected(cluster: Cluster) -> None:
    def hide_deal_1_from_4_and_5(
        round_: int, recipient: int, messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if round_ == 1 and recipient in (4, 5):
            return [m for m in messages if not (m["type"] == "deal" and m["sender"] == 1)]
        return messages

    outcome = ceremony(
        cluster, DkgParticipant, CHAINS["hide"], interceptor=hide_deal_1_from_4_and_5
    )
    assert not outcome.succeeded
    assert any("saw other deals" in e for e in outcome.errors.values()), outcome.errors


def test_dealer_equivocating_through_the_relay_is_detected(cluster: Cluster) -> None:
    dealer = cluster.nodes[1].wallet

    def two_versions(
        round_: int, recipient: int, messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if round_ != 1 or recipient not in (4, 5):
            return messages
        out = []
        for raw in messages:
            message = parse_message(raw)
            if isinstance(message, Deal) and message.sender == 1:
                # A second, validly signed deal: the node 3 share swapped for node 2's bytes.
                shares = list(message.shares)
                shares[1] = replace(shares[1], sealed=shares[0].sealed)
                raw = sign(replace(message, shares=tuple(shares), signature=b""), dealer).to_json()
            out.append(raw)
        return out

    outcome = ceremony(cluster, DkgParticipant, CHAINS["equivocate"], interceptor=two_versions)
    assert not outcome.succeeded
    assert any("saw other deals" in e for e in outcome.errors.values()), outcome.errors
