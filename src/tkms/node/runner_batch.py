"""``POST /v1/delegate/batch`` in ``user`` mode: the runner's operands, each key checked
(docs/batch-delegation.md, "User mode"; docs/node-authorization.md, "The runner").

In user mode a batch is what it is for: the runner's operands. Besides the gateway's
``BatchDelegateAuthorization`` (a second factor, checked before this) its body carries
``purpose: "runner"``, the runner's ``OperandAccessAuthorization`` as the runner sent it
(``authorization``) and, per ephemeral key in the same order, ``operands[j] = {handle,
iv, ciphertextDigest[, bindingSignature]}``. The node checks, in order: each key's
binding (a keccak, or the runner's ResultBinding of a result), the statement once (its
signer, chain and ``rsaPublicKey``), each handle among its operands, then the block on
its own RPC. The batch is served whole or refused whole (the runner needs every
operand), and a refusal is one audit entry per key: its own reason, or
``batch_refused`` for a key that passed in a batch another key failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tkms.crypto.encoding import to_hex
from tkms.node.audit import AuditNote
from tkms.node.delegation_batch import BatchCheck, CheckedBatch, KeyRefusals
from tkms.node.runner_checks import check_block, check_statement, not_an_operand, operand_set
from tkms.node.user_checks import UserChecks, check_binding
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json_object

BATCH_REFUSED = "batch_refused"


def _refuse(
    first: ApiError, notes: list[AuditNote], failures: Mapping[int, ApiError], *, every: bool
) -> KeyRefusals:
    """The batch's refusal: ``first``'s code, and each key's own reason in the audit log."""
    refusals = [
        (n, first.code if every else (failures[j].code if j in failures else BATCH_REFUSED))
        for j, n in enumerate(notes)
    ]
    return KeyRefusals(first.status, first.code, first.message, refusals)


def _operands(data: Mapping[str, Any], count: int) -> list[Mapping[str, Any]]:
    items = data.get("operands")
    if (
        not isinstance(items, list)
        or len(items) != count
        or not all(isinstance(i, dict) for i in items)
    ):
        raise ApiError(400, "invalid_body", "operands must be one object per ephemeral key")
    return items


def runner_batch_check(checks: UserChecks) -> BatchCheck:
    """The batch check of every chain ``checks`` serves in user mode (others: None)."""

    async def check(checked: CheckedBatch, body: bytes, note: AuditNote) -> list[AuditNote] | None:
        reader = checks.readers.get(checked.chain_id)
        if reader is None:
            return None  # gateway mode: the gateway's signature alone
        data = parse_json_object(body)
        if data.get("purpose") != "runner":
            raise ApiError(
                403, "user_mode", "in user mode a batch serves the runner's operands only"
            )
        policy = reader.runner
        if policy is None:
            raise ApiError(
                400, "unsupported_purpose", "no runner is configured at this node (RUNNER_ADDRESS)"
            )
        items = _operands(data, len(checked.keys))
        notes = checked.key_notes(note)
        failures: dict[int, ApiError] = {}
        handles: list[str] = []
        for j, (k, item) in enumerate(zip(checked.raw_keys, items, strict=True)):
            try:  # k: the key's 33 bytes, as check_batch decoded them
                handles.append(to_hex(check_binding(item, k, checked.chain_id, reader, notes[j])))
            except ApiError as exc:
                failures[j] = exc
                handles.append("")
        if failures:
            raise _refuse(failures[min(failures)], notes, failures, every=False)
        try:
            statement = check_statement(
                data.get("authorization"),
                chain_id=checked.chain_id,
                runner=policy.runner,
                target=checked.target_text,
                note=note,
            )
        except ApiError as exc:
            for n in notes:
                n.requester = note.requester
            raise _refuse(exc, notes, {}, every=True) from None
        for n in notes:
            n.requester = statement.signer
        operands = operand_set(statement)
        failures = {j: not_an_operand(h) for j, h in enumerate(handles) if h not in operands}
        if failures:
            raise _refuse(failures[min(failures)], notes, failures, every=False)
        try:
            await check_block(statement, reader.head, policy)
        except ApiError as exc:
            raise _refuse(exc, notes, {}, every=True) from None
        return notes

    return check
