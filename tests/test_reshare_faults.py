"""Reshares over HTTP that go wrong: a cheating dealer, too few honest dealers, hostile starts.

Nodes 1, 3, 4, 5 are node processes; node 2 is the real node app in this
process whose reshare dealer cheats (tests/reshare_adversary.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import CHAIN_ID, Cluster
from tests.reshare_adversary import cheating_node
from tests.reshare_net import committee_of, decrypts, directory_of, partials, start_slowly, verified
from tkms.client.relay import run_ceremony
from tkms.client.reshare_relay import run_reshare
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg import CommitteeMember, parse_keyset
from tkms.dkg.reshare_config import ReshareConfig

EVIL = 2
NODES = [1, 2, 3, 4, 5]
CHAINS = {name: CHAIN_ID + 200 + k for k, name in enumerate(("cheat", "too few", "hostile"))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster.create(Path(tmp_path_factory.mktemp("reshare-faults")), 5, tuple(CHAINS.values()))
    try:
        start_slowly(c, [i for i in NODES if i != EVIL])
        with cheating_node(c.env(c.nodes[EVIL])):
            yield c
    finally:
        c.stop_all()


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key()


def _dkg(cluster: Cluster, chain_id: int) -> dict[str, Any]:
    outcome = run_ceremony(committee_of(cluster, chain_id, NODES), cluster.admin, 3)
    assert outcome.keyset is not None, outcome.errors
    return outcome.keyset


def test_a_cheating_dealer_is_disqualified_and_the_reshare_completes(
    cluster: Cluster, user_key: rsa.RSAPrivateKey
) -> None:
    chain_id = CHAINS["cheat"]
    before = _dkg(cluster, chain_id)
    trusted = bytes.fromhex(before["publicKey"][2:])
    record = ecies.encrypt(verified(before, chain_id, trusted).public_key, b"kept")
    committee = committee_of(cluster, chain_id, NODES)
    outcome = run_reshare(committee, committee, cluster.admin, 3)
    assert outcome.keyset is not None, outcome.errors
    assert outcome.disqualified == [EVIL]
    assert EVIL not in outcome.qualified
    assert outcome.progress is not None and outcome.progress.complaints == {1: [EVIL]}
    new = verified(outcome.keyset, chain_id, trusted)
    assert new.epoch == 2 and outcome.keyset["publicKey"] == before["publicKey"]
    answers = partials(cluster, chain_id, directory_of(cluster, NODES), record, user_key)
    assert decrypts(new, user_key, record, answers) == b"kept"
    metrics = httpx.get(cluster.nodes[3].url + "/metrics").text
    assert f'tkms_node_ceremony_disqualified{{chain_id="{chain_id}",kind="reshare"}} 1.0' in metrics


def test_too_few_honest_dealers_abort_and_epoch_1_serves(
    cluster: Cluster, user_key: rsa.RSAPrivateKey
) -> None:
    chain_id = CHAINS["too few"]
    before = _dkg(cluster, chain_id)
    trusted = bytes.fromhex(before["publicKey"][2:])
    old = verified(before, chain_id, trusted)
    record = ecies.encrypt(old.public_key, b"still here")
    committee = committee_of(cluster, chain_id, NODES)
    # Three dealers for an old threshold of 3, one of them cheating: QUAL has two.
    outcome = run_reshare(committee, committee, cluster.admin, 3, dealers=[1, EVIL, 3])
    assert outcome.keyset is None
    assert any("dealers" in e or "qualified" in e for e in outcome.errors.values()), outcome.errors
    for node in NODES:
        served = httpx.get(cluster.nodes[node].url + "/v1/keyset", params={"chain_id": chain_id})
        assert served.json() == before
        metrics = httpx.get(cluster.nodes[node].url + "/metrics").text
        assert f'tkms_node_key_status{{chain_id="{chain_id}",status="serving"}} 1.0' in metrics
    answers = partials(cluster, chain_id, directory_of(cluster, NODES), record, user_key)
    assert {a.epoch for a in answers.answers} == {1}
    assert decrypts(old, user_key, record, answers) == b"still here"
    # And the committee can still reshare afterwards, without the cheat among three.
    again = run_reshare(committee, committee, cluster.admin, 3, dealers=[1, 3, 4])
    assert again.keyset is not None and again.keyset["epoch"] == 2


def _start_body(cluster: Cluster, config: ReshareConfig, signer: Any = None) -> dict[str, Any]:
    statement = config.start_statement()
    signature = eip712.sign(
        signer or cluster.admin, eip712.dkg_domain(config.chain_id), eip712.RESHARE_START, statement
    )
    return {"config": config.to_json(), "authorization": to_hex(signature)}


def test_hostile_starts_and_rounds_get_documented_errors(cluster: Cluster) -> None:
    chain_id = CHAINS["hostile"]
    before = _dkg(cluster, chain_id)
    url = cluster.nodes[1].url
    members = committee_members(cluster)
    config = ReshareConfig(
        chain_id=chain_id,
        old_keyset=parse_keyset(before).keyset,
        old_epoch=1,
        new_epoch=2,
        dealers=(1, 3, 4),
        new_threshold=3,
        new_members=members,
        nonce=secrets.token_bytes(32),
        expires_at=int(time.time() + 300),
    )

    def post(path: str, body: Any) -> tuple[int, str]:
        response = httpx.post(url + path, json=body)
        return response.status_code, response.json()["error"]

    assert post("/v1/reshare/start", [1]) == (400, "invalid_body")
    assert post("/v1/reshare/start", {"config": {"chainId": 1}}) == (400, "invalid_reshare")
    assert post("/v1/reshare/start", _start_body(cluster, config, Wallet.generate())) == (
        401,
        "unauthorized_signer",
    )
    other = replace(parse_keyset(before).keyset, public_key=curve.base_mul(curve.random_scalar()))
    wrong = replace(config, old_keyset=other)
    assert post("/v1/reshare/start", _start_body(cluster, wrong)) == (409, "keyset_mismatch")
    expired = replace(config, expires_at=int(time.time() - 1))
    assert post("/v1/reshare/start", _start_body(cluster, expired)) == (403, "ceremony_expired")
    round_body = {
        "sessionId": to_hex(config.session_id),
        "round": 1,
        "messages": [],
        "authorization": "0x00",
    }
    assert post("/v1/reshare/round", round_body) == (409, "no_ceremony")
    good = _start_body(cluster, config)
    first = httpx.post(url + "/v1/reshare/start", json=good)
    assert first.status_code == 200 and first.json()["phase"] == "dealing"
    assert post("/v1/reshare/start", good) == (409, "session_seen")  # a replay
    assert post("/v1/reshare/round", {**round_body, "round": "x"}) == (400, "invalid_body")
    assert post("/v1/reshare/round", round_body) == (401, "invalid_signature")


def committee_members(cluster: Cluster) -> tuple[CommitteeMember, ...]:
    out = []
    for k, n in enumerate(NODES, start=1):
        identity = httpx.get(cluster.nodes[n].url + "/v1/dkg/identity").json()
        out.append(CommitteeMember.from_json({"index": k, **identity}))
    return tuple(out)
