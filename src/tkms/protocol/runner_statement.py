"""The runner's signed statements: operand access and result publishing authorizations.

Pure (no I/O): the gateway checks them (gateway/compute.py), and so does every node in
``user`` mode for the runner's operands (node/runner_checks.py).

``OperandAccessAuthorization`` and ``ResultPublishingAuthorization`` both
travel as ``Authorization: EIP712 <base64(JSON {payload, signature})>`` in
the domain ``Handle Gateway``/``1``/chainId with no salt and no
verifyingContract (nox-compat.md "The runner"), and must be signed by
``RUNNER_ADDRESS`` (else 401). The chain is the statement's ``chainId``.

Neither statement has a validity window; tkms bounds it by ``blockNumber``
(docs/runner.md): on a linked chain a statement whose block is more than
``RUNNER_MAX_BLOCK_AGE`` blocks from the chain's head (either way) is refused
(401 ``stale_authorization``). An operands statement names its operands and
the RSA key they are sealed to, so it can never fetch other operands, and
what it fetches only its runner can open.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, ascii_decimal, parse_address, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet
from tkms.protocol.access import token as read_token
from tkms.web.errors import ApiError

# 64 operands in hex and an RSA-4096 key stay well below this (the server's
# header limit is 32 KiB).
MAX_RUNNER_TOKEN = 24 * 1024


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message)


def _uint(payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if isinstance(value, str):  # a decimal string, as wallets serialise uint256
        value = ascii_decimal(value, max_digits=78)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise _unauthorized("invalid_authorization", f"{name} must be a uint256")
    return value


def _string(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise _unauthorized("invalid_authorization", f"{name} must be a string")
    return value


@dataclass(frozen=True, slots=True)
class RunnerStatement:
    """A statement signed by ``signer`` (not yet compared with ``RUNNER_ADDRESS``)."""

    chain_id: int
    block_number: int
    caller: bytes
    transaction_hash: str
    signer: bytes
    operands: tuple[str, ...] = ()
    rsa_public_key: str = ""


def _decode(header: str | None, statement: eip712.Statement, *, operands: bool) -> RunnerStatement:
    data = read_token(header, limit=MAX_RUNNER_TOKEN)
    payload = data["payload"]
    chain_id = _uint(payload, "chainId")
    block = _uint(payload, "blockNumber")
    try:
        caller = parse_address(payload.get("caller"), name="caller")
    except EncodingError as exc:
        raise _unauthorized("invalid_authorization", str(exc)) from None
    tx_hash = _string(payload, "transactionHash")
    message: dict[str, Any] = {
        "chainId": chain_id,
        "blockNumber": block,
        "caller": caller,
        "transactionHash": tx_hash,
    }
    handles: tuple[str, ...] = ()
    key = ""
    if operands:
        raw = payload.get("operands")
        if not isinstance(raw, list) or not all(isinstance(h, str) for h in raw):
            raise _unauthorized("invalid_authorization", "operands must be a list of strings")
        handles, key = tuple(raw), _string(payload, "rsaPublicKey")
        message |= {"operands": list(handles), "rsaPublicKey": key}
    if chain_id >= 2**32:
        raise _unauthorized("invalid_authorization", "chainId must be a u32")
    domain = eip712.gateway_domain(chain_id)
    try:
        signature = parse_hex(data.get("signature"), name="signature", length=65)
        signer = eip712.recover(domain, statement, message, signature)
    except (EncodingError, SignatureError, eip712.Eip712Error):
        raise _unauthorized("invalid_signature", "authorization signature is invalid") from None
    return RunnerStatement(chain_id, block, caller, tx_hash, signer, handles, key)


def decode_operand_access(header: str | None) -> RunnerStatement:
    return _decode(header, eip712.OPERAND_ACCESS_AUTHORIZATION, operands=True)


def decode_result_publishing(header: str | None) -> RunnerStatement:
    return _decode(header, eip712.RESULT_PUBLISHING_AUTHORIZATION, operands=False)


def check_runner(statement: RunnerStatement, runner: bytes | None) -> None:
    if runner is None:
        raise ApiError(501, "not_configured", "no runner is configured (RUNNER_ADDRESS)")
    if statement.signer != runner:
        raise _unauthorized("invalid_signature", "the statement is not signed by the runner")


def check_fresh(statement: RunnerStatement, head: int, max_age: int) -> None:
    """``blockNumber`` within ``max_age`` blocks of the chain's ``head``, either way."""
    if abs(head - statement.block_number) > max_age:
        raise _unauthorized(
            "stale_authorization",
            f"blockNumber {statement.block_number} is more than {max_age} blocks"
            f" from the chain head {head}",
        )


def operand_access_header(
    runner: Wallet, chain_id: int, block_number: int, operands: list[str], rsa_public_key: str
) -> str:
    """An ``OperandAccessAuthorization`` header value, as a runner sends it (no caller, no
    transaction: what a tool that is not serving a chain event names; ``tkms delegate``)."""
    message: dict[str, Any] = {
        "chainId": chain_id,
        "blockNumber": block_number,
        "caller": bytes(20),
        "transactionHash": "0x" + "00" * 32,
        "operands": operands,
        "rsaPublicKey": rsa_public_key,
    }
    signature = eip712.sign(
        runner, eip712.gateway_domain(chain_id), eip712.OPERAND_ACCESS_AUTHORIZATION, message
    )
    wire = {**message, "caller": "0x" + "00" * 20}
    token = json.dumps({"payload": wire, "signature": to_hex(signature)})
    return "EIP712 " + base64.b64encode(token.encode()).decode()
