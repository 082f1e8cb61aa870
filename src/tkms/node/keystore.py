"""A node's long-lived secrets, sealed at rest.

One file, ``keystore.sealed``: AES-256-GCM under the operator's sealing key
(``…SEALING_KEY`` or ``…SEALING_KEY_FILE``), with the file's purpose as
associated data, written atomically (temp file, fsync, rename, fsync of the
directory) so that a crash at any instant leaves the old state or the new one.
It holds the node's share-encryption identity key and, per chain, the share
and the signed keyset of the last completed ceremony.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.keyfiles import write_private

FILE_NAME = "keystore.sealed"
_AAD = b"tkms-node-keystore:v1"


class KeystoreError(Exception):
    """The sealed state cannot be read (wrong sealing key, or damaged)."""


@dataclass(frozen=True)
class ChainShare:
    """This node's part of one chain's key: share, index and the keyset it belongs to."""

    index: int
    epoch: int
    threshold: int
    share: int
    keyset: dict[str, Any]  # the §3.1 body, signatures included

    def __repr__(self) -> str:
        return f"ChainShare(index={self.index}, epoch={self.epoch}, share=<hidden>)"


@dataclass
class NodeSecrets:
    encryption_key: int
    chains: dict[int, ChainShare] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"NodeSecrets(chains={sorted(self.chains)}, keys=<hidden>)"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "encryptionKey": to_hex(curve.scalar_to_bytes(self.encryption_key)),
            "chains": {
                str(chain_id): {
                    "index": c.index,
                    "epoch": c.epoch,
                    "threshold": c.threshold,
                    "share": to_hex(curve.scalar_to_bytes(c.share)),
                    "keyset": c.keyset,
                }
                for chain_id, c in self.chains.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSecrets:
        chains = {
            int(chain_id): ChainShare(
                index=int(c["index"]),
                epoch=int(c["epoch"]),
                threshold=int(c["threshold"]),
                share=int(c["share"], 16),
                keyset=c["keyset"],
            )
            for chain_id, c in data["chains"].items()
        }
        return cls(int(data["encryptionKey"], 16), chains)


class SealedKeystore:
    def __init__(self, state_dir: Path, sealing_key: bytes) -> None:
        if len(sealing_key) != 32:
            raise KeystoreError("the sealing key is 32 bytes")
        self.path = state_dir / FILE_NAME
        self._aead = AESGCM(sealing_key)

    def __repr__(self) -> str:
        return f"SealedKeystore({self.path})"

    def load(self) -> NodeSecrets | None:
        if not self.path.exists():
            return None
        blob = self.path.read_bytes()
        if len(blob) < 12 + 16:
            raise KeystoreError(f"{self.path} is damaged")
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], _AAD)
        except InvalidTag:
            raise KeystoreError(f"{self.path} does not open with this sealing key") from None
        try:
            return NodeSecrets.from_json(json.loads(plain))
        except (ValueError, KeyError, TypeError):
            raise KeystoreError(f"{self.path} holds no valid key state") from None

    def save(self, secrets: NodeSecrets) -> None:
        nonce = os.urandom(12)
        plain = json.dumps(secrets.to_json(), separators=(",", ":")).encode()
        write_private(self.path, nonce + self._aead.encrypt(nonce, plain, _AAD))

    def load_or_create(self) -> NodeSecrets:
        secrets = self.load()
        if secrets is None:
            secrets = NodeSecrets(curve.random_scalar())
            self.save(secrets)
        return secrets
