"""crypto/delegation_digests.py's straight-line digests: eip712.digest's bytes and errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.crypto import delegation_digests as digests
from tkms.crypto import eip712

chains = st.integers(min_value=0, max_value=2**256 - 1)
salts = st.binary(min_size=32, max_size=32)
# ASCII hex as the wire carries it, and any text (the generic path's, lone surrogates too).
texts = st.one_of(
    st.binary(max_size=300).map(lambda b: "0x" + b.hex()),
    st.text(max_size=40),
)
uints = st.integers(min_value=0, max_value=2**256 - 1)


def outcome(compute: Any) -> bytes | str:
    """The digest, or the error's type and message: both sides must agree on either."""
    try:
        result: bytes = compute()
        return result
    except (eip712.Eip712Error, UnicodeEncodeError) as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=200, deadline=None)
@given(chain=chains, k=texts, target=texts)
def test_request_digest(chain: int, k: str, target: str) -> None:
    message = {"ephemeralPubKey": k, "targetPubKey": target}
    expected = outcome(
        lambda: eip712.digest(eip712.delegate_domain(chain), eip712.DELEGATE_AUTHORIZATION, message)
    )
    assert outcome(lambda: digests.request_digest(chain, k, target)) == expected


@settings(max_examples=200, deadline=None)
@given(chain=chains, salt=salts, sealed=texts)
def test_v0_answer_digest(chain: int, salt: bytes, sealed: str) -> None:
    domain = eip712.delegate_domain(chain, salt)
    message = {"encryptedSharedSecret": sealed}
    expected = outcome(lambda: eip712.digest(domain, eip712.DELEGATE_RESPONSE_PROOF, message))
    assert outcome(lambda: digests.v0_answer_digest(chain, salt, sealed)) == expected


@settings(max_examples=200, deadline=None)
@given(chain=chains, keys=st.lists(texts, max_size=5), target=texts)
def test_batch_request_digest(chain: int, keys: list[str], target: str) -> None:
    domain = eip712.delegate_domain(chain)
    message = {"ephemeralPubKeys": keys, "targetPubKey": target}
    expected = outcome(lambda: eip712.digest(domain, eip712.BATCH_DELEGATE_AUTHORIZATION, message))
    assert outcome(lambda: digests.batch_request_digest(chain, keys, target)) == expected


@settings(max_examples=200, deadline=None)
@given(chain=chains, salt=salts, index=uints, epoch=uints, sealed=st.lists(texts, max_size=5))
def test_batch_answer_digest(
    chain: int, salt: bytes, index: int, epoch: int, sealed: list[str]
) -> None:
    domain = eip712.delegate_domain(chain, salt)
    message = {"index": index, "epoch": epoch, "encryptedPartials": sealed}
    statement = eip712.PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF
    expected = outcome(lambda: eip712.digest(domain, statement, message))
    got = outcome(lambda: digests.batch_answer_digest(chain, salt, index, epoch, sealed))
    assert got == expected


@pytest.mark.parametrize(
    ("chain", "salt", "index", "epoch"),
    [
        (True, b"\x01" * 32, 1, 1),  # a bool is no uint256 (nor chain 1)
        (1, b"\x01" * 31, 1, 1),  # a salt is 32 bytes
        (1, b"\x01" * 32, -1, 1),
        (1, b"\x01" * 32, 1, 2**256),
        (1, b"\x01" * 32, False, 1),
    ],
)
def test_odd_inputs_get_the_generic_answer(chain: Any, salt: Any, index: Any, epoch: Any) -> None:
    domain = eip712.delegate_domain(chain, salt)
    message = {"index": index, "epoch": epoch, "encryptedPartials": ["0x01"]}
    statement = eip712.PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF
    expected = outcome(lambda: eip712.digest(domain, statement, message))
    got = outcome(lambda: digests.batch_answer_digest(chain, salt, index, epoch, ["0x01"]))
    assert got == expected
    v0 = outcome(lambda: digests.v0_answer_digest(chain, salt, "0x01"))
    generic = outcome(
        lambda: eip712.digest(
            domain, eip712.DELEGATE_RESPONSE_PROOF, {"encryptedSharedSecret": "0x01"}
        )
    )
    assert v0 == generic
