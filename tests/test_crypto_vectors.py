"""Every case of ecies.json, rsa_oaep.json and eip712.json against tkms.crypto."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.vectors import load
from tkms.crypto import curve, ecies, eip712, eip712_reference, rsa
from tkms.crypto.encoding import parse_hex as h
from tkms.crypto.wallet import Wallet

ECIES = load("ecies")["cases"]
EIP712 = load("eip712")["cases"]
RSA = load("rsa_oaep")


def _int(value: str) -> int:
    return int.from_bytes(h(value), "big")


@pytest.mark.parametrize("case", ECIES, ids=lambda c: f"pt{len(h(c['plaintext']))}")
def test_ecies_case(case: dict[str, Any]) -> None:
    shared_x = h(case["sharedSecretX"])
    if "aesKey" in case:
        assert ecies.derive_key(shared_x) == h(case["aesKey"])
    assert ecies.decrypt_with_shared_x(shared_x, h(case["iv"]), h(case["ciphertext"])) == h(
        case["plaintext"]
    )
    if "kmsPrivateKey" not in case:
        return
    x = _int(case["kmsPrivateKey"])
    public = curve.parse_point(h(case["kmsPublicKey"]))
    assert curve.encode_point(curve.base_mul(x)) == h(case["kmsPublicKey"])
    record = ecies._encrypt_from_parts(
        public, h(case["plaintext"]), _int(case["ephemeralPrivateKey"]), h(case["iv"])
    )
    assert record.ephemeral_pubkey == h(case["ephemeralPubKey"])
    assert record.ciphertext == h(case["ciphertext"])
    # The node's side: S = x·K.
    ephemeral = curve.parse_point(h(case["ephemeralPubKey"]))
    assert curve.point_x(curve.mul(ephemeral, x)) == shared_x
    assert ecies.decrypt(x, record) == h(case["plaintext"])


def test_ecies_rejects_tampering() -> None:
    case = ECIES[2]
    ct = bytearray(h(case["ciphertext"]))
    ct[0] ^= 1
    with pytest.raises(ecies.EciesError):
        ecies.decrypt_with_shared_x(h(case["sharedSecretX"]), h(case["iv"]), bytes(ct))


def test_rsa_oaep_vector() -> None:
    private = rsa.load_private_key(h(RSA["pkcs8"]))
    assert rsa.decrypt(private, h(RSA["ciphertext"])) == h(RSA["plaintext"])
    assert rsa.public_key_der(private) == h(RSA["spki"])
    # Sealing to the vector's SPKI opens with its PKCS#8 key.
    public = rsa.load_public_key(h(RSA["spki"]))
    assert rsa.decrypt(private, rsa.encrypt(public, b"\x07" * 32)) == b"\x07" * 32


def _domain(case: dict[str, Any]) -> eip712.Domain:
    d = case["domain"]
    return eip712.Domain(
        d["name"],
        d["version"],
        d["chainId"],
        h(d["verifyingContract"]) if "verifyingContract" in d else None,
        h(d["salt"]) if "salt" in d else None,
    )


@pytest.mark.parametrize("case", EIP712, ids=lambda c: c["name"])
def test_eip712_case(case: dict[str, Any]) -> None:
    domain = _domain(case)
    statement = eip712.STATEMENTS[case["name"]]
    message = case["message"]
    assert statement.encode_type == case["encodeType"]
    assert eip712.digest(domain, statement, message) == h(case["digest"])
    assert eip712_reference.reference_digest(domain, statement, message) == h(case["digest"])
    assert eip712.recover(domain, statement, message, h(case["signature"])) == h(case["signer"])
    wallet = Wallet(h(case["signerPrivateKey"]))
    assert wallet.address == h(case["signer"])
    # Our fast signing is byte-identical to eth-account's (both RFC 6979).
    ours = eip712.sign(wallet, domain, statement, message)
    theirs = Account.sign_message(
        encode_typed_data(full_message=eip712_reference.typed_data(domain, statement, message)),
        case["signerPrivateKey"],
    ).signature
    assert ours == bytes(theirs)
    assert eip712.recover(domain, statement, message, ours) == wallet.address
