"""Resharing over real node processes: same Y, epoch + 1, old records still open.

One cluster of 9 node processes; each scenario is a chain of its own with a
3-of-5 DKG on nodes 1..5, then a reshare to another committee of the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import CHAIN_ID, Cluster
from tests.reshare_net import committee_of, decrypts, directory_of, partials, start_slowly, verified
from tkms.client.recombine import open_partial
from tkms.client.relay import run_ceremony
from tkms.client.reshare_relay import run_reshare
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.ecies import EciesError
from tkms.crypto.shamir import combine_points

OLD = [1, 2, 3, 4, 5]
SCENARIOS: dict[str, tuple[list[int], int]] = {
    "7/4 (two join)": ([1, 2, 3, 4, 5, 6, 7], 4),
    "4/3 (one leaves)": ([1, 2, 3, 4], 3),
    "5/3 (refresh)": (OLD, 3),
    "9/5 (four join)": ([1, 2, 3, 4, 5, 6, 7, 8, 9], 5),
}
CHAINS = {name: CHAIN_ID + 100 + k for k, name in enumerate(SCENARIOS)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster.create(Path(tmp_path_factory.mktemp("reshare")), 9, tuple(CHAINS.values()))
    try:
        start_slowly(c)
        yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key()


def _dkg(cluster: Cluster, chain_id: int) -> dict[str, Any]:
    outcome = run_ceremony(committee_of(cluster, chain_id, OLD), cluster.admin, 3)
    assert outcome.keyset is not None, outcome.errors
    return outcome.keyset


def _metrics(cluster: Cluster, node: int) -> str:
    return httpx.get(cluster.nodes[node].url + "/metrics").text


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_reshare_keeps_y_and_old_records(
    cluster: Cluster, user_key: rsa.RSAPrivateKey, name: str
) -> None:
    chain_id = CHAINS[name]
    new_nodes, threshold = SCENARIOS[name]
    before = _dkg(cluster, chain_id)
    trusted = bytes.fromhex(before["publicKey"][2:])
    old_keyset = verified(before, chain_id, trusted)
    record = ecies.encrypt(old_keyset.public_key, b"sealed at epoch 1")
    old_answers = partials(cluster, chain_id, directory_of(cluster, OLD), record, user_key)
    assert decrypts(old_keyset, user_key, record, old_answers) == b"sealed at epoch 1"

    outcome = run_reshare(
        committee_of(cluster, chain_id, OLD),
        committee_of(cluster, chain_id, new_nodes),
        cluster.admin,
        threshold,
    )
    assert outcome.keyset is not None, outcome.errors
    assert outcome.keyset["publicKey"] == before["publicKey"]
    new_keyset = verified(outcome.keyset, chain_id, trusted)  # every Y_i on a polynomial through Y
    assert (new_keyset.epoch, new_keyset.threshold) == (2, threshold)
    assert len(new_keyset.nodes) == len(new_nodes)

    new_directory = directory_of(cluster, new_nodes)
    new_answers = partials(cluster, chain_id, new_directory, record, user_key)
    assert new_answers.failures == {}
    assert {a.epoch for a in new_answers.answers} == {2}
    assert decrypts(new_keyset, user_key, record, new_answers) == b"sealed at epoch 1"
    for node in new_nodes:  # every node serves the new keyset
        body = httpx.get(cluster.nodes[node].url + "/v1/keyset", params={"chain_id": chain_id})
        assert body.json() == outcome.keyset

    # Old and new partials do not combine: the old shares are useless with the new ones.
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    old_points = {
        a.index: open_partial(old_keyset, user_key, ephemeral, a) for a in old_answers.answers
    }
    new_points = {
        a.index: open_partial(new_keyset, user_key, ephemeral, a) for a in new_answers.answers
    }
    take_old = min(2, threshold - 1)
    mixed = {i: old_points[i] for i in sorted(old_points)[:take_old]}
    for i in sorted(new_points):
        if len(mixed) == threshold:
            break
        mixed.setdefault(i, new_points[i])
    assert len(mixed) == threshold
    with pytest.raises(EciesError):
        ecies.decrypt_with_shared_x(
            curve.point_x(combine_points(mixed)), record.iv, record.ciphertext
        )

    text = _metrics(cluster, new_nodes[0])
    assert f'tkms_node_key_epoch{{chain_id="{chain_id}"}} 2.0' in text
    assert f'tkms_node_key_status{{chain_id="{chain_id}",status="serving"}} 1.0' in text
    assert f'tkms_node_ceremony_succeeded{{chain_id="{chain_id}",kind="reshare"}} 1.0' in text
    left = sorted(set(OLD) - set(new_nodes))
    for node in left:
        assert f'{{chain_id="{chain_id}",status="left"}} 1.0' in _metrics(cluster, node)
        gone = httpx.get(cluster.nodes[node].url + "/v1/keyset", params={"chain_id": chain_id})
        assert gone.status_code == 410 and gone.json()["error"] == "left_committee"


def test_a_start_for_another_keyset_is_refused(cluster: Cluster) -> None:
    """Replaying the finished reshare's start, or a start naming an old keyset: 409."""
    chain_id = CHAINS["5/3 (refresh)"]
    committee = committee_of(cluster, chain_id, OLD)
    # The refresh above moved the chain to epoch 2: a new reshare starts from it.
    outcome = run_reshare(committee, committee, cluster.admin, 3)
    assert outcome.keyset is not None, outcome.errors
    assert outcome.keyset["epoch"] == 3
