"""The handle binding (docs/binding.md): the doc's worked example, and that every input counts."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tkms.client import UntrustedResponse
from tkms.client.gateway_open import open_single
from tkms.client.trust import GatewayTrust
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.protocol.binding import (
    DOMAIN,
    binding,
    bound_input_handle,
    ciphertext_digest,
    is_bound,
)
from tkms.protocol.handle import input_handle_prefix, new_handle, parse_handle

DOC = Path(__file__).resolve().parents[1] / "docs" / "binding.md"


def doc_example() -> dict[str, bytes]:
    block = DOC.read_text().split("## Worked example", 1)[1].split("```")[1]
    pairs = (re.fullmatch(r"(\w+)\s+([0-9a-f]+)", line) for line in block.strip().splitlines())
    return {m.group(1): bytes.fromhex(m.group(2)) for m in pairs if m is not None}


def test_the_worked_example_of_the_doc() -> None:
    doc = doc_example()
    record = ecies._encrypt_from_parts(
        curve.base_mul(2), (1000).to_bytes(32, "big"), 3, bytes(range(1, 13))
    )
    prefix = input_handle_prefix(421614, "uint256")
    digest = ciphertext_digest(record.ciphertext)
    assert doc["prefix"] == prefix
    assert doc["K"] == record.ephemeral_pubkey
    assert doc["iv"] == record.iv
    assert doc["ciphertext"] == record.ciphertext
    assert doc["digest"] == digest
    assert doc["hashed"] == DOMAIN + prefix + record.ephemeral_pubkey + record.iv + digest
    handle = bound_input_handle(421614, "uint256", record)
    assert doc["handle"] == handle
    assert is_bound(handle, record.ephemeral_pubkey, record.iv, digest)


def test_a_bound_handle_keeps_the_nox_layout() -> None:
    record = ecies.encrypt(curve.base_mul(5), b"\x01")
    handle = parse_handle(bound_input_handle(11155111, "bool", record))
    assert handle.chain_id == 11155111 and handle.solidity_type.name == "bool"
    assert handle.unique and handle.version == 0
    assert handle.to_bytes()[:7] == new_handle(11155111, "bool")[:7]


def test_a_random_handle_or_a_malformed_record_is_not_bound() -> None:
    record = ecies.encrypt(curve.base_mul(5), b"x")
    digest = ciphertext_digest(record.ciphertext)
    assert not is_bound(new_handle(1, "bool"), record.ephemeral_pubkey, record.iv, digest)
    handle = bound_input_handle(1, "bool", record)
    assert not is_bound(handle, b"", record.iv, digest)  # v0 material without K
    assert not is_bound(handle, record.ephemeral_pubkey, record.iv[:11], digest)
    assert not is_bound(handle[:31], record.ephemeral_pubkey, record.iv, digest)


points = st.integers(1, curve.ORDER - 1).map(lambda k: curve.encode_point(curve.base_mul(k)))
prefixes = st.binary(min_size=7, max_size=7)
ivs = st.binary(min_size=12, max_size=12)
ciphertexts = st.binary(min_size=16, max_size=96)


@given(prefixes, points, ivs, ciphertexts, st.data())
def test_any_change_of_an_input_changes_the_binding(
    prefix: bytes, k_enc: bytes, iv: bytes, ciphertext: bytes, data: st.DataObject
) -> None:
    digest = ciphertext_digest(ciphertext)
    original = binding(prefix, k_enc, iv, digest)
    handle = prefix + original
    assert is_bound(handle, k_enc, iv, digest)
    which = data.draw(st.sampled_from(["prefix", "K", "iv", "ciphertext"]))
    if which == "prefix":
        other = data.draw(prefixes.filter(lambda p: p != prefix))
        assert binding(other, k_enc, iv, digest) != original
        assert not is_bound(other + original, k_enc, iv, digest)
    elif which == "K":
        other = data.draw(points.filter(lambda p: p != k_enc))
        assert not is_bound(handle, other, iv, digest)
    elif which == "iv":
        other = data.draw(ivs.filter(lambda v: v != iv))
        assert not is_bound(handle, k_enc, other, digest)
    else:
        other = data.draw(ciphertexts.filter(lambda c: c != ciphertext))
        assert not is_bound(handle, k_enc, iv, ciphertext_digest(other))


def test_v0_material_without_k_is_refused_unless_binding_is_off() -> None:
    """A Nox gateway's v0 material: no K, so no binding to check (docs/binding.md)."""
    key = rsa.generate_private_key()
    y = curve.random_scalar()
    record = ecies.encrypt(curve.base_mul(y), b"\x07")
    handle = parse_handle(new_handle(421614, "uint8"))  # random, as nox makes them
    shared_x = curve.mul_secret_x(curve.parse_point(record.ephemeral_pubkey), y)
    payload = {
        "handle": handle.hex,
        "ciphertext": to_hex(record.ciphertext),
        "iv": to_hex(record.iv),
        "encryptedSharedSecret": to_hex(rsa.encrypt(rsa.load_public_key(
            rsa.public_key_der(key)), shared_x)),
    }  # fmt: skip
    trust = GatewayTrust(421614, bytes(20), bytes(20))
    with pytest.raises(UntrustedResponse, match="binding cannot be checked"):
        open_single(payload, handle, key, trust)
    with pytest.raises(UntrustedResponse, match="does not belong to this handle"):
        open_single(
            {**payload, "ephemeralPubKey": to_hex(record.ephemeral_pubkey)}, handle, key, trust
        )
    assert open_single(payload, handle, key, replace(trust, require_binding=False)) == b"\x07"


def test_a_runner_result_is_bound_by_the_runners_signature_alone() -> None:
    """docs/binding.md "Results published by a runner": a handle from the chain, its record
    bound by the runner's ResultBinding; any other signer, record or handle is not."""
    from tkms.crypto.wallet import Wallet
    from tkms.protocol.result_binding import (
        is_record_of,
        result_binding_signer,
        sign_result_binding,
    )

    runner = Wallet.generate()
    y = curve.base_mul(curve.random_scalar())
    record = ecies.encrypt(y, (12).to_bytes(32, "big"))
    k, iv, digest = record.ephemeral_pubkey, record.iv, ciphertext_digest(record.ciphertext)
    handle = new_handle(421614, "uint256")  # from the chain: random bytes, not bound
    assert not is_bound(handle, k, iv, digest)
    signature = sign_result_binding(runner, handle, k, iv, digest)
    assert result_binding_signer(handle, k, iv, digest, signature) == runner.address
    assert is_record_of(handle, k, iv, digest, signature, runner.address)
    assert not is_record_of(handle, k, iv, digest, signature, Wallet.generate().address)
    assert not is_record_of(handle, k, iv, digest, None, runner.address)
    assert not is_record_of(handle, k, iv, digest, signature, None)
    other = ecies.encrypt(y, (99).to_bytes(32, "big"))
    other_digest = ciphertext_digest(other.ciphertext)
    for args in (
        (new_handle(421614, "uint256"), k, iv, digest),  # the signature under another handle
        (handle, other.ephemeral_pubkey, iv, digest),
        (handle, k, other.iv, digest),
        (handle, k, iv, other_digest),
        (handle, other.ephemeral_pubkey, other.iv, other_digest),  # another record entirely
    ):
        assert not is_record_of(*args, signature, runner.address)
    assert result_binding_signer(handle, k, iv, digest, bytes(65)) is None
    assert result_binding_signer(handle[:31], k, iv, digest, signature) is None
    # A handle bound by tkms needs no signature.
    bound = bound_input_handle(421614, "uint256", record)
    assert is_record_of(bound, k, iv, digest, None, None)
