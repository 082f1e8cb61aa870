"""The gateway's signed HandleThresholdMaterial (wire.signed_material, by
delegation_digests.threshold_material_digest): eip712's bytes and errors."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.crypto import delegation_digests, eip712
from tkms.crypto.wallet import Wallet
from tkms.gateway.wire import signed, signed_material

WALLET = Wallet(bytes(31) + b"\x07")
salts = st.binary(min_size=32, max_size=32)
# Hex as the gateway writes it, any text (the generic path's, lone surrogates too), and
# values of the wrong type: each must give the generic path's answer or its error.
texts = st.one_of(
    st.binary(max_size=300).map(lambda b: "0x" + b.hex()),
    st.text(max_size=20),
)
odd = st.one_of(st.none(), st.booleans(), st.integers(min_value=-3, max_value=3), st.binary())
uints = st.one_of(st.integers(min_value=0, max_value=2**256 - 1), st.just(2**256), odd)
shares = st.fixed_dictionaries(
    {"index": uints, "encryptedPartial": st.one_of(texts, odd), "proof": st.one_of(texts, odd)}
)
payloads = st.fixed_dictionaries(
    {
        "handle": texts,
        "ciphertext": st.one_of(texts, odd),
        "iv": texts,
        "ephemeralPubKey": texts,
        "epoch": uints,
        "threshold": uints,
        "partials": st.one_of(st.lists(st.one_of(shares, odd), max_size=5), odd),
    },
    optional={"bindingSignature": texts},
)


def outcome(compute: Any) -> object:
    """The signed answer, or the error's type and message: both sides must agree on either."""
    try:
        return compute()
    except (eip712.Eip712Error, UnicodeEncodeError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=400, deadline=None)
@given(chain=st.integers(min_value=0, max_value=2**64), salt=salts, payload=payloads)
def test_signed_material_is_signed(chain: int, salt: bytes, payload: dict[str, Any]) -> None:
    statement = eip712.HANDLE_THRESHOLD_MATERIAL
    expected = outcome(lambda: signed(WALLET, chain, salt, statement, payload))
    assert outcome(lambda: signed_material(WALLET, chain, salt, payload)) == expected


@settings(max_examples=50, deadline=None)
@given(chain=st.integers(min_value=0, max_value=2**64), salt=salts, payload=payloads)
def test_a_missing_field_fails_alike(chain: int, salt: bytes, payload: dict[str, Any]) -> None:
    statement = eip712.HANDLE_THRESHOLD_MATERIAL
    for name in ("handle", "epoch", "partials"):
        short = {k: v for k, v in payload.items() if k != name}
        expected = outcome(lambda s=short: signed(WALLET, chain, salt, statement, s))
        assert outcome(lambda s=short: signed_material(WALLET, chain, salt, s)) == expected


@settings(max_examples=100, deadline=None)
@given(
    payload=st.fixed_dictionaries(
        {
            "handle": texts.filter(str.isascii),
            "ciphertext": texts.filter(str.isascii),
            "iv": texts.filter(str.isascii),
            "ephemeralPubKey": texts.filter(str.isascii),
            "epoch": st.integers(min_value=0, max_value=2**256 - 1),
            "threshold": st.integers(min_value=0, max_value=2**256 - 1),
            "partials": st.lists(
                st.fixed_dictionaries(
                    {
                        "index": st.integers(min_value=0, max_value=2**256 - 1),
                        "encryptedPartial": texts.filter(str.isascii),
                        "proof": texts.filter(str.isascii),
                    }
                ),
                max_size=5,
            ),
        }
    )
)
def test_a_read_s_payload_takes_the_straight_line(payload: dict[str, Any]) -> None:
    expected = eip712.hash_struct(eip712.HANDLE_THRESHOLD_MATERIAL, payload)
    assert delegation_digests._threshold_material_struct(payload) == expected
