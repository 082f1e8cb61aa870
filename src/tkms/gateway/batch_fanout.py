"""Asking the committee for a batch of sealed partials: one request per node (batch-delegation.md).

The fan-out of ``GET /v1/compute/operands``: the same rules as
:class:`~tkms.gateway.fanout.Fanout` (one signature serves every node,
requests leave in parallel, each answer is checked and a bad one is that
node's failure, the gateway answers at ``min(n, t + spare)`` good answers or
at the deadline with at least ``t``), but each node answers every operand at
once, signed once. The node connections are the fan-out's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tkms.gateway.fanout import Fanout, NodeRef
from tkms.gateway.node_failure import FailureKind, NodeFailure
from tkms.gateway.nodehttp import NodeHttpError
from tkms.protocol.batch_delegation import (
    BatchRequest,
    SealedBatch,
    batch_request,
    check_batch_answer,
)
from tkms.protocol.delegation import DelegationAnswerError
from tkms.protocol.keyset import VerifiedKeyset

# A sealed partial is ~0.5 kB of hex for RSA-2048 (~1 kB for RSA-4096): room for both.
ANSWER_BYTES_PER_KEY = 2 * 1024 + 64
ANSWER_BYTES_BASE = 4 * 1024


@dataclass
class BatchResult:
    batches: list[SealedBatch] = field(default_factory=list)
    failures: dict[int, NodeFailure] = field(default_factory=dict)
    seconds: float = 0.0


class NotEnoughBatches(Exception):
    def __init__(self, threshold: int, result: BatchResult) -> None:
        super().__init__(f"{len(result.batches)} of {threshold} batches")
        self.threshold = threshold
        self.result = result


class _Failed(Exception):
    def __init__(self, failure: NodeFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


async def _one(
    fanout: Fanout, node: NodeRef, request: BatchRequest, salt: bytes, epoch: int
) -> SealedBatch:
    headers = [("Authorization", request.authorization), ("Content-Type", "application/json")]
    body = json.dumps(request.body).encode()
    count = len(request.ephemeral_pubkeys)
    limit = ANSWER_BYTES_BASE + ANSWER_BYTES_PER_KEY * count
    try:
        status, raw = await fanout._connections(node).post(
            request.target(salt), headers, body, limit=limit, timeout=fanout.node_timeout
        )
    except NodeHttpError as exc:
        raise _Failed(exc.failure) from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _Failed(NodeFailure(FailureKind.INVALID, f"HTTP {status} without JSON")) from None
    if status != 200:
        code = data.get("error") if isinstance(data, dict) else None
        raise _Failed(NodeFailure(FailureKind.REFUSED, f"HTTP {status} {str(code)[:40]}"))
    try:
        batch = check_batch_answer(
            data,
            index=node.index,
            signer=node.signer,
            chain_id=request.chain_id,
            salt=salt,
            count=count,
        )
    except DelegationAnswerError as exc:
        raise _Failed(NodeFailure(FailureKind.INVALID, str(exc))) from None
    if batch.epoch != epoch:
        raise _Failed(NodeFailure.stale_epoch(batch.epoch, epoch))
    return batch


async def gather_batches(
    fanout: Fanout,
    ephemeral_pubkeys: Sequence[str],
    target_pubkey: str,
    salt: bytes,
    *,
    keyset: VerifiedKeyset,
    context: Mapping[str, Any] | None = None,
) -> BatchResult:
    """Batches from at least ``keyset.threshold`` nodes; else :class:`NotEnoughBatches`.

    ``context``: what user-mode nodes check (protocol.batch_delegation.runner_fields)."""
    start = time.perf_counter()
    request = batch_request(
        fanout.gateway, fanout.chain_id, ephemeral_pubkeys, target_pubkey, context
    )
    tasks = {
        asyncio.ensure_future(_one(fanout, node, request, salt, keyset.epoch)): i
        for i, node in fanout.nodes.items()
    }
    wanted = min(len(tasks), keyset.threshold + fanout.spare)
    result = BatchResult()
    pending = set(tasks)
    end = start + fanout.deadline
    try:
        while pending and len(result.batches) < wanted:
            remaining = end - time.perf_counter()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                try:
                    result.batches.append(task.result())
                except _Failed as exc:
                    result.failures[tasks[task]] = exc.failure
    finally:
        for task in pending:  # finish in the background, keeping their connections alive
            fanout._background.add(task)
            task.add_done_callback(fanout._settle)
    for task in pending:
        if len(result.batches) < keyset.threshold:
            result.failures[tasks[task]] = NodeFailure(
                FailureKind.TIMEOUT, "no answer before the deadline"
            )
    result.batches.sort(key=lambda b: b.index)
    result.seconds = time.perf_counter() - start
    if len(result.batches) < keyset.threshold:
        raise NotEnoughBatches(keyset.threshold, result)
    return result
