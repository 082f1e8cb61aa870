"""The sealed keystore: opens only with its key, and a crash never leaves a torn file."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.keystore import FILE_NAME, ChainShare, KeystoreError, NodeSecrets, SealedKeystore

OWNER = b"\x11" * 20  # the node's wallet address, bound into the sealed file


def _secrets(tag: int) -> NodeSecrets:
    share = ChainShare(index=2, epoch=tag, threshold=3, share=10**30 + tag, keyset={"epoch": tag})
    return NodeSecrets(
        encryption_key=10**20 + tag, chains={421614: share}, sessions={bytes([tag]) * 32: 2**40}
    )


def test_round_trip_and_privacy(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    store = SealedKeystore(tmp_path, key, OWNER)
    assert store.load() is None
    store.save(_secrets(1))
    loaded = SealedKeystore(tmp_path, key, OWNER).load()
    assert loaded is not None
    assert loaded.to_json() == _secrets(1).to_json()
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    SealedKeystore(tmp_path / "fresh", key, OWNER).save(_secrets(1))
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700  # made by the node
    raw = path.read_bytes()
    assert hex(10**30 + 1)[2:] not in raw.hex() and b"421614" not in raw  # sealed, not encoded
    assert str(10**30 + 1) not in repr(loaded) and "share=<hidden>" in repr(loaded.chains[421614])


def test_wrong_key_and_damage_are_clear_errors(tmp_path: Path) -> None:
    SealedKeystore(tmp_path, secrets.token_bytes(32), OWNER).save(_secrets(1))
    with pytest.raises(KeystoreError, match="does not open"):
        SealedKeystore(tmp_path, secrets.token_bytes(32), OWNER).load()
    (tmp_path / FILE_NAME).write_bytes(b"short")
    with pytest.raises(KeystoreError, match="damaged"):
        SealedKeystore(tmp_path, secrets.token_bytes(32), OWNER).load()


def test_a_file_sealed_for_another_node_does_not_open(tmp_path: Path) -> None:
    """Two nodes that share a sealing key cannot be handed each other's files."""
    key = secrets.token_bytes(32)
    SealedKeystore(tmp_path, key, OWNER).save(_secrets(1))
    with pytest.raises(KeystoreError, match="does not open"):
        SealedKeystore(tmp_path, key, b"\x22" * 20).load()
    loaded = SealedKeystore(tmp_path, key, OWNER).load()
    assert loaded is not None and loaded.sessions == {b"\x01" * 32: 2**40}


def test_a_file_of_the_unbound_format_is_read_once_and_resealed(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    plain = json.dumps(_secrets(1).to_json()).encode()
    nonce = os.urandom(12)
    legacy = nonce + AESGCM(key).encrypt(nonce, plain, b"tkms-node-keystore:v1")
    (tmp_path / FILE_NAME).write_bytes(legacy)
    loaded = SealedKeystore(tmp_path, key, OWNER).load()
    assert loaded is not None and loaded.to_json() == _secrets(1).to_json()
    assert (tmp_path / FILE_NAME).read_bytes() != legacy  # resealed, now bound to OWNER
    with pytest.raises(KeystoreError, match="does not open"):
        SealedKeystore(tmp_path, key, b"\x22" * 20).load()


def test_expired_sessions_are_forgotten() -> None:
    held = NodeSecrets(1, sessions={b"\x01" * 32: 100, b"\x02" * 32: 300})
    held.forget_expired(200)
    assert held.sessions == {b"\x02" * 32: 300}


WRITER = """
import sys
from pathlib import Path
from tests.test_keystore import _secrets
from tkms.node.keystore import SealedKeystore
store = SealedKeystore(Path(sys.argv[1]), bytes.fromhex(sys.argv[2]), b'\\x11' * 20)
print("ready", flush=True)
i = 0
while True:
    store.save(_secrets(1 + i % 2))
    i += 1
"""


def test_a_crash_at_any_instant_leaves_old_or_new(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    SealedKeystore(tmp_path, key, OWNER).save(_secrets(1))
    rng = random.Random(7)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for _ in range(12):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), key.hex()],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.15))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        loaded = SealedKeystore(tmp_path, key, OWNER).load()
        assert loaded is not None
        assert loaded.to_json() in (_secrets(1).to_json(), _secrets(2).to_json())
    # Temp files of killed writers never replace the real one (and are named apart).
    assert all(
        p.name == FILE_NAME or p.name.startswith(f".{FILE_NAME}.") for p in tmp_path.iterdir()
    )


def test_node_with_a_wrong_sealing_key_refuses_to_start(tmp_path: Path) -> None:
    SealedKeystore(tmp_path, secrets.token_bytes(32), OWNER).save(_secrets(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    env.update(
        {
            "TKMS_NODE_WALLET_KEY": to_hex(Wallet.generate().private_key_bytes()),
            "TKMS_NODE_STATE_DIR": str(tmp_path),
            "TKMS_NODE_SEALING_KEY": to_hex(secrets.token_bytes(32)),
            "TKMS_NODE_CHAINS__421614__GATEWAY_ADDRESS": to_hex(Wallet.generate().address),
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "node"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "TKMS_NODE_SEALING_KEY" in lines[0] and "does not open" in lines[0]
    del env["TKMS_NODE_SEALING_KEY"]
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "node"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "TKMS_NODE_SEALING_KEY: required" in result.stderr
