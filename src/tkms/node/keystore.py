"""A node's long-lived secrets, sealed at rest.

One file, ``keystore.sealed``: AES-256-GCM under the operator's sealing key
(``…SEALING_KEY`` or ``…SEALING_KEY_FILE``), written atomically (temp file,
fsync, rename, fsync of the directory) so that a crash at any instant leaves
the old state or the new one. The associated data is the file's purpose and
the node's wallet address, so that nodes sharing a sealing key cannot be handed
each other's files; the chains are keys of the authenticated plaintext, so a
share cannot be moved to another chain either. It holds the node's
share-encryption identity key, per chain its shares by epoch (each with the
signed keyset it belongs to), the epoch it serves, the chain's lifecycle state
(``tkms.dkg.lifecycle``, kept as its JSON) and the reshare in progress, and
every ceremony session this node has started and whose expiry has not passed
(so that a replayed start is refused, restarts included).

The switch of a reshare is two writes (docs/dkg.md, "keystore by epoch"):
first the new share becomes current while the old one stays, marked with the
time it is destroyed; then, after that time, a second write drops the old
share. Each write replaces the whole file atomically, so a crash at any
instant leaves a file whose current share is a complete epoch-e or epoch-e+1
share. Version 1 files (one share per chain) are read and rewritten as v2.
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

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "epoch": self.epoch,
            "threshold": self.threshold,
            "share": to_hex(curve.scalar_to_bytes(self.share)),
            "keyset": self.keyset,
        }

    @classmethod
    def from_json(cls, c: dict[str, Any]) -> ChainShare:
        return cls(
            index=int(c["index"]),
            epoch=int(c["epoch"]),
            threshold=int(c["threshold"]),
            share=int(c["share"], 16),
            keyset=c["keyset"],
        )


@dataclass(frozen=True)
class RetiredShare:
    """An epoch's share kept after the switch, to answer requests naming that epoch."""

    share: ChainShare
    destroy_at: int  # Unix seconds; 0: at the next write

    def __repr__(self) -> str:
        return f"RetiredShare(epoch={self.share.epoch}, destroy_at={self.destroy_at})"


@dataclass(frozen=True)
class ReshareRecord:
    """A reshare this node has started and not finished: what a restart needs to abort it."""

    session_id: bytes
    expires_at: int
    old_epoch: int
    new_epoch: int

    def to_json(self) -> dict[str, Any]:
        return {
            "sessionId": to_hex(self.session_id),
            "expiresAt": self.expires_at,
            "oldEpoch": self.old_epoch,
            "newEpoch": self.new_epoch,
        }

    @classmethod
    def from_json(cls, r: dict[str, Any]) -> ReshareRecord:
        return cls(
            bytes.fromhex(str(r["sessionId"]).removeprefix("0x")),
            int(r["expiresAt"]),
            int(r["oldEpoch"]),
            int(r["newEpoch"]),
        )


@dataclass
class NodeSecrets:
    encryption_key: int
    chains: dict[int, ChainShare] = field(default_factory=dict)
    """Per chain, the share of the epoch this node serves (absent: none, or it left)."""
    sessions: dict[bytes, int] = field(default_factory=dict)
    """Ceremony session id → its expiry (Unix seconds): each is started once."""
    retired: dict[int, dict[int, RetiredShare]] = field(default_factory=dict)
    """Per chain, older epochs' shares still held, by epoch, until their destruction."""
    lifecycle: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Per chain, the lifecycle state's JSON (tkms.dkg.lifecycle)."""
    reshares: dict[int, ReshareRecord] = field(default_factory=dict)
    """Per chain, the reshare in progress (at most one)."""

    def forget_expired(self, now: float) -> None:
        """Drop sessions past their expiry: a node refuses those by their date alone."""
        self.sessions = {s: e for s, e in self.sessions.items() if e > now}

    def due_for_destruction(self, now: float) -> bool:
        return any(r.destroy_at <= now for held in self.retired.values() for r in held.values())

    def destroy_due(self, now: float) -> list[tuple[int, int]]:
        """Forget retired shares whose time has come; (chain, epoch) of each (save after)."""
        gone = []
        for chain_id, held in list(self.retired.items()):
            for epoch, r in list(held.items()):
                if r.destroy_at <= now:
                    del held[epoch]
                    gone.append((chain_id, epoch))
            if not held:
                del self.retired[chain_id]
        return gone

    def share_of_epoch(self, chain_id: int, epoch: int) -> ChainShare | None:
        current = self.chains.get(chain_id)
        if current is not None and current.epoch == epoch:
            return current
        retired = self.retired.get(chain_id, {}).get(epoch)
        return retired.share if retired is not None else None

    def __repr__(self) -> str:
        return f"NodeSecrets(chains={sorted(self.chains)}, keys=<hidden>)"

    def to_json(self) -> dict[str, Any]:
        chain_ids = set(self.chains) | set(self.retired) | set(self.lifecycle) | set(self.reshares)
        chains: dict[str, Any] = {}
        for chain_id in sorted(chain_ids):
            current = self.chains.get(chain_id)
            epochs = {str(current.epoch): current.to_json()} if current is not None else {}
            for epoch, r in self.retired.get(chain_id, {}).items():
                epochs[str(epoch)] = {**r.share.to_json(), "destroyAt": r.destroy_at}
            record = self.reshares.get(chain_id)
            chains[str(chain_id)] = {
                "current": current.epoch if current is not None else None,
                "epochs": epochs,
                "lifecycle": self.lifecycle.get(chain_id),
                "reshare": record.to_json() if record is not None else None,
            }
        return {
            "version": 2,
            "encryptionKey": to_hex(curve.scalar_to_bytes(self.encryption_key)),
            "chains": chains,
            "sessions": {to_hex(s): e for s, e in self.sessions.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeSecrets:
        sessions = {
            bytes.fromhex(s.removeprefix("0x")): int(e) for s, e in data.get("sessions", {}).items()
        }
        secrets = cls(int(data["encryptionKey"], 16), sessions=sessions)
        if data.get("version", 1) == 1:  # one share per chain: it is the current one
            for chain_id, c in data["chains"].items():
                secrets.chains[int(chain_id)] = ChainShare.from_json(c)
            return secrets
        for chain_id_raw, c in data["chains"].items():
            chain_id = int(chain_id_raw)
            for epoch_raw, e in c["epochs"].items():
                share = ChainShare.from_json(e)
                if share.epoch != int(epoch_raw):
                    raise ValueError("a share filed under another epoch")
                if c["current"] is not None and share.epoch == int(c["current"]):
                    secrets.chains[chain_id] = share
                else:
                    held = secrets.retired.setdefault(chain_id, {})
                    held[share.epoch] = RetiredShare(share, int(e.get("destroyAt", 0)))
            if c["current"] is not None and chain_id not in secrets.chains:
                raise ValueError("the current epoch's share is missing")
            if c.get("lifecycle") is not None:
                secrets.lifecycle[chain_id] = dict(c["lifecycle"])
            if c.get("reshare") is not None:
                secrets.reshares[chain_id] = ReshareRecord.from_json(c["reshare"])
        return secrets


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
            data = json.loads(plain)
            secrets = NodeSecrets.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(f"{self.path} holds no valid key state") from None
        if legacy or data.get("version", 1) == 1:
            self.save(secrets)  # bound to this node, in the epochs layout, from now on
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
