"""What a reshare binds: the old keyset it continues, its dealers, the new committee.

A :class:`ReshareConfig` is to a reshare what :class:`CeremonyConfig` is to a
DKG: everything the nodes must agree on before dealing, hashed into the
session id that every message of the reshare carries, and signed by the admin
as ``ReshareStart``. The old keyset enters by its EIP-712 ``Keyset`` digest
(the statement the old committee signed), so a start made for one keyset is
refused by a node that holds another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.dkg import wire
from tkms.dkg.committee import CommitteeMember
from tkms.dkg.errors import DkgMessageError
from tkms.dkg.keyset import KeysetNode, KeysetResult

RESHARE_SESSION_DOMAIN = b"tkms-reshare-session:v1"
RESHARE_SHARE_INFO = b"tkms-reshare-share:v1"
"""HKDF info of sub-share encryption: distinct from the DKG's and the records'."""

_CONFIG_KEYS = {
    "chainId",
    "oldKeyset",
    "oldEpoch",
    "newEpoch",
    "dealers",
    "newThreshold",
    "newMembers",
    "nonce",
    "expiresAt",
}


@dataclass(frozen=True)
class ReshareConfig:
    """A reshare of ``old_keyset`` (epoch e) by ``dealers`` to ``new_members`` at epoch e+1.

    ``dealers`` are old indexes (at least the old threshold of them);
    ``new_members`` carry new indexes, which need not match the old ones: a
    node that stays is recognised by its signer address. The caller passes an
    ``old_keyset`` it trusts (a node its own sealed one): its consistency is
    not re-checked here.
    """

    chain_id: int
    old_keyset: KeysetResult
    old_epoch: int
    new_epoch: int
    dealers: tuple[int, ...]
    new_threshold: int
    new_members: tuple[CommitteeMember, ...]
    nonce: bytes
    expires_at: int
    session_id: bytes = field(init=False)
    old_keyset_digest: bytes = field(init=False, repr=False)
    _by_index: Mapping[int, CommitteeMember] = field(init=False, repr=False, compare=False)
    _old_by_index: Mapping[int, KeysetNode] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.chain_id < 1:
            raise ValueError("chain id must be positive")
        if self.old_epoch != self.old_keyset.epoch:
            raise ValueError("old epoch is not the old keyset's epoch")
        if self.new_epoch != self.old_epoch + 1:
            raise ValueError("a reshare moves to the next epoch, old epoch + 1")
        old = {n.index: n for n in self.old_keyset.nodes}
        if list(self.dealers) != sorted(set(self.dealers)):
            raise ValueError("dealers must be sorted by index, without duplicates")
        if any(j not in old for j in self.dealers):
            raise ValueError("every dealer is a node of the old keyset")
        if len(self.dealers) < self.old_keyset.threshold:
            raise ValueError("need at least the old threshold of dealers")
        indices = [m.index for m in self.new_members]
        if any(not 1 <= i <= wire.MAX_INDEX for i in indices):
            raise ValueError("member indices lie in [1, 65535]")
        if not indices or indices != sorted(set(indices)):
            raise ValueError("new members must be sorted by index, without duplicates")
        if any(len(m.signer) != 20 for m in self.new_members):
            raise ValueError("a signer is a 20-byte address")
        if len({m.signer for m in self.new_members}) != len(self.new_members):
            raise ValueError("two new members share a signer address")
        if not 1 <= self.new_threshold <= len(self.new_members):
            raise ValueError("need 1 <= new threshold <= number of new members")
        if len(self.nonce) != 32:
            raise ValueError("the ceremony nonce is 32 bytes")
        if not 0 < self.expires_at < 2**64:
            raise ValueError("expiresAt is a positive 64-bit Unix time")
        object.__setattr__(self, "_by_index", {m.index: m for m in self.new_members})
        object.__setattr__(self, "_old_by_index", old)
        object.__setattr__(self, "old_keyset_digest", self.old_keyset.digest(self.chain_id))
        object.__setattr__(self, "session_id", self._derive_session_id())

    def _derive_session_id(self) -> bytes:
        h = hashlib.sha256(RESHARE_SESSION_DOMAIN)
        h.update(self.chain_id.to_bytes(32, "big") + self.old_keyset_digest)
        h.update(self.old_epoch.to_bytes(32, "big") + self.new_epoch.to_bytes(32, "big"))
        h.update(len(self.dealers).to_bytes(2, "big"))
        h.update(b"".join(j.to_bytes(2, "big") for j in self.dealers))
        h.update(self.new_threshold.to_bytes(2, "big") + len(self.new_members).to_bytes(2, "big"))
        for m in self.new_members:
            h.update(m.index.to_bytes(2, "big") + m.signer)
            h.update(curve.encode_point(m.encryption_key))
        h.update(self.nonce)
        h.update(self.expires_at.to_bytes(8, "big"))
        return h.digest()

    def start_statement(self) -> dict[str, Any]:
        """The admin's ``ReshareStart`` message (domain ``tkms DKG`` on ``chain_id``)."""
        return {
            "sessionId": self.session_id,
            "publicKey": self.old_keyset.public_key_bytes,
            "oldKeysetDigest": self.old_keyset_digest,
            "oldEpoch": self.old_epoch,
            "oldThreshold": self.old_keyset.threshold,
            "dealers": list(self.dealers),
            "newEpoch": self.new_epoch,
            "newThreshold": self.new_threshold,
            "newMembers": [
                {
                    "index": m.index,
                    "signer": m.signer,
                    "encryptionKey": curve.encode_point(m.encryption_key),
                }
                for m in self.new_members
            ],
            "nonce": self.nonce,
            "expiresAt": self.expires_at,
        }

    # --- lookups -------------------------------------------------------------

    @property
    def old_threshold(self) -> int:
        return self.old_keyset.threshold

    @property
    def new_indices(self) -> tuple[int, ...]:
        return tuple(self._by_index)

    def member(self, index: int) -> CommitteeMember:
        return self._by_index[index]

    def is_member(self, index: int) -> bool:
        return index in self._by_index

    def is_dealer(self, index: int) -> bool:
        return index in self.dealers

    def old_node(self, index: int) -> KeysetNode:
        return self._old_by_index[index]

    def share_info(self, dealer: int, recipient: int) -> bytes:
        """HKDF info binding a sealed sub-share to this session, old dealer and new recipient."""
        return (
            RESHARE_SHARE_INFO
            + self.session_id
            + dealer.to_bytes(2, "big")
            + recipient.to_bytes(2, "big")
        )

    # --- JSON ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "oldKeyset": self.old_keyset.eip712_message(),
            "oldEpoch": self.old_epoch,
            "newEpoch": self.new_epoch,
            "dealers": list(self.dealers),
            "newThreshold": self.new_threshold,
            "newMembers": [m.to_json() for m in self.new_members],
            "nonce": to_hex(self.nonce),
            "expiresAt": self.expires_at,
        }

    @classmethod
    def from_json(cls, data: object) -> ReshareConfig:
        obj = wire.expect_object(data, _CONFIG_KEYS, "reshare config")
        members = wire.get_list(obj, "newMembers", CommitteeMember.from_json)
        dealers = wire.get_list(obj, "dealers", wire.index_item)
        try:
            return cls(
                chain_id=wire.get_int(obj, "chainId", low=1, high=2**256 - 1),
                old_keyset=_keyset_struct(obj["oldKeyset"]),
                old_epoch=wire.get_int(obj, "oldEpoch", low=0, high=2**256 - 2),
                new_epoch=wire.get_int(obj, "newEpoch", low=1, high=2**256 - 1),
                dealers=dealers,
                new_threshold=wire.get_index(obj, "newThreshold"),
                new_members=members,
                nonce=wire.get_hex(obj, "nonce", 32),
                expires_at=wire.get_int(obj, "expiresAt", low=1, high=2**64 - 1),
            )
        except ValueError as exc:
            if isinstance(exc, DkgMessageError):
                raise
            raise DkgMessageError(str(exc)) from None


def _keyset_node(data: object) -> KeysetNode:
    obj = wire.expect_object(data, {"index", "signer", "verificationKey"}, "keyset node")
    return KeysetNode(
        wire.get_index(obj, "index"),
        wire.get_hex(obj, "signer", 20),
        wire.get_point(obj, "verificationKey"),
    )


def _keyset_struct(data: object) -> KeysetResult:
    """The ``Keyset`` struct (no chain id, no signatures): what the old committee signed."""
    obj = wire.expect_object(data, {"epoch", "threshold", "publicKey", "nodes"}, "old keyset")
    nodes = wire.get_list(obj, "nodes", _keyset_node)
    if not nodes:
        raise DkgMessageError("a keyset lists at least one node")
    wire.check_ascending([n.index for n in nodes], "node indices")
    threshold = wire.get_index(obj, "threshold")
    if threshold > len(nodes):
        raise DkgMessageError("threshold exceeds the number of nodes")
    return KeysetResult(
        epoch=wire.get_int(obj, "epoch", low=0, high=2**256 - 2),
        threshold=threshold,
        public_key=wire.get_point(obj, "publicKey"),
        nodes=nodes,
    )


IMPORT_EPOCH = 0
"""The epoch of an imported single key: its first reshare makes epoch 1, a DKG's first epoch."""


def single_keyset(
    public_key: curve.Point, signer: bytes, *, epoch: int = IMPORT_EPOCH
) -> KeysetResult:
    """The 1-of-1 keyset of a whole key held by one node (``tkms import-key``).

    Node 1 holds ``x`` itself, so ``Y_1 = Y``; a reshare with dealer 1 spreads it.
    """
    return KeysetResult(epoch, 1, public_key, (KeysetNode(1, signer, public_key),))
