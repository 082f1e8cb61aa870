"""``user`` mode, purpose ``runner``: the runner's operands, checked at each node
(docs/node-authorization.md, "The runner").

The runner is trusted (it decrypts every operand it computes on), but only the runner:
a gateway holding the gateway wallet must not get partials by calling itself the runner.
A request for the runner carries the runner's ``OperandAccessAuthorization`` exactly as
the runner sent it to the gateway (``authorization``), and each node checks by itself:

1. the statement decodes and is signed (401, the gateway's codes: one implementation,
   :mod:`tkms.protocol.runner_statement`), for this request's chain (401
   ``invalid_authorization``), by this chain's ``RUNNER_ADDRESS`` (401
   ``invalid_signature``);
2. the target key is exactly its ``rsaPublicKey`` (403 ``target_not_runner_key``);
3. each handle is among its ``operands`` (403 ``not_an_operand``);
4. its ``blockNumber`` is within ``RUNNER_MAX_BLOCK_AGE`` blocks of the chain head read on
   this node's own RPC (401 ``stale_authorization``; no answer: 503 ``chain_unavailable``).
   The statement has no validity window of its own: the block is its window.

The binding of each handle (the caller's, before these) is a tkms-bound handle or a
result whose binding the runner signed (:func:`tkms.protocol.result_binding.is_record_of`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from tkms.node.audit import AuditNote
from tkms.protocol.runner_statement import RunnerStatement, check_fresh, decode_operand_access
from tkms.web.errors import ApiError

Head = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class RunnerPolicy:
    """One chain's runner, as this node is configured: who, and how fresh."""

    runner: bytes
    max_block_age: int


def check_statement(
    header: object, *, chain_id: int, runner: bytes, target: str, note: AuditNote
) -> RunnerStatement:
    """Checks 1 and 2 (pure: one signature recovery); ``note`` learns the signer."""
    if header is None:
        raise ApiError(
            401,
            "missing_runner_authorization",
            "the runner's OperandAccessAuthorization is required",
        )
    if not isinstance(header, str):
        raise ApiError(401, "invalid_authorization", "authorization must be a string")
    statement = decode_operand_access(header)
    note.requester = statement.signer  # the audit log's requester: who signed the statement
    if statement.chain_id != chain_id:
        raise ApiError(401, "invalid_authorization", "the runner's statement is for another chain")
    if statement.signer != runner:
        raise ApiError(401, "invalid_signature", "the statement is not signed by the runner")
    if statement.rsa_public_key != target:
        raise ApiError(
            403, "target_not_runner_key", "targetPubKey is not the runner's rsaPublicKey"
        )
    return statement


def operand_set(statement: RunnerStatement) -> frozenset[str]:
    """The operands as lower-case hex (a handle is compared as the node parsed it)."""
    return frozenset(op.lower() for op in statement.operands)


def not_an_operand(handle_hex: str) -> ApiError:
    return ApiError(403, "not_an_operand", f"{handle_hex} is not among the statement's operands")


async def check_block(statement: RunnerStatement, head: Head, policy: RunnerPolicy) -> None:
    """Check 4: the chain head through this node's RPC (ApiError 503 if unreadable)."""
    check_fresh(statement, await head(), policy.max_block_age)


async def check_runner_request(
    header: object,
    *,
    chain_id: int,
    target: str,
    handles: Sequence[str],
    policy: RunnerPolicy,
    head: Head,
    note: AuditNote,
) -> RunnerStatement:
    """Checks 1 to 4 for one ``/v1/delegate`` request (``handles``: its one handle)."""
    statement = check_statement(
        header, chain_id=chain_id, runner=policy.runner, target=target, note=note
    )
    operands = operand_set(statement)
    for handle in handles:
        if handle not in operands:
            raise not_an_operand(handle)
    await check_block(statement, head, policy)
    return statement
