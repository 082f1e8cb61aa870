"""A replayed ceremony never re-keys a node (the attack of the hardening review).

Node 1 sits behind a proxy that records every admin statement it is sent, as
a compromised node (or anyone who sees the relay's traffic) would. Replaying
them later, to every node, before and after a restart, must leave each node's
key, epoch and answers exactly as they were.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.adversary import serve_in_thread
from tests.cluster import CHAIN_ID, Cluster, running_cluster
from tests.procs import free_port, wait_healthy
from tkms.client.nodes import fetch_partials
from tkms.client.recombine import decrypt_record, open_partial
from tkms.client.relay import Committee, CommitteeNode, run_ceremony
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import to_hex
from tkms.dkg import CeremonyConfig, CommitteeMember
from tkms.protocol.keyset import VerifiedKeyset, verify_keyset

N, T = 5, 3
SECOND_CHAIN = CHAIN_ID + 1


def recording_proxy(upstream: str, captured: list[tuple[str, bytes]]) -> Starlette:
    """Forwards everything to ``upstream`` and keeps each DKG POST as it came in."""

    async def forward(request: Request) -> Response:
        body = await request.body()
        if request.method == "POST":
            captured.append((request.url.path, body))
        async with httpx.AsyncClient() as http:
            answer = await http.request(
                request.method,
                upstream + request.url.path,
                params=dict(request.query_params),
                content=body,
                headers={"Content-Type": "application/json"},
            )
        return Response(answer.content, answer.status_code, media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/dkg/{rest:path}", forward, methods=["GET", "POST"]),
            Route("/health", forward),
        ]
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = Path(tmp_path_factory.mktemp("replay"))
    with running_cluster(root, N) as c:
        c.chain_ids = (CHAIN_ID, SECOND_CHAIN)
        for i in c.nodes:  # restart with the second chain configured too
            c.stop(i)
        c.start_all()
        yield c


def committee_via(cluster: Cluster, proxy_url: str, chain_id: int) -> Committee:
    nodes = [CommitteeNode(1, proxy_url)] + [
        CommitteeNode(i, s.url) for i, s in sorted(cluster.nodes.items()) if i != 1
    ]
    return Committee(chain_id, tuple(nodes))


def post(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"Content-Type": "application/json"})


def node_state(
    cluster: Cluster, keyset: VerifiedKeyset, record: ecies.EciesRecord, key: rsa.RSAPrivateKey
) -> tuple[list[Any], dict[int, bytes]]:
    """Every node's keyset body and its opened partial S_i for ``record``."""
    bodies = [
        httpx.get(s.url + "/v1/keyset", params={"chain_id": CHAIN_ID}).json()
        for _, s in sorted(cluster.nodes.items())
    ]
    answers = asyncio.run(
        fetch_partials(
            cluster.directory(),
            cluster.gateway,
            CHAIN_ID,
            to_hex(record.ephemeral_pubkey),
            to_hex(rsa.public_key_der(key)),
        )
    )
    assert answers.failures == {}
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    partials = {
        a.index: curve.encode_point(open_partial(keyset, key, ephemeral, a))
        for a in answers.answers
    }
    assert sorted(partials) == list(range(1, N + 1))
    return bodies, partials


def replay_everything(cluster: Cluster, captured: list[tuple[str, bytes]]) -> None:
    """Every captured statement to every node: each refused, with the documented error."""
    start = [body for path, body in captured if path == "/v1/dkg/start"]
    rounds = [body for path, body in captured if path == "/v1/dkg/round"]
    assert len(start) == 1 and len(rounds) == 4  # all five statements of the ceremony
    for spec in cluster.nodes.values():
        answer = post(spec.url, "/v1/dkg/start", start[0])
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "session_seen"
        for body in rounds:
            answer = post(spec.url, "/v1/dkg/round", body)
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"] == "no_ceremony"


def test_a_replayed_ceremony_leaves_every_node_unchanged(cluster: Cluster) -> None:
    captured: list[tuple[str, bytes]] = []
    with serve_in_thread(recording_proxy(cluster.nodes[1].url, captured), free_port()) as proxy:
        outcome = run_ceremony(committee_via(cluster, proxy, CHAIN_ID), cluster.admin, T)
    assert outcome.succeeded, outcome.errors
    assert outcome.keyset is not None
    trusted = bytes.fromhex(outcome.keyset["publicKey"][2:])
    keyset = verify_keyset(outcome.keyset, CHAIN_ID, trusted)
    key = rsa.generate_private_key()
    record = ecies.encrypt(keyset.public_key, b"kept through the replay")
    before = node_state(cluster, keyset, record, key)

    replay_everything(cluster, captured)
    assert node_state(cluster, keyset, record, key) == before

    # A restart forgets nothing: the session is sealed with the share.
    for i in cluster.nodes:
        cluster.stop(i)
    cluster.start_all()
    replay_everything(cluster, captured)
    after = node_state(cluster, keyset, record, key)
    assert after == before
    answers = asyncio.run(
        fetch_partials(
            cluster.directory(),
            cluster.gateway,
            CHAIN_ID,
            to_hex(record.ephemeral_pubkey),
            to_hex(rsa.public_key_der(key)),
        )
    )
    assert decrypt_record(keyset, key, record, answers.answers) == b"kept through the replay"


def _member(url: str, index: int) -> CommitteeMember:
    return CommitteeMember.from_json({"index": index, **httpx.get(url + "/v1/dkg/identity").json()})


def _signed_start(cluster: Cluster, chain_id: int, expires_at: int) -> bytes:
    """A start the real admin signs: fresh, well-formed, for the whole committee."""
    members = tuple(_member(s.url, i) for i, s in sorted(cluster.nodes.items()))
    config = CeremonyConfig(chain_id, 1, T, members, bytes(range(32)), expires_at)
    sig = eip712.sign(
        cluster.admin, eip712.dkg_domain(chain_id), eip712.DKG_START, config.start_statement()
    )
    return json.dumps({"config": config.to_json(), "authorization": to_hex(sig)}).encode()


def test_even_the_admin_cannot_replace_a_held_key(cluster: Cluster) -> None:
    """A DKG only creates a key: a fresh start for a chain whose key a node holds is refused."""
    body = _signed_start(cluster, CHAIN_ID, int(time.time()) + 300)
    for spec in cluster.nodes.values():
        answer = post(spec.url, "/v1/dkg/start", body)
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"] == "key_exists"


def test_an_expired_start_is_refused(cluster: Cluster) -> None:
    body = _signed_start(cluster, SECOND_CHAIN, int(time.time()) - 1)
    answer = post(cluster.nodes[2].url, "/v1/dkg/start", body)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == "ceremony_expired"
    too_far = _signed_start(cluster, SECOND_CHAIN, int(time.time()) + 3 * 24 * 3600)
    answer = post(cluster.nodes[2].url, "/v1/dkg/start", too_far)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_ceremony"


def test_a_replayed_start_does_not_disturb_a_ceremony_in_progress(cluster: Cluster) -> None:
    captured: list[tuple[str, bytes]] = []
    refused: list[int] = []

    def replay_start_mid_ceremony(
        round_: int, recipient: int, messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        if round_ == 2 and recipient == 1 and not refused:
            [start] = [body for path, body in captured if path == "/v1/dkg/start"]
            for spec in cluster.nodes.values():
                refused.append(post(spec.url, "/v1/dkg/start", start).status_code)
        return messages

    with serve_in_thread(recording_proxy(cluster.nodes[1].url, captured), free_port()) as proxy:
        outcome = run_ceremony(
            committee_via(cluster, proxy, SECOND_CHAIN),
            cluster.admin,
            T,
            interceptor=replay_start_mid_ceremony,
        )
    assert refused == [409] * N
    assert outcome.succeeded, outcome.errors  # the ceremony went on undisturbed
    for spec in cluster.nodes.values():
        assert spec.service is not None
        wait_healthy(spec.service)
        assert "Traceback" not in spec.service.output()
