"""Edges of the primitives: what each refuses, and round trips on random inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import EncodingError, ascii_decimal, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet, recover_address

scalars = st.integers(min_value=1, max_value=curve.ORDER - 1)


@pytest.mark.parametrize(
    ("text", "length"),
    [("0x123", None), ("0xzz", None), (" 0x12", None), ("0x12 34", None), ("0x1234", 3)],
)
def test_parse_hex_rejects(text: str, length: int | None) -> None:
    with pytest.raises(EncodingError):
        parse_hex(text, length=length)


@pytest.mark.parametrize(
    "text",
    ["", "\u00b2", "\u0661\u0662\u0663", "\uff11", "1\u00b2", " 1", "1\n", "-1", "+1", "1_0"],
)
def test_ascii_decimal_refuses_what_isdigit_or_int_would_take(text: str) -> None:
    assert ascii_decimal(text, max_digits=10) is None


def test_ascii_decimal_reads_ascii_digits_up_to_a_length() -> None:
    assert ascii_decimal("0421614", max_digits=7) == 421614
    assert ascii_decimal("12345678", max_digits=7) is None
    assert ascii_decimal(12, max_digits=7) is None


def test_parse_hex_accepts_any_case_with_or_without_prefix() -> None:
    assert parse_hex("0XABcd") == parse_hex("abCD") == b"\xab\xcd"
    assert to_hex(b"\xab\xcd") == "0xabcd"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        bytes(33),
        b"\x04" + bytes(32),
        b"\x02" + (5).to_bytes(32, "big"),  # x = 5 is not on the curve
        b"\x02" + (2**256 - 1).to_bytes(32, "big"),  # x ≥ p
        bytes(curve.base_mul(3).format(compressed=False)),
    ],
)
def test_parse_point_rejects(data: bytes) -> None:
    with pytest.raises(curve.CurveError):
        curve.parse_point(data)


@pytest.mark.parametrize("value", [0, curve.ORDER, 2**256 - 1])
def test_parse_scalar_range(value: int) -> None:
    with pytest.raises(curve.CurveError):
        curve.parse_scalar(value.to_bytes(32, "big"))


def test_sum_at_infinity_is_an_error() -> None:
    p = curve.base_mul(12345)
    with pytest.raises(curve.CurveError):
        curve.add([p, curve.negate(p)])


@settings(max_examples=30, deadline=None)
@given(a=scalars, b=scalars)
def test_group_law(a: int, b: int) -> None:
    left = curve.base_mul((a * b) % curve.ORDER) if (a * b) % curve.ORDER else None
    if left is not None:
        assert curve.points_equal(curve.mul(curve.base_mul(a), b), left)
    if (a + b) % curve.ORDER:
        assert curve.points_equal(
            curve.add([curve.base_mul(a), curve.base_mul(b)]), curve.base_mul(a + b)
        )


@settings(max_examples=20, deadline=None)
@given(x=scalars, plaintext=st.binary(max_size=200))
def test_ecies_round_trip(x: int, plaintext: bytes) -> None:
    record = ecies.encrypt(curve.base_mul(x), plaintext)
    assert len(record.iv) == 12 and len(record.ciphertext) == len(plaintext) + 16
    assert ecies.decrypt(x, record) == plaintext
    # Another info string derives another key: domains do not mix.
    with pytest.raises(ecies.EciesError):
        ecies.decrypt(x, record, info=b"tkms-other")


def test_rsa_key_policy() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa as pyca
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    ok = rsa.generate_private_key()
    assert rsa.load_public_key(rsa.public_key_der(ok)).key_size == 2048
    e3 = pyca.generate_private_key(public_exponent=3, key_size=2048)
    with pytest.raises(rsa.RsaKeyError):
        rsa.load_public_key(rsa.public_key_der(e3))
    with pytest.raises(rsa.RsaKeyError):
        rsa.load_public_key(b"\x30\x03\x02\x01\x01")
    # PKCS#1 RSAPublicKey: the same key, but not the SPKI the protocol requires.
    pkcs1 = ok.public_key().public_bytes(Encoding.DER, PublicFormat.PKCS1)
    with pytest.raises(rsa.RsaKeyError, match="not an SPKI DER public key"):
        rsa.load_public_key(pkcs1)
    with pytest.raises(rsa.RsaKeyError):
        rsa.load_public_key(rsa.public_key_der(ok) + b"\x00")
    sealed = rsa.encrypt(rsa.load_public_key(rsa.public_key_der(ok)), b"k" * 32)
    other = rsa.generate_private_key()
    with pytest.raises(rsa.RsaDecryptError):
        rsa.decrypt(other, sealed)


def test_wallet_signatures() -> None:
    wallet = Wallet.generate()
    digest = bytes(range(32))
    sig = wallet.sign_digest(digest)
    assert sig[64] in (27, 28)
    assert recover_address(digest, sig) == wallet.address
    # v as 0/1 is accepted.
    assert recover_address(digest, sig[:64] + bytes([sig[64] - 27])) == wallet.address
    # The high-s twin is refused.
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (curve.ORDER - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(SignatureError):
        recover_address(digest, twin)
    for bad in (sig[:64], sig[:64] + b"\x05", bytes(65)):
        with pytest.raises(SignatureError):
            recover_address(digest, bad)
    assert wallet.private_key_bytes().hex() not in repr(wallet)


@settings(max_examples=40, deadline=None)
@given(p=scalars, k=scalars)
def test_constant_time_mul_matches_the_group_law(p: int, k: int) -> None:
    point = curve.base_mul(p)
    expected = curve.encode_point(curve.mul(point, k))
    assert curve.mul_secret_encoded(point, k) == expected
    assert curve.mul_secret_x(point, k) == expected[1:]


def test_constant_time_mul_refuses_zero() -> None:
    with pytest.raises(curve.CurveError):
        curve.mul_secret_encoded(curve.base_mul(3), curve.ORDER)


def test_no_test_only_knob_on_a_production_function() -> None:
    """A caller cannot pass a DLEQ nonce or an ECIES ephemeral key (a reused one leaks)."""
    import inspect

    import tkms.dkg.simulation as simulation
    from tkms.crypto import dleq

    assert set(inspect.signature(dleq.prove).parameters) == {"x_i", "K", "Y_i", "S_i"}
    assert set(inspect.signature(dleq.Prover.partial).parameters) == {"self", "K"}
    assert set(inspect.signature(ecies.encrypt).parameters) == {"public_key", "plaintext", "info"}
    assert not hasattr(simulation, "group_secret")  # fault injection lives in tests/
