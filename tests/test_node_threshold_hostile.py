"""v1 and DKG endpoints under hostile input: documented 4xx JSON, never a 500."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import CHAIN_ID, Cluster, running_cluster
from tests.procs import Service
from tkms.crypto import curve, eip712, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg import CeremonyConfig, CommitteeMember
from tkms.protocol.delegation import sign_delegate_request


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two nodes with state dirs, never through a ceremony."""
    with running_cluster(Path(tmp_path_factory.mktemp("hostile")), 2) as c:
        yield c


def _member(node_url: str, index: int) -> CommitteeMember:
    return CommitteeMember.from_json(
        {"index": index, **httpx.get(node_url + "/v1/dkg/identity").json()}
    )


def _config(pair: Cluster, **overrides: Any) -> CeremonyConfig:
    members = tuple(_member(s.url, i) for i, s in pair.nodes.items())
    fields: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "epoch": 1,
        "threshold": 2,
        "members": members,
        "nonce": bytes(32),
        "expires_at": int(time.time()) + 600,
    }
    fields.update(overrides)
    return CeremonyConfig(**fields)


def _start_body(config: CeremonyConfig, signer: Wallet) -> dict[str, Any]:
    sig = eip712.sign(
        signer,
        eip712.dkg_domain(config.chain_id),
        eip712.DKG_START,
        config.start_statement(),
    )
    return {"config": config.to_json(), "authorization": to_hex(sig)}


def _round_body(
    config: CeremonyConfig, signer: Wallet, number: int, messages: Any
) -> dict[str, Any]:
    sig = eip712.sign(
        signer,
        eip712.dkg_domain(config.chain_id),
        eip712.DKG_STEP,
        {"sessionId": config.session_id, "round": number},
    )
    return {
        "sessionId": to_hex(config.session_id),
        "round": number,
        "messages": messages,
        "authorization": to_hex(sig),
    }


def _expect(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and isinstance(body["message"], str)


def test_before_any_ceremony_v1_answers_503(pair: Cluster) -> None:
    url = pair.nodes[1].url
    _expect(httpx.get(url + "/v1/keyset", params={"chain_id": CHAIN_ID}), 503, "dkg_incomplete")
    key = rsa.generate_private_key()
    ephemeral = to_hex(curve.encode_point(curve.base_mul(5)))
    target = to_hex(rsa.public_key_der(key))
    sig = sign_delegate_request(pair.gateway, CHAIN_ID, ephemeral, target)
    response = httpx.post(
        url + "/v1/delegate",
        params={"chain_id": CHAIN_ID},
        headers={"Authorization": f"Bearer {sig}"},
        json={"ephemeralPubKey": ephemeral, "targetPubKey": target},
    )
    _expect(response, 503, "dkg_incomplete")
    _expect(httpx.get(url + "/v1/keyset", params={"chain_id": "7"}), 400, "unknown_chain")


def test_hostile_dkg_requests(pair: Cluster) -> None:
    url = pair.nodes[1].url
    config = _config(pair)
    stranger = Wallet.generate()
    cases: list[tuple[str, Any, int, str]] = [
        ("/v1/dkg/start", b"{not json", 400, "malformed_json"),
        ("/v1/dkg/start", [], 400, "invalid_body"),
        ("/v1/dkg/start", {"config": {"chainId": 1}}, 400, "invalid_ceremony"),
        (
            "/v1/dkg/start",
            {**_start_body(config, pair.admin), "authorization": "0x1234"},
            401,
            "invalid_signature",
        ),
        ("/v1/dkg/start", _start_body(config, stranger), 401, "unauthorized_signer"),
        ("/v1/dkg/start", _start_body(_config(pair, chain_id=7), pair.admin), 400, "unknown_chain"),
        (
            "/v1/dkg/start",
            _start_body(
                _config(
                    pair,
                    members=(
                        _member(url, 1),
                        CommitteeMember(2, stranger.address, curve.base_mul(9)),
                    )[1:],
                    threshold=1,
                ),
                pair.admin,
            ),
            400,
            "not_a_member",
        ),
        ("/v1/dkg/round", _round_body(config, pair.admin, 1, []), 409, "no_ceremony"),
    ]
    for path, body, status, code in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = httpx.post(
            url + path, content=content, headers={"Content-Type": "application/json"}
        )
        _expect(response, status, code)

    # Start for real, then misbehave within the ceremony.
    started = httpx.post(url + "/v1/dkg/start", json=_start_body(config, pair.admin))
    assert started.status_code == 200, started.text
    assert started.json()["phase"] == "dealing"
    other = _config(pair, nonce=b"\x01" * 32)
    in_ceremony: list[tuple[Any, int, str]] = [
        (_round_body(other, pair.admin, 1, []), 409, "wrong_session"),
        (_round_body(config, pair.admin, 3, []), 409, "wrong_round"),
        (_round_body(config, stranger, 1, []), 401, "unauthorized_signer"),
        ({**_round_body(config, pair.admin, 1, []), "round": -1}, 400, "invalid_body"),
        ({**_round_body(config, pair.admin, 1, []), "messages": "nope"}, 400, "invalid_body"),
        ({**_round_body(config, pair.admin, 1, []), "sessionId": "0x12"}, 400, "invalid_body"),
    ]
    for body, status, code in in_ceremony:
        _expect(httpx.post(url + "/v1/dkg/round", json=body), status, code)

    # Garbage messages are refused one by one; the round still closes, nobody crashes.
    garbage = [
        {"type": "deal"},
        {"type": "nope"},
        17,
        {
            "type": "complaint",
            "sender": 2,
            "sessionId": "0x" + "00" * 32,
            "signature": "0x" + "11" * 65,
            "dealsDigest": "0x" + "22" * 32,
            "accused": [],
        },
    ]
    answer = httpx.post(url + "/v1/dkg/round", json=_round_body(config, pair.admin, 1, garbage))
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["rejected"]) == len(garbage)
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    service = pair.nodes[1].service
    assert service is not None
    assert "Traceback" not in service.output()


def test_dkg_bodies_have_their_own_size_limit(pair: Cluster) -> None:
    url = pair.nodes[2].url
    big = b'{"messages": ["' + b"x" * (17 * 1024 * 1024) + b'"]}'
    response = httpx.post(
        url + "/v1/dkg/round", content=big, headers={"Content-Type": "application/json"}
    )
    _expect(response, 413, "payload_too_large")
    # 100 KiB is too much for a delegation but passes a DKG round's limit (node 2 has no ceremony).
    mid = json.dumps({"messages": ["y" * 100_000]}).encode()
    _expect(
        httpx.post(
            url + "/v1/delegate",
            params={"chain_id": CHAIN_ID},
            content=mid,
            headers={"Content-Type": "application/json"},
        ),
        413,
        "payload_too_large",
    )
    _expect(
        httpx.post(
            url + "/v1/dkg/round", content=mid, headers={"Content-Type": "application/json"}
        ),
        409,
        "no_ceremony",
    )


def test_identity_without_state_is_refused(v0_node: Service) -> None:
    _expect(httpx.get(v0_node.url + "/v1/dkg/identity"), 403, "dkg_disabled")
