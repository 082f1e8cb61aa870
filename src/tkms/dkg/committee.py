"""Who takes part in a ceremony, and the session id that binds every message to it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.dkg import wire
from tkms.dkg.errors import DkgMessageError

SESSION_DOMAIN = b"tkms-dkg-session:v1"
SHARE_INFO = b"tkms-dkg-share:v1"
"""HKDF info of share encryption: distinct from the data records' ECIES info."""


@dataclass(frozen=True, slots=True)
class CommitteeMember:
    """A node's public identity: its index, signing address and share-encryption key."""

    index: int
    signer: bytes
    encryption_key: curve.Point

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "signer": to_hex(self.signer),
            "encryptionKey": to_hex(curve.encode_point(self.encryption_key)),
        }

    @classmethod
    def from_json(cls, data: object) -> CommitteeMember:
        obj = wire.expect_object(data, {"index", "signer", "encryptionKey"}, "member")
        return cls(
            wire.get_index(obj, "index"),
            wire.get_hex(obj, "signer", 20),
            wire.get_point(obj, "encryptionKey"),
        )


@dataclass(frozen=True)
class CeremonyConfig:
    """Everything the nodes must agree on before dealing; ``nonce`` is fresh per ceremony.

    The session id hashes all of it, so a message signed for one ceremony (other
    nonce, committee, threshold, epoch, chain or expiry) is refused by every other.
    ``expires_at`` (Unix seconds) ends the ceremony: a node refuses to start or
    continue it afterwards, so a captured start can only be replayed within it,
    and a node remembers every session it started until then.
    """

    chain_id: int
    epoch: int
    threshold: int
    members: tuple[CommitteeMember, ...]
    nonce: bytes
    expires_at: int
    session_id: bytes = field(init=False)
    _by_index: Mapping[int, CommitteeMember] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        indices = [m.index for m in self.members]
        if any(not 1 <= i <= wire.MAX_INDEX for i in indices):
            raise ValueError("member indices lie in [1, 65535]")
        if indices != sorted(set(indices)):
            raise ValueError("members must be sorted by index, without duplicates")
        if len({m.signer for m in self.members}) != len(self.members):
            raise ValueError("two members share a signer address")
        if any(len(m.signer) != 20 for m in self.members):
            raise ValueError("a signer is a 20-byte address")
        if not 1 <= self.threshold <= len(self.members):
            raise ValueError("need 1 <= threshold <= number of members")
        if self.chain_id < 1 or self.epoch < 0:
            raise ValueError("chain id must be positive and epoch non-negative")
        if len(self.nonce) != 32:
            raise ValueError("the ceremony nonce is 32 bytes")
        if not 0 < self.expires_at < 2**64:
            raise ValueError("expiresAt is a positive 64-bit Unix time")
        object.__setattr__(self, "_by_index", {m.index: m for m in self.members})
        object.__setattr__(self, "session_id", self._derive_session_id())

    def _derive_session_id(self) -> bytes:
        h = hashlib.sha256(SESSION_DOMAIN)
        h.update(self.chain_id.to_bytes(32, "big") + self.epoch.to_bytes(32, "big"))
        h.update(self.threshold.to_bytes(2, "big") + len(self.members).to_bytes(2, "big"))
        for m in self.members:
            h.update(m.index.to_bytes(2, "big") + m.signer)
            h.update(curve.encode_point(m.encryption_key))
        h.update(self.nonce)
        h.update(self.expires_at.to_bytes(8, "big"))
        return h.digest()

    def start_statement(self) -> dict[str, Any]:
        """The admin's ``DkgStart`` message (domain ``tkms DKG`` on ``chain_id``)."""
        return {
            "sessionId": self.session_id,
            "epoch": self.epoch,
            "threshold": self.threshold,
            "members": [
                {
                    "index": m.index,
                    "signer": m.signer,
                    "encryptionKey": curve.encode_point(m.encryption_key),
                }
                for m in self.members
            ],
            "nonce": self.nonce,
            "expiresAt": self.expires_at,
        }

    @property
    def indices(self) -> tuple[int, ...]:
        return tuple(self._by_index)

    def member(self, index: int) -> CommitteeMember:
        return self._by_index[index]

    def is_member(self, index: int) -> bool:
        return index in self._by_index

    def share_info(self, dealer: int, recipient: int) -> bytes:
        """HKDF info binding an encrypted share to this session, dealer and recipient."""
        return (
            SHARE_INFO + self.session_id + dealer.to_bytes(2, "big") + recipient.to_bytes(2, "big")
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "epoch": self.epoch,
            "threshold": self.threshold,
            "members": [m.to_json() for m in self.members],
            "nonce": to_hex(self.nonce),
            "expiresAt": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: object) -> CeremonyConfig:
        obj = wire.expect_object(
            data,
            {"chainId", "epoch", "threshold", "members", "nonce", "expiresAt"},
            "ceremony config",
        )
        members = wire.get_list(obj, "members", CommitteeMember.from_json)
        try:
            return cls(
                chain_id=wire.get_int(obj, "chainId", low=1, high=2**256 - 1),
                epoch=wire.get_int(obj, "epoch", low=0, high=2**256 - 1),
                threshold=wire.get_index(obj, "threshold"),
                members=members,
                nonce=wire.get_hex(obj, "nonce", 32),
                expires_at=wire.get_int(obj, "expiresAt", low=1, high=2**64 - 1),
            )
        except ValueError as exc:
            if isinstance(exc, DkgMessageError):
                raise
            raise DkgMessageError(str(exc)) from None
