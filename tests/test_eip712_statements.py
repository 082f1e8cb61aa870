"""Every statement tkms signs, hashed by the fast path and by eth-account: byte-identical."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.crypto import delegation_digests, eip712, eip712_reference
from tkms.crypto.wallet import Wallet

WALLET = Wallet(bytes.fromhex("11" * 32))

hex_bytes = st.binary(max_size=80).map(lambda b: "0x" + b.hex())
FIELD = {
    "string": st.text(max_size=40),
    "uint256": st.integers(min_value=0, max_value=2**256 - 1),
    "address": st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    "bytes": hex_bytes,
    "bytes32": st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex()),
    "bool": st.booleans(),
}


def message_of(statement: eip712.Statement, name: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = {}
    for field, typ in statement.structs[name]:
        if typ.endswith("[]") and typ[:-2] in FIELD:  # an array of atomic values
            fields[field] = st.lists(FIELD[typ[:-2]], max_size=4)
        elif typ.endswith("[]"):
            fields[field] = st.lists(message_of(statement, typ[:-2]), max_size=3)
        else:
            fields[field] = FIELD[typ]
    return st.fixed_dictionaries(fields)


@st.composite
def cases(draw: st.DrawFn) -> tuple[eip712.Domain, eip712.Statement, dict[str, Any]]:
    statement = draw(st.sampled_from(sorted(eip712.STATEMENTS.values(), key=lambda s: s.primary)))
    domain = eip712.Domain(
        draw(
            st.sampled_from(
                ["ProtocolDelegate", "ProtocolKeyset", "Handle Gateway", "tkms DKG", "NoxCompute"]
            )
        ),
        "1",
        draw(st.integers(min_value=1, max_value=2**32 - 1)),
        draw(st.none() | st.binary(min_size=20, max_size=20)),
        draw(st.none() | st.binary(min_size=32, max_size=32)),
    )
    return domain, statement, draw(message_of(statement, statement.primary))


@settings(max_examples=120, deadline=None)
@given(case=cases())
def test_fast_path_is_byte_identical_to_eth_account(
    case: tuple[eip712.Domain, eip712.Statement, dict[str, Any]],
) -> None:
    assert_identical(case)


def assert_identical(case: tuple[eip712.Domain, eip712.Statement, dict[str, Any]]) -> None:
    domain, statement, message = case
    digest = eip712.digest(domain, statement, message)
    assert digest == eip712_reference.reference_digest(domain, statement, message)
    theirs = Account.sign_message(
        encode_typed_data(full_message=eip712_reference.typed_data(domain, statement, message)),
        WALLET.private_key_bytes(),
    ).signature
    assert eip712.sign(WALLET, domain, statement, message) == bytes(theirs)


def test_every_statement_is_listed() -> None:
    names = {name for name in dir(eip712) if isinstance(getattr(eip712, name), eip712.Statement)}
    assert {getattr(eip712, n).primary for n in names} == set(eip712.STATEMENTS)


RUNNER_STATEMENTS = (
    eip712.OPERAND_ACCESS_AUTHORIZATION,
    eip712.RESULT_PUBLISHING_AUTHORIZATION,
    eip712.COMPUTE_OPERANDS,
    eip712.RESULT_PUBLISHING_REPORT,
    eip712.BATCH_DELEGATE_AUTHORIZATION,
    eip712.PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF,
    eip712.COMPUTE_THRESHOLD_OPERANDS,
    eip712.RESULT_BINDING,
)


@st.composite
def runner_cases(draw: st.DrawFn) -> tuple[eip712.Domain, eip712.Statement, dict[str, Any]]:
    """The runner's statements in their domains: unsalted (its own), salted (the answers)."""
    statement = draw(st.sampled_from(RUNNER_STATEMENTS))
    chain_id = draw(st.integers(min_value=1, max_value=2**32 - 1))
    salt = draw(st.none() | st.binary(min_size=32, max_size=32))
    domain = eip712.gateway_domain(chain_id, salt=salt)
    return domain, statement, draw(message_of(statement, statement.primary))


@settings(max_examples=80, deadline=None)
@given(case=runner_cases())
def test_runner_statements_are_byte_identical_to_eth_account(
    case: tuple[eip712.Domain, eip712.Statement, dict[str, Any]],
) -> None:
    assert_identical(case)


PUBLIC_STATEMENTS = (
    eip712.PUBLIC_DECRYPTION_RESULT,
    eip712.DECRYPTION_PROOF,
    eip712.HANDLE_STATUS_REPORT,
)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_public_decryption_statements_match_eth_account(data: st.DataObject) -> None:
    """The three statements of the public routes, each in the domain it is signed in."""
    statement = data.draw(st.sampled_from(PUBLIC_STATEMENTS))
    chain_id = data.draw(st.integers(min_value=1, max_value=2**32 - 1))
    if statement is eip712.DECRYPTION_PROOF:
        domain = eip712.nox_compute_domain(chain_id, data.draw(st.binary(min_size=20, max_size=20)))
    else:
        domain = eip712.gateway_domain(
            chain_id, salt=data.draw(st.binary(min_size=32, max_size=32))
        )
    message = data.draw(message_of(statement, statement.primary))
    assert eip712.digest(domain, statement, message) == eip712_reference.reference_digest(
        domain, statement, message
    )
    theirs = Account.sign_message(
        encode_typed_data(full_message=eip712_reference.typed_data(domain, statement, message)),
        WALLET.private_key_bytes(),
    ).signature
    assert eip712.sign(WALLET, domain, statement, message) == bytes(theirs)


def test_public_statement_type_strings() -> None:
    assert eip712.HANDLE_STATUS_REPORT.encode_type == (
        "HandleStatusReport(HandleResolution[] statuses)"
        "HandleResolution(string handle,bool resolved)"
    )
    assert (
        eip712.DECRYPTION_PROOF.encode_type
        == "DecryptionProof(bytes32 handle,bytes decryptedResult)"
    )
    assert (
        eip712.PUBLIC_DECRYPTION_RESULT.encode_type
        == "PublicDecryptionResult(string decryptionProof)"
    )


@settings(max_examples=60, deadline=None)
@given(
    chain_id=st.integers(min_value=1, max_value=2**32 - 1),
    salt=st.binary(min_size=32, max_size=32),
    index=st.integers(min_value=0, max_value=2**256 - 1),
    epoch=st.integers(min_value=0, max_value=2**256 - 1),
    sealed=st.text(max_size=40),
)
def test_partial_response_digest_is_eth_accounts(
    chain_id: int, salt: bytes, index: int, epoch: int, sealed: str
) -> None:
    """The straight-line digest of a partial's proof (delegation_digests.partial_answer_digest)."""
    domain = eip712.delegate_domain(chain_id, salt)
    message = {"index": index, "epoch": epoch, "encryptedPartial": sealed}
    statement = eip712.PARTIAL_DELEGATE_RESPONSE_PROOF
    expected = eip712_reference.reference_digest(domain, statement, message)
    digest = delegation_digests.partial_answer_digest(chain_id, salt, index, epoch, sealed)
    assert digest == expected


def test_partial_response_digest_refuses_what_digest_refuses() -> None:
    for salt in (bytes(31), bytes(33)):
        with pytest.raises(eip712.Eip712Error):
            delegation_digests.partial_answer_digest(1, salt, 1, 1, "0x")
    for index, epoch in ((-1, 1), (1, 2**256), (True, 1)):
        with pytest.raises(eip712.Eip712Error):
            delegation_digests.partial_answer_digest(1, bytes(32), index, epoch, "0x")
    with pytest.raises(eip712.Eip712Error):
        delegation_digests.partial_answer_digest(1, bytes(32), 1, 1, "\ud800")  # not valid Unicode
