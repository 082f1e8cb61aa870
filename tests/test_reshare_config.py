"""ReshareConfig: what it refuses, its stored form, its session id and the admin's statement."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from tkms.crypto import curve, eip712
from tkms.crypto.wallet import Wallet
from tkms.dkg import DkgMessageError, NodeIdentity, ReshareConfig, ReshareParticipant
from tkms.dkg.keyset import KeysetNode
from tkms.dkg.reshare_config import single_keyset
from tkms.dkg.reshare_simulation import reshare_config

CHAIN_ID = 421614


def setup() -> tuple[ReshareConfig, NodeIdentity, int, dict[int, NodeIdentity]]:
    x = curve.random_scalar()
    holder = NodeIdentity.generate()
    members = {i: NodeIdentity.generate() for i in range(1, 4)}
    members[3] = holder  # the importing node stays, as new index 3
    keyset = single_keyset(curve.base_mul(x), holder.address)
    return reshare_config(keyset, [1], members, 2, chain_id=CHAIN_ID), holder, x, members


def fields(config: ReshareConfig) -> dict[str, Any]:
    return {
        "chain_id": config.chain_id,
        "old_keyset": config.old_keyset,
        "old_epoch": config.old_epoch,
        "new_epoch": config.new_epoch,
        "dealers": config.dealers,
        "new_threshold": config.new_threshold,
        "new_members": config.new_members,
        "nonce": config.nonce,
        "expires_at": config.expires_at,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"new_epoch": 2}, "next epoch"),
        ({"old_epoch": 1}, "old keyset's epoch"),
        ({"dealers": ()}, "old threshold"),
        ({"dealers": (2,)}, "node of the old keyset"),
        ({"dealers": (1, 1)}, "without duplicates"),
        ({"new_threshold": 0}, "new threshold"),
        ({"new_threshold": 4}, "new threshold"),
        ({"new_members": ()}, "new members"),
        ({"nonce": b"short"}, "nonce"),
        ({"expires_at": 0}, "expiresAt"),
        ({"chain_id": 0}, "chain id"),
    ],
)
def test_invalid_configs_are_refused(change: dict[str, Any], message: str) -> None:
    config, *_ = setup()
    with pytest.raises(ValueError, match=message):
        ReshareConfig(**{**fields(config), **change})


def test_duplicate_members_and_signers_are_refused() -> None:
    config, *_ = setup()
    a, b, c = config.new_members
    with pytest.raises(ValueError, match="without duplicates"):
        ReshareConfig(**{**fields(config), "new_members": (a, a, c)})
    with pytest.raises(ValueError, match="signer"):
        ReshareConfig(**{**fields(config), "new_members": (a, replace(b, signer=a.signer), c)})


def test_json_round_trip_and_hostile_bodies() -> None:
    config, *_ = setup()
    body = json.loads(json.dumps(config.to_json()))
    again = ReshareConfig.from_json(body)
    assert again.session_id == config.session_id
    for bad in (
        {**body, "newEpoch": 5},
        {**body, "dealers": [True]},
        {**body, "oldKeyset": {**body["oldKeyset"], "threshold": 9}},
        {**body, "oldKeyset": {**body["oldKeyset"], "nodes": []}},
        {**body, "newMembers": "x"},
        {**body, "extra": 1},
        [],
    ):
        with pytest.raises(DkgMessageError):
            ReshareConfig.from_json(bad)


def test_session_id_binds_every_field() -> None:
    config, *_ = setup()
    other_keyset = replace(
        config.old_keyset, nodes=(KeysetNode(1, b"\x01" * 20, config.old_keyset.public_key),)
    )
    changes: list[dict[str, Any]] = [
        {"chain_id": 1},
        {"old_keyset": other_keyset},
        {"new_threshold": 1},
        {"new_members": config.new_members[:2]},
        {"nonce": b"\x07" * 32},
        {"expires_at": config.expires_at + 1},
    ]
    ids = {ReshareConfig(**{**fields(config), **c}).session_id for c in changes}
    assert config.session_id not in ids and len(ids) == len(changes)


def test_the_admin_signs_the_reshare_start() -> None:
    config, *_ = setup()
    admin = Wallet.generate()
    domain = eip712.dkg_domain(CHAIN_ID)
    statement = config.start_statement()
    assert statement["oldKeysetDigest"] == config.old_keyset.digest(CHAIN_ID)
    assert statement["publicKey"] == config.old_keyset.public_key_bytes
    signature = eip712.sign(admin, domain, eip712.RESHARE_START, statement)
    assert eip712.recover(domain, eip712.RESHARE_START, statement, signature) == admin.address
    bumped = {**statement, "newThreshold": 3}
    assert eip712.recover(domain, eip712.RESHARE_START, bumped, signature) != admin.address


def test_participant_roles_are_checked() -> None:
    config, holder, x, members = setup()
    stranger = NodeIdentity.generate()
    with pytest.raises(ValueError, match="dealer, a new member"):
        ReshareParticipant(config, holder, old_index=None, old_share=None, new_index=None)
    with pytest.raises(ValueError, match="together"):
        ReshareParticipant(config, holder, old_index=1, old_share=None, new_index=3)
    with pytest.raises(ValueError, match="does not match"):
        ReshareParticipant(config, holder, old_index=1, old_share=x + 1, new_index=3)
    with pytest.raises(ValueError, match="not that dealer"):
        ReshareParticipant(config, stranger, old_index=1, old_share=x, new_index=None)
    with pytest.raises(ValueError, match="not that member"):
        ReshareParticipant(config, stranger, old_index=None, old_share=None, new_index=1)
    with pytest.raises(ValueError, match="not in the new committee"):
        ReshareParticipant(config, members[1], old_index=None, old_share=None, new_index=9)
    node = ReshareParticipant(config, holder, old_index=1, old_share=x, new_index=3)
    assert node.index == 3 and node.is_dealer and node.is_receiver
    node.start()
    text = repr(node) + repr(node._secret)  # the secret side too
    assert str(x) not in text and hex(x)[2:] not in text
