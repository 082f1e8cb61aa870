"""Opening a sealed partial and combining partials (protocol.md §3.4), for any requester.

Whoever named the RSA key a node sealed its partial to opens it: the SDK for
a user's read, the gateway for a public decryption (its own key). Each
partial is checked by its DLEQ proof against the ``Y_i`` of a keyset already
checked against the trusted ``Y`` (:class:`VerifiedKeyset`), so a lying node
is caught, never combined. Pure: no I/O; each side maps :class:`PartialRejected`
to its own error (the SDK's ``UntrustedResponse``, the gateway's node failure).
"""

from __future__ import annotations

from collections.abc import Mapping

from tkms.crypto import curve, dleq, rsa
from tkms.crypto.shamir import combine_points
from tkms.protocol.delegation import SealedPartial
from tkms.protocol.errors import ProtocolError
from tkms.protocol.keyset import VerifiedKeyset

ENVELOPE_LENGTH = 33 + 32 + 32  # S_i ‖ DLEQ proof (c, z)


class PartialRejected(ProtocolError):
    """A partial does not open, or its DLEQ proof does not verify; the message says which."""


def open_partial(
    keyset: VerifiedKeyset,
    private_key: rsa.RSAPrivateKey,
    ephemeral: curve.Point,
    answer: SealedPartial,
) -> curve.Point:
    """``S_i`` of one answer, or :class:`PartialRejected` saying what is wrong."""
    node = keyset.node(answer.index)
    if node is None:
        raise PartialRejected("not a node of the keyset")
    if answer.epoch != keyset.epoch:
        raise PartialRejected(f"epoch {answer.epoch}, keyset epoch {keyset.epoch}")
    try:
        envelope = rsa.decrypt(private_key, answer.encrypted_partial)
    except rsa.RsaDecryptError:
        raise PartialRejected("partial does not open with our RSA key") from None
    if len(envelope) != ENVELOPE_LENGTH:
        raise PartialRejected("partial envelope is not 97 bytes")
    try:
        partial = curve.parse_point(envelope[:33])
    except curve.CurveError:
        raise PartialRejected("partial is not a curve point") from None
    if not dleq.verify(node.verification_key, ephemeral, partial, envelope[33:]):
        raise PartialRejected("DLEQ proof does not verify")
    return partial


def shared_x(keyset: VerifiedKeyset, valid: Mapping[int, curve.Point]) -> bytes:
    """x(S) from the ``t`` lowest-indexed valid partials (Lagrange in the exponent at 0)."""
    if len(valid) < keyset.threshold:
        raise PartialRejected(f"need {keyset.threshold} valid partials, have {len(valid)}")
    chosen = dict(sorted(valid.items())[: keyset.threshold])
    return curve.point_x(combine_points(chosen))
