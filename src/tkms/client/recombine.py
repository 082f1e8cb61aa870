"""Client-side recombination (protocol.md §3.4): verify, open, combine, decrypt.

Given the ``Y`` it trusts, a client checks the keyset (every ``Y_i`` on one
degree ``t−1`` polynomial through ``Y``), opens each RSA-sealed partial,
checks its DLEQ proof against ``Y_i`` and combines the first ``t`` valid ones
by Lagrange interpolation in the exponent. With that, the result is right
even if the keyset and the partials came through untrusted hands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tkms.client.errors import TkmsError, UntrustedResponse
from tkms.crypto import curve, dleq, ecies, rsa
from tkms.crypto.shamir import combine_points
from tkms.crypto.wallet import SignatureError, recover_address
from tkms.dkg.errors import DkgMessageError
from tkms.dkg.keyset import KeysetResult, parse_keyset

ENVELOPE_LENGTH = 33 + 32 + 32


class NotEnoughPartials(TkmsError):
    """Fewer than ``t`` valid partials; ``failures`` says which node failed and why."""

    def __init__(self, threshold: int, valid: int, failures: Mapping[int, str]) -> None:
        detail = "; ".join(f"node {i}: {why}" for i, why in sorted(failures.items()))
        super().__init__(
            f"need {threshold} valid partials, have {valid}" + (f" ({detail})" if detail else "")
        )
        self.threshold = threshold
        self.valid = valid
        self.failures = dict(failures)


@dataclass(frozen=True)
class SealedPartial:
    """One node's answer as it reaches the client: index, epoch, RSA-sealed envelope."""

    index: int
    epoch: int
    encrypted_partial: bytes


def verify_keyset(
    body: object, trusted_public_key: bytes, *, chain_id: int | None = None
) -> KeysetResult:
    """Parse a §3.1 keyset and check it against the trusted ``Y``.

    Signatures present in the body must come from the signer each node lists;
    the algebraic check is what makes the combination safe.
    """
    try:
        signed = parse_keyset(body)
    except DkgMessageError as exc:
        raise UntrustedResponse(f"malformed keyset: {exc}") from None
    keyset = signed.keyset
    if chain_id is not None and signed.chain_id != chain_id:
        raise UntrustedResponse(f"keyset is for chain {signed.chain_id}, not {chain_id}")
    if keyset.public_key_bytes != trusted_public_key:
        raise UntrustedResponse("keyset public key is not the trusted KMS public key")
    if not keyset.is_consistent():
        raise UntrustedResponse("keyset verification keys do not lie on one polynomial through Y")
    digest = keyset.digest(signed.chain_id)
    signers = {n.index: n.signer for n in keyset.nodes}
    for index, signature in signed.signatures.items():
        try:
            ok = index in signers and recover_address(digest, signature) == signers[index]
        except SignatureError:
            ok = False
        if not ok:
            raise UntrustedResponse(f"keyset signature of node {index} does not verify")
    return keyset


def open_partial(
    keyset: KeysetResult,
    private_key: rsa.RSAPrivateKey,
    ephemeral: curve.Point,
    answer: SealedPartial,
) -> curve.Point:
    """``S_i`` from one answer, or :class:`UntrustedResponse` saying what is wrong."""
    node = keyset.node(answer.index)
    if node is None:
        raise UntrustedResponse("not a node of the keyset")
    if answer.epoch != keyset.epoch:
        raise UntrustedResponse(f"epoch {answer.epoch}, keyset epoch {keyset.epoch}")
    try:
        envelope = rsa.decrypt(private_key, answer.encrypted_partial)
    except rsa.RsaDecryptError:
        raise UntrustedResponse("partial does not open with our RSA key") from None
    if len(envelope) != ENVELOPE_LENGTH:
        raise UntrustedResponse("partial envelope is not 97 bytes")
    try:
        partial = curve.parse_point(envelope[:33])
    except curve.CurveError:
        raise UntrustedResponse("partial is not a curve point") from None
    if not dleq.verify(node.verification_key, ephemeral, partial, envelope[33:]):
        raise UntrustedResponse("DLEQ proof does not verify")
    return partial


def combine_partials(
    keyset: KeysetResult,
    private_key: rsa.RSAPrivateKey,
    ephemeral: curve.Point,
    answers: Iterable[SealedPartial],
    failures: Mapping[int, str] | None = None,
) -> bytes:
    """x(S) from the first ``t`` valid answers; raises :class:`NotEnoughPartials`."""
    failed = dict(failures or {})
    valid: dict[int, curve.Point] = {}
    for answer in answers:
        if len(valid) == keyset.threshold:
            break
        if answer.index in valid:
            continue
        try:
            valid[answer.index] = open_partial(keyset, private_key, ephemeral, answer)
        except UntrustedResponse as exc:
            failed[answer.index] = str(exc)
    if len(valid) < keyset.threshold:
        raise NotEnoughPartials(keyset.threshold, len(valid), failed)
    return curve.point_x(combine_points(valid))


def decrypt_record(
    keyset: KeysetResult,
    private_key: rsa.RSAPrivateKey,
    record: ecies.EciesRecord,
    answers: Iterable[SealedPartial],
    failures: Mapping[int, str] | None = None,
) -> bytes:
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    shared_x = combine_partials(keyset, private_key, ephemeral, answers, failures)
    return ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)
