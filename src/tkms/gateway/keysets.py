"""The committee's keyset, read from the nodes and checked before the gateway uses it.

The check is the SDK's (:func:`tkms.protocol.keyset.verify_keyset`): with a trusted
``Y`` configured, every ``Y_i`` on one polynomial through ``Y`` and every
signature present valid; without one, nothing less than every node's
signature of the same keyset. Then the keyset must list each configured node
with the signer the gateway checks its answers against, or the gateway and
its clients would disagree about who is who.

The keyset is read lazily, retried until it succeeds, and read again when the
nodes answer with another epoch (after a reshare). Besides, :meth:`poll` asks
every node every few seconds and moves to a newer epoch as soon as one node
serves it, checked as above (docs/gateway.md, "reshares"): the gateway learns
a reshare when it is signed, not when a request fails. Epochs only go up: a
keyset older than the one in use is refused, so a node still serving the old
epoch (or a replayed old keyset) cannot roll the gateway back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tkms.gateway.fanout import NodeRef
from tkms.protocol.keyset import KeysetError, VerifiedKeyset, verify_keyset
from tkms.transport.http11 import Http11, TransportFailure

log = logging.getLogger("tkms.gateway.keysets")
# A keyset is a few hundred bytes per node; 1 MiB is far past any committee's.
MAX_KEYSET_BYTES = 1024 * 1024


class KeysetUnavailable(Exception):
    """No node served a keyset that checks out; the message says why, node by node."""


@dataclass(frozen=True)
class LoadedKeyset:
    body: Mapping[str, Any]  # §3.1, as the nodes serve it
    keyset: VerifiedKeyset


def check_committee(keyset: VerifiedKeyset, nodes: Mapping[int, NodeRef]) -> None:
    """Each configured node the keyset lists has its configured signer, and at least
    the threshold of them are listed; else :class:`KeysetError`.

    A configured node the keyset does not list has left the committee in a
    reshare: it is not asked for partials of this epoch (its answers would fail
    the proof check anyway).
    """
    listed = 0
    for index, node in nodes.items():
        entry = keyset.node(index)
        if entry is None:
            continue
        if entry.signer != node.signer:
            raise KeysetError(f"keyset does not list node {index} with its configured signer")
        listed += 1
    if listed < keyset.threshold:
        raise KeysetError(
            f"{listed} configured nodes are in the keyset, it needs {keyset.threshold}"
        )


class KeysetSource:
    def __init__(
        self,
        nodes: Mapping[int, NodeRef],
        chain_id: int,
        trusted: bytes | None,
        *,
        timeout: float = 2.0,
    ) -> None:
        self.nodes = dict(nodes)
        self.chain_id = chain_id
        self.trusted = trusted
        self.timeout = timeout
        self._loaded: LoadedKeyset | None = None
        self._floor = 0  # the lowest epoch still acceptable: the one last in use
        self._lock = asyncio.Lock()
        # One kept-alive HTTP/1.1 transport per node (transport/http11.py), for the loop that
        # made them: :meth:`poll` asks every node every ``KEYSET_REFRESH`` (2 s), and a
        # new httpx client and five new connections each time were most of the gateway's
        # idle CPU (docs/performance.md).
        self._http: dict[int, Http11] = {}
        self._http_loop: asyncio.AbstractEventLoop | None = None

    def _transports(self) -> dict[int, Http11]:
        """The transports of the running loop (a connection belongs to the loop that
        opened it; a caller may run several loops, one after the other, over one source)."""
        loop = asyncio.get_running_loop()
        if self._http_loop is not loop:
            self._http_loop = loop
            self._http = {
                index: Http11(node.url, timeout=self.timeout, max_answer_bytes=MAX_KEYSET_BYTES)
                for index, node in self.nodes.items()
            }
        return self._http

    async def aclose(self) -> None:
        if self._http_loop is asyncio.get_running_loop():
            for http in self._http.values():
                await http.aclose()
        self._http, self._http_loop = {}, None

    @property
    def loaded(self) -> LoadedKeyset | None:
        return self._loaded

    def invalidate(self) -> None:
        """Read the keyset again on next use (the nodes answer another epoch)."""
        if self._loaded is not None:
            self._floor = max(self._floor, self._loaded.keyset.epoch)
        self._loaded = None

    async def refresh(self) -> LoadedKeyset | None:
        """Ask every node; move to the newest valid keyset if it is newer than the loaded one."""
        http = self._transports()
        found = await asyncio.gather(*(self._one(http[i], n) for i, n in self.nodes.items()))
        good = [k for k in found if isinstance(k, LoadedKeyset)]
        if not good:
            return None
        newest = max(good, key=lambda k: k.keyset.epoch)
        async with self._lock:
            current = self._loaded
            if current is None or newest.keyset.epoch > current.keyset.epoch:
                if current is not None:
                    log.info(
                        "chain %d: keyset epoch %d → %d",
                        self.chain_id,
                        current.keyset.epoch,
                        newest.keyset.epoch,
                    )
                self._loaded = newest
                self._floor = max(self._floor, newest.keyset.epoch)
            return self._loaded

    async def poll(self, period: float) -> None:
        """Refresh every ``period`` seconds until cancelled (the gateway's lifespan)."""
        while True:
            await asyncio.sleep(period)
            try:
                await self.refresh()
            except Exception:  # a poll never ends the gateway: the next one retries
                log.exception("chain %d: keyset refresh failed", self.chain_id)

    async def get(self) -> LoadedKeyset:
        if self._loaded is not None:
            return self._loaded
        async with self._lock:
            if self._loaded is None:
                self._loaded = await self._fetch()
            return self._loaded

    async def _fetch(self) -> LoadedKeyset:
        """Ask every node at once; the first keyset that checks out wins.

        So a re-fetch takes about one ``timeout`` however many nodes are slow or
        down, not one per node; the others are cancelled once one is good.
        """
        failures: dict[int, str] = {}
        http = self._transports()
        tasks = {
            asyncio.ensure_future(self._one(http[index], node)): index
            for index, node in self.nodes.items()
        }
        try:
            for finished in asyncio.as_completed(tasks):
                outcome = await finished
                if isinstance(outcome, LoadedKeyset):
                    return outcome
                index, why = outcome
                failures[index] = why
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        detail = "; ".join(f"node {i}: {why}" for i, why in sorted(failures.items()))
        raise KeysetUnavailable(f"no valid keyset from the committee ({detail})")

    async def _one(self, http: Http11, node: NodeRef) -> LoadedKeyset | tuple[int, str]:
        """One node's checked keyset, or (its index, why not)."""
        try:
            answer = await http.request(
                "GET", "/v1/keyset", {"chain_id": str(self.chain_id)}, {}, None
            )
            body = json.loads(answer.body)
        except (TransportFailure, ValueError, RecursionError) as exc:
            return node.index, f"unreachable or not JSON ({type(exc).__name__})"
        if answer.status != 200:
            code = body.get("error") if isinstance(body, dict) else None
            return node.index, f"HTTP {answer.status} {str(code)[:40]}"
        loaded = self._loaded
        if loaded is not None and body == loaded.body:
            # The keyset in use, served again (every poll, from every node): it was
            # checked against the same chain, Y and committee; its epoch is the floor's.
            return loaded
        try:
            keyset = verify_keyset(body, self.chain_id, self.trusted)
            check_committee(keyset, self.nodes)
        except KeysetError as exc:
            return node.index, str(exc)
        if keyset.epoch < self._floor:
            return node.index, f"epoch {keyset.epoch} is older than epoch {self._floor} in use"
        return LoadedKeyset(body, keyset)
