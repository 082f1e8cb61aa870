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
        # keep-alive connection and make the next request reconnect. A read's are
        # its exchanges' futures (owned by the connections); a batch's, tasks here.
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

    def _ask(
        self, node: NodeRef, request: NodeRequest, salt: bytes, epoch: int, arrivals: _Arrivals
    ) -> None:
        """Send ``request`` to ``node``; its partial or its failure goes to ``arrivals``.

        No task per node: the exchange is a future of the node's connections and its
        answer is checked in that future's callback (:meth:`_judge`)."""
        started = time.perf_counter()
        # The exchange's own timer: no task of its own (wait_for), no Timeout object.
        answer = self._connections(node).exchange(
            request, limit=MAX_ANSWER_BYTES, timeout=self.node_timeout
        )
        answer.add_done_callback(
            functools.partial(self._judge, node, salt, epoch, started, arrivals)
        )

    def _judge(
        self,
        node: NodeRef,
        salt: bytes,
        epoch: int,
        started: float,
        arrivals: _Arrivals,
        answer: asyncio.Future[tuple[int, bytes]],
    ) -> None:
        """A node's exchange is over: its health, its outcome's metric, what it gave."""
        try:
            partial = self._partial(node, *answer.result(), salt, epoch)
        except NodeHttpError as exc:
            failure = exc.failure
        except _NodeFailed as exc:
            failure = exc.failure
        except BaseException as exc:  # not a node's failure: the read raises it, as before
            arrivals.put(node.index, exc)
            return
        else:
            self.health.answered(node.index, time.perf_counter() - started)
            self._on_outcome(node.index, "ok")
            arrivals.put(node.index, partial)
            return
        self.health.failed(node.index)
        self._on_outcome(node.index, failure.kind)
        arrivals.put(node.index, failure)

    def _partial(
        self, node: NodeRef, status: int, raw: bytes, salt: bytes, epoch: int
    ) -> dict[str, Any]:
        """The partial of a node's answer as the read passes it on; _NodeFailed if none."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise _failed(FailureKind.INVALID, f"HTTP {status} without JSON") from None
        if status != 200:
            code = data.get("error") if isinstance(data, dict) else None
            raise _failed(FailureKind.REFUSED, f"HTTP {status} {str(code)[:40]}")
        if not isinstance(data, dict):
            raise _failed(FailureKind.INVALID, "answer is not a JSON object")
        try:
            sealed = check_partial_answer(
                data, index=node.index, signer=node.signer, chain_id=self.chain_id, salt=salt
            )
        except DelegationAnswerError as exc:
            raise _failed(FailureKind.INVALID, str(exc)) from None
        if sealed.epoch != epoch:
            raise _NodeFailed(NodeFailure.stale_epoch(sealed.epoch, epoch))
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
        pending: set[int] = set()  # asked, not answered yet
        arrivals = _Arrivals()

        def ask(index: int) -> None:
            pending.add(index)
            self._ask(self.nodes[index], prepared, salt, epoch, arrivals)

        for i in ordered[: len(ordered) - len(reserve)]:
            ask(i)
        result = FanoutResult()
        end = start + self.deadline
        hedge = start + self.health.hedge_after(ordered[:wanted], self.deadline)
        # The nodes not answered when this returns (or the requester goes away) finish in
        # the background: their exchanges are futures of the connections, their checks
        # and metrics callbacks; nothing is left unowned, nothing is cancelled.
        while pending and len(result.partials) < wanted:
            now = time.perf_counter()
            if now >= end:
                break
            if reserve and now >= hedge:  # late: ask every other node too
                while reserve:
                    ask(reserve.pop(0))
            for index, outcome in await arrivals.next((hedge if reserve else end) - now):
                pending.discard(index)
                if isinstance(outcome, NodeFailure):
                    result.failures[index] = outcome
                    if reserve:  # one more node in its place
                        ask(reserve.pop(0))
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    result.partials.append(outcome)
        if len(result.partials) < threshold:
            for index in pending:
                result.failures[index] = NodeFailure(
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


Arrival = dict[str, Any] | NodeFailure | BaseException
"""A node's partial, its failure, or what went wrong in the gateway itself."""


class _Arrivals:
    """The nodes' outcomes since the last look, and one wake-up to wait on.

    What ``asyncio.wait(FIRST_COMPLETED)`` over a task per node did, without the
    tasks: each exchange's callback puts its node's outcome here.
    """

    def __init__(self) -> None:
        self._done: list[tuple[int, Arrival]] = []
        self._wake: asyncio.Future[None] | None = None

    def put(self, index: int, outcome: Arrival) -> None:
        self._done.append((index, outcome))
        _wake_up(self._wake)

    async def next(self, timeout: float) -> list[tuple[int, Arrival]]:
        """The outcomes since the last call; empty after ``timeout`` seconds with none."""
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
