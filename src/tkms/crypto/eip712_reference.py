"""EIP-712 as eth-account computes it: the yardstick the fast path is held to.

Tests compare :func:`tkms.crypto.eip712.digest` with :func:`reference_digest`
on every statement; wallets and other tools take :func:`typed_data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tkms.crypto.eip712 import Domain, Statement
from tkms.crypto.wallet import keccak256


def typed_data(domain: Domain, statement: Statement, message: Mapping[str, Any]) -> dict[str, Any]:
    """The full EIP-712 JSON (as wallets and eth-account take it)."""
    domain_fields: list[dict[str, str]] = [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
    ]
    domain_json: dict[str, Any] = {
        "name": domain.name,
        "version": domain.version,
        "chainId": domain.chain_id,
    }
    if domain.verifying_contract is not None:
        domain_fields.append({"name": "verifyingContract", "type": "address"})
        domain_json["verifyingContract"] = "0x" + domain.verifying_contract.hex()
    if domain.salt is not None:
        domain_fields.append({"name": "salt", "type": "bytes32"})
        domain_json["salt"] = "0x" + domain.salt.hex()
    types: dict[str, Any] = {"EIP712Domain": domain_fields}
    for name, fields in statement.structs.items():
        types[name] = [{"name": f, "type": t} for f, t in fields]
    return {
        "types": types,
        "primaryType": statement.primary,
        "domain": domain_json,
        "message": dict(message),
    }


def reference_digest(domain: Domain, statement: Statement, message: Mapping[str, Any]) -> bytes:
    """The digest as eth-account computes it: the yardstick of :func:`digest`."""
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(full_message=typed_data(domain, statement, message))
    return keccak256(b"\x19" + signable.version + signable.header + signable.body)
