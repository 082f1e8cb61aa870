"""The public, signed packages of each DKG round, and their JSON form.

Round 1 ``Deal``: Feldman commitments and one ECIES-encrypted share per other
member. Round 2 ``Complaint``: the dealers whose share failed, plus the digest
of every deal the sender saw (equivocation check). Round 3 ``Justification``:
an accused dealer's plain shares for its complainers. Round 4
``KeysetSignature``: the sender's EIP-712 signature of the resulting keyset.

Each package is signed by its sender's node wallet over :class:`wire.Transcript`,
which binds the kind, the session id and the sender index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeVar

from tkms.crypto import curve
from tkms.crypto.ecies import EciesRecord
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import SignatureError, Wallet, recover_address
from tkms.dkg import wire
from tkms.dkg.errors import DkgMessageError

SHARE_CIPHERTEXT_LENGTH = 32 + 16  # one scalar and the GCM tag
_COMMON = {"type", "sessionId", "sender", "signature"}


@dataclass(frozen=True, slots=True)
class _Envelope:
    session_id: bytes
    sender: int

    KIND: ClassVar[str] = ""

    def transcript(self) -> wire.Transcript:
        return wire.Transcript(self.KIND, self.session_id, self.sender)

    def _common_json(self, signature: bytes) -> dict[str, Any]:
        return {
            "type": self.KIND,
            "sessionId": to_hex(self.session_id),
            "sender": self.sender,
            "signature": to_hex(signature),
        }


def _common(
    data: object, kind: str, keys: set[str]
) -> tuple[Mapping[str, object], bytes, int, bytes]:
    obj = wire.expect_object(data, _COMMON | keys, kind)
    if obj["type"] != kind:
        raise DkgMessageError(f"expected a {kind} message")
    return (
        obj,
        wire.get_hex(obj, "sessionId", 32),
        wire.get_index(obj, "sender"),
        wire.get_hex(obj, "signature", 65),
    )


SEALED_SHARE_LENGTH = 33 + 12 + SHARE_CIPHERTEXT_LENGTH


@dataclass(frozen=True, slots=True)
class EncryptedShare:
    """One recipient's share, ECIES-sealed: ``K (33) ‖ iv (12) ‖ ciphertext+tag (48)``.

    Kept as one blob on the wire: every node parses all n² of them per ceremony,
    and only the recipient ever splits one.
    """

    recipient: int
    sealed: bytes

    @classmethod
    def from_record(cls, recipient: int, record: EciesRecord) -> EncryptedShare:
        return cls(recipient, record.ephemeral_pubkey + record.iv + record.ciphertext)

    @property
    def record(self) -> EciesRecord:
        return EciesRecord(self.sealed[:33], self.sealed[33:45], self.sealed[45:])


_SHARE_KEYS = {"recipient", "sealed"}


def _encrypted_share(data: object) -> EncryptedShare:
    if type(data) is dict and data.keys() == _SHARE_KEYS:
        recipient = data["recipient"]
        sealed = wire.exact_hex(data["sealed"], SEALED_SHARE_LENGTH)
        if (
            type(recipient) is int
            and 1 <= recipient <= wire.MAX_INDEX
            and sealed is not None
            and sealed[0] in (2, 3)
        ):
            return EncryptedShare(recipient, sealed)
    # The checked path names what is wrong.
    obj = wire.expect_object(data, _SHARE_KEYS, "share")
    checked = EncryptedShare(
        wire.get_index(obj, "recipient"), wire.get_hex(obj, "sealed", SEALED_SHARE_LENGTH)
    )
    # Shape only: the recipient alone decrypts, and a bad point there is a complaint.
    if checked.sealed[0] not in (2, 3):
        raise DkgMessageError("sealed share does not start with a compressed point")
    return checked


@dataclass(frozen=True, slots=True)
class Deal(_Envelope):
    commitments: tuple[curve.Point, ...]
    shares: tuple[EncryptedShare, ...]
    signature: bytes = b""
    encoded_commitments: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    KIND: ClassVar[str] = "deal"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "encoded_commitments", tuple(curve.encode_point(c) for c in self.commitments)
        )

    def transcript(self) -> wire.Transcript:
        t = wire.Transcript(self.KIND, self.session_id, self.sender).u32(len(self.commitments))
        for c in self.encoded_commitments:
            t.blob(c)
        t.u32(len(self.shares))
        frame = wire.frame
        t.raw(b"".join(s.recipient.to_bytes(2, "big") + frame(s.sealed) for s in self.shares))
        return t

    def share_for(self, recipient: int) -> EncryptedShare | None:
        for s in self.shares:
            if s.recipient == recipient:
                return s
        return None

    def to_json(self) -> dict[str, Any]:
        out = self._common_json(self.signature)
        out["commitments"] = [to_hex(c) for c in self.encoded_commitments]
        out["shares"] = [
            {"recipient": s.recipient, "sealed": to_hex(s.sealed)} for s in self.shares
        ]
        return out

    @classmethod
    def from_json(cls, data: object) -> Deal:
        obj, session, sender, sig = _common(data, cls.KIND, {"commitments", "shares"})
        encoded = wire.get_list(obj, "commitments", wire.point_hex_item)
        if not encoded:
            raise DkgMessageError("a deal has at least one commitment")
        points = tuple(wire.to_point(e, "commitment") for e in encoded)
        shares = wire.get_list(obj, "shares", _encrypted_share)
        wire.check_ascending([s.recipient for s in shares], "share recipients")
        return cls(session, sender, points, shares, sig)


@dataclass(frozen=True, slots=True)
class Complaint(_Envelope):
    deals_digest: bytes
    accused: tuple[int, ...]
    signature: bytes = b""

    KIND: ClassVar[str] = "complaint"

    def transcript(self) -> wire.Transcript:
        t = wire.Transcript(self.KIND, self.session_id, self.sender).blob(self.deals_digest)
        t.u32(len(self.accused))
        for a in self.accused:
            t.u16(a)
        return t

    def to_json(self) -> dict[str, Any]:
        out = self._common_json(self.signature)
        out["dealsDigest"] = to_hex(self.deals_digest)
        out["accused"] = list(self.accused)
        return out

    @classmethod
    def from_json(cls, data: object) -> Complaint:
        obj, session, sender, sig = _common(data, cls.KIND, {"dealsDigest", "accused"})
        accused = wire.get_list(obj, "accused", wire.index_item)
        wire.check_ascending(accused, "accused")
        return cls(session, sender, wire.get_hex(obj, "dealsDigest", 32), accused, sig)


@dataclass(frozen=True, slots=True, repr=False)
class RevealedShare:
    """A dealer's share for a complainer, made public to settle the complaint."""

    recipient: int
    value: int

    def __repr__(self) -> str:
        # Public once broadcast, but still the complainer's share: keep it out of logs.
        return f"RevealedShare(recipient={self.recipient}, value=<hidden>)"


def _revealed(data: object) -> RevealedShare:
    obj = wire.expect_object(data, {"recipient", "share"}, "revealed share")
    return RevealedShare(wire.get_index(obj, "recipient"), wire.get_scalar(obj, "share"))


@dataclass(frozen=True, slots=True)
class Justification(_Envelope):
    revealed: tuple[RevealedShare, ...]
    signature: bytes = b""

    KIND: ClassVar[str] = "justification"

    def transcript(self) -> wire.Transcript:
        t = wire.Transcript(self.KIND, self.session_id, self.sender).u32(len(self.revealed))
        for r in self.revealed:
            t.u16(r.recipient).blob(curve.scalar_to_bytes(r.value))
        return t

    def share_for(self, recipient: int) -> int | None:
        for r in self.revealed:
            if r.recipient == recipient:
                return r.value
        return None

    def to_json(self) -> dict[str, Any]:
        out = self._common_json(self.signature)
        out["revealed"] = [
            {"recipient": r.recipient, "share": to_hex(curve.scalar_to_bytes(r.value))}
            for r in self.revealed
        ]
        return out

    @classmethod
    def from_json(cls, data: object) -> Justification:
        obj, session, sender, sig = _common(data, cls.KIND, {"revealed"})
        revealed = wire.get_list(obj, "revealed", _revealed)
        wire.check_ascending([r.recipient for r in revealed], "revealed recipients")
        return cls(session, sender, revealed, sig)


@dataclass(frozen=True, slots=True)
class KeysetSignature(_Envelope):
    keyset_digest: bytes
    keyset_signature: bytes
    signature: bytes = b""

    KIND: ClassVar[str] = "keysetSignature"

    def transcript(self) -> wire.Transcript:
        t = wire.Transcript(self.KIND, self.session_id, self.sender)
        return t.blob(self.keyset_digest).blob(self.keyset_signature)

    def to_json(self) -> dict[str, Any]:
        out = self._common_json(self.signature)
        out["keysetDigest"] = to_hex(self.keyset_digest)
        out["keysetSignature"] = to_hex(self.keyset_signature)
        return out

    @classmethod
    def from_json(cls, data: object) -> KeysetSignature:
        obj, session, sender, sig = _common(data, cls.KIND, {"keysetDigest", "keysetSignature"})
        return cls(
            session,
            sender,
            wire.get_hex(obj, "keysetDigest", 32),
            wire.get_hex(obj, "keysetSignature", 65),
            sig,
        )


DkgMessage = Deal | Complaint | Justification | KeysetSignature
M = TypeVar("M", Deal, Complaint, Justification, KeysetSignature)

_KINDS: Mapping[str, type[Deal] | type[Complaint] | type[Justification] | type[KeysetSignature]] = {
    c.KIND: c for c in (Deal, Complaint, Justification, KeysetSignature)
}


def parse_message(data: object) -> DkgMessage:
    """Any DKG message from its JSON dict; raises only :class:`DkgMessageError`."""
    if not isinstance(data, Mapping):
        raise DkgMessageError("a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise DkgMessageError("unknown message type")
    return _KINDS[kind].from_json(data)


def signing_digest(message: DkgMessage) -> bytes:
    return message.transcript().digest()


def sign(message: M, wallet: Wallet) -> M:
    return replace(message, signature=wallet.sign_digest(signing_digest(message)))


def signer_of(message: DkgMessage, digest: bytes | None = None) -> bytes | None:
    """The address that signed ``message``, or None when the signature is malformed."""
    try:
        return recover_address(digest or signing_digest(message), message.signature)
    except SignatureError:
        return None
