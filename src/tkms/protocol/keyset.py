"""The one check of a served keyset (protocol.md §3.1), for the SDK and the gateway alike.

:func:`verify_keyset` is the only maker of a :class:`VerifiedKeyset`: what opens
or combines partials takes that type, so mypy sees an unchecked keyset reach it.
The keyset itself, and the signatures a ceremony makes of it, are the DKG's
(:mod:`tkms.dkg.keyset`); this is the wire's check of one that a node served.
"""

from __future__ import annotations

from tkms.crypto import curve
from tkms.dkg.errors import DkgMessageError
from tkms.dkg.keyset import KeysetNode, KeysetResult, check_keyset_signatures, parse_keyset
from tkms.protocol.errors import ProtocolError


class KeysetError(ProtocolError):
    """A served keyset is malformed, for another chain, unsigned or inconsistent."""


_VERIFIER = object()  # held by verify_keyset alone: no other code makes a VerifiedKeyset


class VerifiedKeyset:
    """A keyset that passed :func:`verify_keyset` for ``chain_id`` (as pyUmbral's VerifiedKeyFrag).

    Read-only views of the checked :class:`KeysetResult`; the constructor
    refuses any caller but the verifier.
    """

    __slots__ = ("chain_id", "keyset")

    def __init__(self, keyset: KeysetResult, chain_id: int, *, _made_by: object) -> None:
        if _made_by is not _VERIFIER:
            raise TypeError("only verify_keyset makes a VerifiedKeyset")
        self.keyset = keyset
        self.chain_id = chain_id

    def __repr__(self) -> str:
        return f"VerifiedKeyset(chain={self.chain_id}, epoch={self.epoch}, t={self.threshold})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifiedKeyset):
            return NotImplemented
        return (self.chain_id, self.keyset) == (other.chain_id, other.keyset)

    def __hash__(self) -> int:
        return hash((self.chain_id, self.keyset.epoch, self.keyset.public_key_bytes))

    @property
    def epoch(self) -> int:
        return self.keyset.epoch

    @property
    def threshold(self) -> int:
        return self.keyset.threshold

    @property
    def public_key(self) -> curve.Point:
        return self.keyset.public_key

    @property
    def public_key_bytes(self) -> bytes:
        return self.keyset.public_key_bytes

    @property
    def nodes(self) -> tuple[KeysetNode, ...]:
        return self.keyset.nodes

    def node(self, index: int) -> KeysetNode | None:
        return self.keyset.node(index)

    def verification_keys(self) -> dict[int, curve.Point]:
        return self.keyset.verification_keys()


def verify_keyset(body: object, chain_id: int, trusted: bytes | None) -> VerifiedKeyset:
    """Parse a §3.1 keyset body for ``chain_id`` and check it; raises :class:`KeysetError`.

    With the trusted ``Y`` (``trusted``, 33 bytes) the algebraic check is what
    makes a combination safe: the keyset's ``Y`` must be it, every ``Y_i`` on
    one polynomial through it, and every signature present must come from the
    signer its node lists. Without one, nothing less than every listed node's
    signature of this very keyset is trusted.
    """
    try:
        signed = parse_keyset(body)
    except DkgMessageError as exc:
        raise KeysetError(f"malformed keyset: {exc}") from None
    keyset = signed.keyset
    if signed.chain_id != chain_id:
        raise KeysetError(f"keyset is for chain {signed.chain_id}, not {chain_id}")
    if trusted is not None:
        if keyset.public_key_bytes != trusted:
            raise KeysetError("keyset public key is not the trusted KMS public key")
        _check_consistent(keyset)
        present = check_keyset_signatures(
            keyset, chain_id=chain_id, signatures=signed.signatures, required=signed.signatures
        )
        if present:
            raise KeysetError(f"keyset signature of node {present[0]} does not verify")
    else:
        missing = check_keyset_signatures(
            keyset,
            chain_id=chain_id,
            signatures=signed.signatures,
            required=[n.index for n in keyset.nodes],
        )
        if missing:
            raise KeysetError(f"keyset lacks valid signatures of nodes {list(missing)}")
        _check_consistent(keyset)
    return VerifiedKeyset(keyset, chain_id, _made_by=_VERIFIER)


def _check_consistent(keyset: KeysetResult) -> None:
    if not keyset.is_consistent():
        raise KeysetError("keyset verification keys do not lie on one polynomial through Y")
