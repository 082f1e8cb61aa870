"""Asking the committee for sealed partials (protocol.md §4).

One ``DelegateAuthorization`` signature serves every node (its domain has no
salt). Requests leave in parallel; each answer is checked (status, shape,
index, epoch, the node's ``PartialDelegateResponseProof`` under the user's
salt) and a bad one counts as that node's failure. The gateway answers as
soon as it holds ``min(n, t + spare)`` good answers, or at the deadline with
at least ``t``; otherwise it names every node that failed and why.

It asks only ``t + spare`` nodes at first, the best by recent latency and
failures (:mod:`tkms.gateway.node_health`), and each other node when a chosen
one fails, or all of them once the answers are late (the hedge): the
extension of protocol.md §4 in docs/gateway.md. ``ask_all`` restores §4's
"ask every node".

The gateway cannot check a partial itself (it is sealed to the user's RSA
key, and that is the point): ``spare`` extra answers let the client drop a
forged one and still combine, and a client that still lacks ``t`` good ones
asks again with the nodes it caught lying excluded (docs/gateway.md): only
the other nodes are asked then.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.node_failure import FailureKind, NodeFailure
from tkms.gateway.node_health import NodeHealth
from tkms.gateway.node_request import NodeRequest
from tkms.gateway.nodehttp import NodeConnections, NodeHttpError
from tkms.protocol.delegation import (
    V1_PATH,
    DelegateRequest,
    DelegationAnswerError,
    check_partial_answer,
    delegate_request,
)
from tkms.protocol.keyset import VerifiedKeyset

# A partial answer is ~0.8 kB (RSA-4096); anything much larger is not one.
MAX_ANSWER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class NodeRef:
    index: int
    url: str
    signer: bytes


@dataclass
class FanoutResult:
    """Good answers as the nodes signed them (strings untouched), and failures by node."""

    partials: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[int, NodeFailure] = field(default_factory=dict)
    seconds: float = 0.0


class NotEnoughAnswers(Exception):
    def __init__(self, threshold: int, result: FanoutResult) -> None:
        super().__init__(f"{len(result.partials)} of {threshold} partials")
        self.threshold = threshold
        self.result = result


class _NodeFailed(Exception):
    def __init__(self, failure: NodeFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _failed(kind: FailureKind, detail: str) -> _NodeFailed:
    return _NodeFailed(NodeFailure(kind, detail))


Outcome = Callable[[int, str], None]
"""(node index, outcome label) for metrics: ok, or a :class:`FailureKind`."""


class Fanout:
    def __init__(
        self,
        nodes: Mapping[int, NodeRef],
        gateway: Wallet,
        chain_id: int,
        *,
        spare: int,
        deadline: float,
        node_timeout: float,
        on_outcome: Outcome | None = None,
        pools: dict[int, NodeConnections] | None = None,
        ask_all: bool = False,
    ) -> None:
        self.nodes = dict(sorted(nodes.items()))
        self.gateway = gateway
        self.chain_id = chain_id
        self.spare = spare
        self.deadline = deadline
        self.node_timeout = node_timeout
        self._on_outcome = on_outcome or (lambda _i, _o: None)
        self.ask_all = ask_all
        self.health = NodeHealth()
        # Keep-alive connections by node; one gateway's chains share them (``pools``).
        self._pools: dict[int, NodeConnections] = {} if pools is None else pools
        # Stragglers finish in the background: cancelling them would drop their
        # keep-alive connection and make the next request reconnect.
        self._background: set[asyncio.Task[Any]] = set()
        # The DelegateAuthorization of (K, user key) is deterministic (RFC 6979) and
        # the same for every read of a handle by a user: signed once, not per read.
        # Bounded: a key is at most a token's size (8 KiB), 1024 of them at most 8 MiB.
        self._request = functools.lru_cache(maxsize=1024)(self._new_request)

    def _new_request(self, ephemeral_pubkey: str, target_pubkey: str) -> DelegateRequest:
        return delegate_request(self.gateway, self.chain_id, ephemeral_pubkey, target_pubkey)

    def _connections(self, node: NodeRef) -> NodeConnections:
        pool = self._pools.get(node.index)
        if pool is None:
            pool = self._pools[node.index] = NodeConnections(node.url)
        return pool

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()

    async def _ask(self, node: NodeRef, request: NodeRequest) -> dict[str, Any]:
        try:
            # The exchange's own timer: no task of its own (wait_for), no Timeout object.
            status, raw = await self._connections(node).send(
                request, limit=MAX_ANSWER_BYTES, timeout=self.node_timeout
            )
        except NodeHttpError as exc:
            raise _NodeFailed(exc.failure) from None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _failed(FailureKind.INVALID, f"HTTP {status} without JSON") from None
        if status != 200:
            code = data.get("error") if isinstance(data, dict) else None
            raise _failed(FailureKind.REFUSED, f"HTTP {status} {str(code)[:40]}")
        if not isinstance(data, dict):
            raise _failed(FailureKind.INVALID, "answer is not a JSON object")
        return data

    async def _one(
        self,
        node: NodeRef,
        request: NodeRequest,
        salt: bytes,
        epoch: int,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            data = await self._ask(node, request)
            try:
                sealed = check_partial_answer(
                    data, index=node.index, signer=node.signer, chain_id=self.chain_id, salt=salt
                )
            except DelegationAnswerError as exc:
                raise _failed(FailureKind.INVALID, str(exc)) from None
            if sealed.epoch != epoch:
                raise _NodeFailed(NodeFailure.stale_epoch(sealed.epoch, epoch))
        except _NodeFailed as exc:
            self.health.failed(node.index)
            self._on_outcome(node.index, exc.failure.kind)
            raise
        self.health.answered(node.index, time.perf_counter() - started)
        self._on_outcome(node.index, "ok")
        proof = data["proof"]  # 65 bytes of hex: check_partial_answer decoded it
        if not (proof[:2] == "0x" and proof.islower()):  # else already the wire's form
            proof = to_hex(parse_hex(proof, length=65))
        return {"index": node.index, "encryptedPartial": data["encryptedPartial"], "proof": proof}

    async def gather(
        self,
        ephemeral_pubkey: str,
        target_pubkey: str,
        salt: bytes,
        *,
        keyset: VerifiedKeyset,
        exclude: frozenset[int] = frozenset(),
        context: Mapping[str, str] | None = None,
    ) -> FanoutResult:
        """Sealed partials from at least ``keyset.threshold`` nodes not in ``exclude``.

        ``context``: the fields a ``user``-mode node checks (protocol.delegation.user_fields),
        added to the body; a ``gateway``-mode node ignores them.

        Each answer must be of ``keyset``'s epoch. Raises :class:`NotEnoughAnswers`
        with the failures of the nodes it asked.
        """
        start = time.perf_counter()
        threshold, epoch = keyset.threshold, keyset.epoch
        request = self._request(ephemeral_pubkey, target_pubkey)
        target, headers, body = _http_parts(request, salt, context)
        # The epoch named: a node past a reshare's switch answers with its old share
        # while it keeps it, so a request made during the switch does not fail.
        target += f"&epoch={epoch}"
        prepared = NodeRequest(target, headers, body)  # the same bytes for every node but Host
        for i in exclude:  # a client caught it lying: ask it last for a while
            self.health.failed(i)
        ordered = self.health.order(
            i
            for i in self.nodes
            if i not in exclude and keyset.node(i) is not None  # not a node that left
        )
        wanted = min(len(ordered), threshold + self.spare)
        reserve = [] if self.ask_all else ordered[wanted:]
        tasks: dict[asyncio.Task[dict[str, Any]], int] = {}
        pending: set[asyncio.Task[dict[str, Any]]] = set()
        arrivals = _Arrivals()

        def ask(index: int) -> None:
            task = asyncio.create_task(self._one(self.nodes[index], prepared, salt, epoch))
            tasks[task] = index
            pending.add(task)
            arrivals.watch(task)

        for i in ordered[: len(ordered) - len(reserve)]:
            ask(i)
        result = FanoutResult()
        end = start + self.deadline
        hedge = start + self.health.hedge_after(ordered[:wanted], self.deadline)
        try:
            while pending and len(result.partials) < wanted:
                now = time.perf_counter()
                if now >= end:
                    break
                if reserve and now >= hedge:  # late: ask every other node too
                    while reserve:
                        ask(reserve.pop(0))
                done = await arrivals.next((hedge if reserve else end) - now)
                pending.difference_update(done)
                for task in done:
                    try:
                        result.partials.append(task.result())
                    except _NodeFailed as exc:
                        result.failures[tasks[task]] = exc.failure
                        if reserve:  # one more node in its place
                            ask(reserve.pop(0))
        finally:
            # Also when the requester went away (cancelled): nothing is left unowned.
            for task in pending:
                self._background.add(task)
                task.add_done_callback(self._settle)
        if len(result.partials) < threshold:
            for task in pending:
                result.failures[tasks[task]] = NodeFailure(
                    FailureKind.TIMEOUT, "no answer before the deadline"
                )
        result.partials.sort(key=lambda p: int(p["index"]))
        result.seconds = time.perf_counter() - start
        if len(result.partials) < threshold:
            raise NotEnoughAnswers(threshold, result)
        return result

    def _settle(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure is not an unhandled error


class _Arrivals:
    """The fan-out's tasks that finished since the last look, and one wake-up to wait on.

    What ``asyncio.wait(FIRST_COMPLETED)`` does, without adding and removing a
    callback on every pending task each time one answer comes in: one callback
    per task, once.
    """

    def __init__(self) -> None:
        self._done: list[asyncio.Task[dict[str, Any]]] = []
        self._wake: asyncio.Future[None] | None = None

    def watch(self, task: asyncio.Task[dict[str, Any]]) -> None:
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._done.append(task)
        _wake_up(self._wake)

    async def next(self, timeout: float) -> list[asyncio.Task[dict[str, Any]]]:
        """The tasks done since the last call; empty after ``timeout`` seconds with none."""
        if not self._done:
            loop = asyncio.get_running_loop()
            wake = self._wake = loop.create_future()
            timer = loop.call_later(timeout, _wake_up, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None
        done, self._done = self._done, []
        return done


def _wake_up(wake: asyncio.Future[None] | None) -> None:
    if wake is not None and not wake.done():
        wake.set_result(None)


def _http_parts(
    request: DelegateRequest, salt: bytes, context: Mapping[str, str] | None = None
) -> tuple[str, list[tuple[str, str]], bytes]:
    """(target, headers, body) of the request for :class:`NodeConnections`."""
    headers = [("Authorization", request.authorization), ("Content-Type", "application/json")]
    body = request.body if context is None else {**context, **request.body}
    return request.target(V1_PATH, salt), headers, json.dumps(body).encode()
