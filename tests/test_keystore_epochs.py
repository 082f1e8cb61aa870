"""The keystore by epoch: v1 files migrate, the switch is two writes, restarts abort reshares."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tkms.crypto.encoding import to_hex
from tkms.dkg.lifecycle import Event, KeyLifecycle, Status
from tkms.node import lifecycle_store
from tkms.node.keystore import (
    FILE_NAME,
    ChainShare,
    NodeSecrets,
    ReshareRecord,
    RetiredShare,
    SealedKeystore,
)

OWNER = b"\x22" * 20
CHAIN = 421614


def _share(epoch: int, value: int) -> ChainShare:
    return ChainShare(index=1, epoch=epoch, threshold=3, share=value, keyset={"epoch": epoch})


def test_a_version_1_file_is_read_and_rewritten_in_the_epochs_layout(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    v1 = {
        "version": 1,
        "encryptionKey": to_hex((7).to_bytes(32, "big")),
        "chains": {str(CHAIN): {**_share(1, 99).to_json()}},
        "sessions": {},
    }
    nonce = os.urandom(12)
    aad = b"tkms-node-keystore:v2" + OWNER
    sealed = nonce + AESGCM(key).encrypt(nonce, json.dumps(v1).encode(), aad)
    (tmp_path / FILE_NAME).write_bytes(sealed)
    loaded = SealedKeystore(tmp_path, key, OWNER).load()
    assert loaded is not None and loaded.chains[CHAIN] == _share(1, 99)
    assert lifecycle_store.load(loaded, CHAIN) == KeyLifecycle(Status.SERVING, 1, last_epoch=1)
    raw = (tmp_path / FILE_NAME).read_bytes()
    assert raw != sealed  # resealed at once, as v2
    again = AESGCM(key).decrypt(raw[:12], raw[12:], aad)
    assert json.loads(again)["version"] == 2
    assert json.loads(again)["chains"][str(CHAIN)]["current"] == 1


def test_the_switch_and_the_destruction_are_two_whole_writes(tmp_path: Path) -> None:
    """After write 1 both epochs are held (e+1 current); after write 2 only e+1."""
    store = SealedKeystore(tmp_path, secrets.token_bytes(32), OWNER)
    state = NodeSecrets(5, chains={CHAIN: _share(1, 11)})
    store.save(state)
    state.retired[CHAIN] = {1: RetiredShare(_share(1, 11), destroy_at=100)}
    state.chains[CHAIN] = _share(2, 22)
    store.save(state)  # write 1
    middle = store.load()
    assert middle is not None
    assert middle.chains[CHAIN].epoch == 2 and middle.share_of_epoch(CHAIN, 1) == _share(1, 11)
    assert not middle.due_for_destruction(99) and middle.due_for_destruction(100)
    assert middle.destroy_due(100) == [(CHAIN, 1)]
    store.save(middle)  # write 2
    after = store.load()
    assert after is not None
    assert after.share_of_epoch(CHAIN, 1) is None and after.chains[CHAIN] == _share(2, 22)


def test_a_restart_aborts_a_reshare_and_keeps_epoch_e(tmp_path: Path) -> None:
    state = NodeSecrets(5, chains={CHAIN: _share(1, 11)})
    session = b"\x05" * 32
    lifecycle_store.store(
        state,
        CHAIN,
        KeyLifecycle(Status.SERVING, 1, last_epoch=1).apply(
            Event.RESHARE_STARTED, epoch=2, session_id=session
        ),
    )
    state.reshares[CHAIN] = ReshareRecord(session, 2**40, 1, 2)
    state.sessions[session] = 2**40
    state.retired[CHAIN] = {0: RetiredShare(_share(0, 3), destroy_at=10)}
    assert lifecycle_store.on_restart(state, now=50)
    assert state.reshares == {} and state.chains[CHAIN] == _share(1, 11)
    assert lifecycle_store.load(state, CHAIN) == KeyLifecycle(Status.SERVING, 1, last_epoch=1)
    assert state.retired == {}  # its time had come: destroyed
    assert session in state.sessions  # the start stays refused (a replay)
    round_trip = NodeSecrets.from_json(state.to_json())
    assert round_trip.to_json() == state.to_json()
