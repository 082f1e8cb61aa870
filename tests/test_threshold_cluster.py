"""The t-of-n KMS for real: 5 node processes, a DKG over HTTP, partials, faults."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.adversary import forging_proxy
from tests.cluster import CHAIN_ID, Cluster, running_cluster
from tests.procs import wait_healthy
from tkms.client.errors import NotEnoughPartials
from tkms.client.nodes import PartialsRound, fetch_partials
from tkms.client.recombine import decrypt_record
from tkms.client.relay import run_ceremony
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.protocol.keyset import VerifiedKeyset, verify_keyset

N, T = 5, 3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(Path(tmp_path_factory.mktemp("cluster")), N) as c:
        yield c


@pytest.fixture(scope="module")
def keyset_body(cluster: Cluster) -> dict[str, Any]:
    outcome = run_ceremony(cluster.committee(), cluster.admin, T)
    assert outcome.succeeded, outcome.errors
    assert outcome.keyset is not None
    return outcome.keyset


@pytest.fixture(scope="module")
def keyset(keyset_body: dict[str, Any]) -> VerifiedKeyset:
    return verify_keyset(keyset_body, CHAIN_ID, bytes.fromhex(keyset_body["publicKey"][2:]))


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key()


def ask(
    cluster: Cluster, record: ecies.EciesRecord, key: rsa.RSAPrivateKey, directory: Any = None
) -> PartialsRound:
    return asyncio.run(
        fetch_partials(
            directory or cluster.directory(),
            cluster.gateway,
            CHAIN_ID,
            to_hex(record.ephemeral_pubkey),
            to_hex(rsa.public_key_der(key)),
        )
    )


def test_ceremony_yields_one_signed_consistent_keyset(
    cluster: Cluster, keyset_body: dict[str, Any], keyset: VerifiedKeyset
) -> None:
    assert keyset.threshold == T and len(keyset.nodes) == N
    assert sorted(keyset_body["signatures"]) == [str(i) for i in range(1, N + 1)]
    for i, spec in cluster.nodes.items():
        served = httpx.get(f"{spec.url}/v1/keyset", params={"chain_id": str(CHAIN_ID)}).json()
        assert served == keyset_body
        assert keyset.node(i) is not None and keyset.node(i).signer == spec.wallet.address  # type: ignore[union-attr]


def test_decrypts_through_v1_delegate(
    cluster: Cluster, keyset: VerifiedKeyset, user_key: rsa.RSAPrivateKey
) -> None:
    record = ecies.encrypt(keyset.public_key, b"a value only the KMS can unlock")
    answers = ask(cluster, record, user_key)
    assert answers.failures == {}
    assert [a.index for a in answers.answers] == [1, 2, 3, 4, 5]
    assert decrypt_record(keyset, user_key, record, answers.answers) == (
        b"a value only the KMS can unlock"
    )
    # Any 3 of the 5 give the same result.
    for subset in ([1, 2, 3], [3, 4, 5], [1, 3, 5], [2, 4, 5]):
        chosen = [a for a in answers.answers if a.index in subset]
        assert (
            decrypt_record(keyset, user_key, record, chosen) == b"a value only the KMS can unlock"
        )


def test_two_nodes_down_still_decrypts(
    cluster: Cluster, keyset: VerifiedKeyset, user_key: rsa.RSAPrivateKey
) -> None:
    record = ecies.encrypt(keyset.public_key, b"resilient")
    cluster.stop(2)
    cluster.stop(5)
    try:
        answers = ask(cluster, record, user_key)
        assert sorted(answers.failures) == [2, 5]
        assert all("unreachable" in why for why in answers.failures.values())
        assert (
            decrypt_record(keyset, user_key, record, answers.answers, answers.failures)
            == b"resilient"
        )
    finally:
        for i in (2, 5):
            cluster.start(i)
            wait_healthy(cluster.nodes[i].service)  # type: ignore[arg-type]


def test_a_forged_partial_is_excluded(
    cluster: Cluster, keyset: VerifiedKeyset, user_key: rsa.RSAPrivateKey
) -> None:
    record = ecies.encrypt(keyset.public_key, b"despite a liar")
    evil = cluster.nodes[2]
    with forging_proxy(evil.url, evil.wallet) as proxy:
        directory = cluster.directory()
        directory[2] = (proxy, evil.wallet.address)
        answers = ask(cluster, record, user_key, directory)
        # The forged answer is well signed: it reaches the client, which must catch it.
        assert 2 in [a.index for a in answers.answers]
        # Put the liar first so that combining the first t would fail without the check.
        answers.answers.sort(key=lambda a: a.index != 2)
        failures: dict[int, str] = {}
        assert (
            decrypt_record(keyset, user_key, record, answers.answers, failures) == b"despite a liar"
        )
        # The liar plus exactly three honest nodes: still fine.
        honest_three = [a for a in answers.answers if a.index in (2, 3, 4, 5)]
        assert decrypt_record(keyset, user_key, record, honest_three) == b"despite a liar"
        # And with the liar plus two honest nodes, the clear error names it.
        with pytest.raises(NotEnoughPartials) as err:
            decrypt_record(
                keyset, user_key, record, [a for a in answers.answers if a.index in (2, 3, 4)]
            )
        assert err.value.failures == {2: "DLEQ proof does not verify"}
        assert "node 2: DLEQ proof does not verify" in str(err.value)


def test_three_down_is_a_clear_error(
    cluster: Cluster, keyset: VerifiedKeyset, user_key: rsa.RSAPrivateKey
) -> None:
    record = ecies.encrypt(keyset.public_key, b"unreachable")
    for i in (1, 3, 4):
        cluster.stop(i)
    try:
        answers = ask(cluster, record, user_key)
        with pytest.raises(NotEnoughPartials) as err:
            decrypt_record(keyset, user_key, record, answers.answers, answers.failures)
        assert err.value.valid == 2 and err.value.threshold == 3
        assert sorted(err.value.failures) == [1, 3, 4]
        message = str(err.value)
        for i in (1, 3, 4):
            assert f"node {i}: unreachable" in message
    finally:
        for i in (1, 3, 4):
            cluster.start(i)
            wait_healthy(cluster.nodes[i].service)  # type: ignore[arg-type]


def test_killed_node_restarts_with_the_same_share(
    cluster: Cluster, keyset: VerifiedKeyset, user_key: rsa.RSAPrivateKey
) -> None:
    record = ecies.encrypt(keyset.public_key, b"same share")

    def partial_of_node_1() -> bytes:
        answer = next(a for a in ask(cluster, record, user_key).answers if a.index == 1)
        return rsa.decrypt(user_key, answer.encrypted_partial)[:33]  # enc(S_1): no randomness

    before = partial_of_node_1()
    service = cluster.nodes[1].service
    assert service is not None
    service.stop(
        signal.SIGKILL
    )  # no chance to flush anything: the keystore must already be durable
    cluster.start(1)
    wait_healthy(cluster.nodes[1].service)  # type: ignore[arg-type]
    assert partial_of_node_1() == before
    # S_1 = x_1·K lies on the line the keyset's Y_1 promises (the DLEQ proof checked that too).
    assert not curve.points_equal(
        curve.parse_point(before), curve.parse_point(record.ephemeral_pubkey)
    )
    only_restarted = [a for a in ask(cluster, record, user_key).answers if a.index in (1, 2, 3)]
    assert decrypt_record(keyset, user_key, record, only_restarted) == b"same share"
