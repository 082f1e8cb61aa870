"""A node's long-lived secrets, sealed at rest.

One file, ``keystore.sealed``: AES-256-GCM under the operator's sealing key
(``…SEALING_KEY`` or ``…SEALING_KEY_FILE``), written atomically (temp file,
fsync, rename, fsync of the directory) so that a crash at any instant leaves
the old state or the new one. The associated data is the file's purpose and
the node's wallet address, so that nodes sharing a sealing key cannot be handed
each other's files; the chains are keys of the authenticated plaintext, so a
share cannot be moved to another chain either. It holds the node's
share-encryption identity key, per chain the share and the signed keyset of
the completed ceremony, and every ceremony session this node has started and
whose expiry has not passed (so that a replayed start is refused, restarts
included).
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
_AAD_V1 = b"tkms-node-keystore:v1"  # before the owner was bound; read once, then resealed
_AAD_V2 = b"tkms-node-keystore:v2"


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
    sessions: dict[bytes, int] = field(default_factory=dict)
    """Ceremony session id → its expiry (Unix seconds): each is started once."""

    def forget_expired(self, now: float) -> None:
        """Drop sessions past their expiry: a node refuses those by their date alone."""
        self.sessions = {s: e for s, e in self.sessions.items() if e > now}

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
            "sessions": {to_hex(s): e for s, e in self.sessions.items()},
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
        sessions = {
            bytes.fromhex(s.removeprefix("0x")): int(e) for s, e in data.get("sessions", {}).items()
        }
        return cls(int(data["encryptionKey"], 16), chains, sessions)


class SealedKeystore:
    def __init__(self, state_dir: Path, sealing_key: bytes, owner: bytes) -> None:
        if len(sealing_key) != 32:
            raise KeystoreError("the sealing key is 32 bytes")
        if len(owner) != 20:
            raise KeystoreError("the owner is the node's 20-byte wallet address")
        self.path = state_dir / FILE_NAME
        self._aead = AESGCM(sealing_key)
        self._aad = _AAD_V2 + owner

    def __repr__(self) -> str:
        return f"SealedKeystore({self.path})"

    def load(self) -> NodeSecrets | None:
        if not self.path.exists():
            return None
        blob = self.path.read_bytes()
        if len(blob) < 12 + 16:
            raise KeystoreError(f"{self.path} is damaged")
        legacy = False
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], self._aad)
        except InvalidTag:
            try:
                plain = self._aead.decrypt(blob[:12], blob[12:], _AAD_V1)
            except InvalidTag:
                raise KeystoreError(
                    f"{self.path} does not open with this sealing key and node wallet"
                ) from None
            legacy = True
        try:
            secrets = NodeSecrets.from_json(json.loads(plain))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(f"{self.path} holds no valid key state") from None
        if legacy:
            self.save(secrets)  # bound to this node from now on
        return secrets

    def save(self, secrets: NodeSecrets) -> None:
        nonce = os.urandom(12)
        plain = json.dumps(secrets.to_json(), separators=(",", ":")).encode()
        write_private(self.path, nonce + self._aead.encrypt(nonce, plain, self._aad))

    def load_or_create(self) -> NodeSecrets:
        secrets = self.load()
        if secrets is None:
            secrets = NodeSecrets(curve.random_scalar())
            self.save(secrets)
        return secrets
