"""Client-side recombination (protocol.md §3.4): open, check, combine, decrypt.

Given a keyset checked against the ``Y`` it trusts (a :class:`VerifiedKeyset`
of :func:`tkms.protocol.keyset.verify_keyset`: every ``Y_i`` on one degree ``t−1``
polynomial through ``Y``; these functions take nothing less), a client opens
each RSA-sealed partial, checks its DLEQ proof against ``Y_i`` and combines
the first ``t`` valid ones by Lagrange interpolation in the exponent. With that, the result is right
even if the keyset and the partials came through untrusted hands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tkms.client.errors import NotEnoughPartials, UntrustedResponse, untrusted
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.shamir import combine_points
from tkms.protocol import partials
from tkms.protocol.delegation import SealedPartial
from tkms.protocol.keyset import VerifiedKeyset


def open_partial(
    keyset: VerifiedKeyset,
    private_key: rsa.RSAPrivateKey,
    ephemeral: curve.Point,
    answer: SealedPartial,
) -> curve.Point:
    """``S_i`` from one answer, or :class:`UntrustedResponse` saying what is wrong."""
    with untrusted():  # the checks are the protocol's (shared with the gateway)
        return partials.open_partial(keyset, private_key, ephemeral, answer)


def combine_partials(
    keyset: VerifiedKeyset,
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
    keyset: VerifiedKeyset,
    private_key: rsa.RSAPrivateKey,
    record: ecies.EciesRecord,
    answers: Iterable[SealedPartial],
    failures: Mapping[int, str] | None = None,
) -> bytes:
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    shared_x = combine_partials(keyset, private_key, ephemeral, answers, failures)
    return ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)
