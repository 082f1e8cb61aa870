"""The committee's keyset, read from the nodes and checked before the gateway uses it.

The check is the SDK's (:func:`tkms.dkg.keyset.verify_keyset`): with a trusted
``Y`` configured, every ``Y_i`` on one polynomial through ``Y`` and every
signature present valid; without one, nothing less than every node's
signature of the same keyset. Then the keyset must list each configured node
with the signer the gateway checks its answers against, or the gateway and
its clients would disagree about who is who.

The keyset is read lazily, retried until it succeeds, and read again when the
nodes answer with another epoch (after a reshare).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tkms.dkg.keyset import KeysetError, VerifiedKeyset, verify_keyset
from tkms.gateway.fanout import NodeRef


class KeysetUnavailable(Exception):
    """No node served a keyset that checks out; the message says why, node by node."""


@dataclass(frozen=True)
class LoadedKeyset:
    body: Mapping[str, Any]  # §3.1, as the nodes serve it
    keyset: VerifiedKeyset


def check_committee(keyset: VerifiedKeyset, nodes: Mapping[int, NodeRef]) -> None:
    """The configured nodes are the keyset's, with their signers; else :class:`KeysetError`."""
    for index, node in nodes.items():
        listed = keyset.node(index)
        if listed is None or listed.signer != node.signer:
            raise KeysetError(f"keyset does not list node {index} with its configured signer")
    if len(nodes) < keyset.threshold:
        raise KeysetError(f"{len(nodes)} nodes configured, the keyset needs {keyset.threshold}")


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
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> LoadedKeyset | None:
        return self._loaded

    def invalidate(self) -> None:
        """Read the keyset again on next use (the nodes answer another epoch)."""
        self._loaded = None

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
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            tasks = {
                asyncio.ensure_future(self._one(http, node)): index
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

    async def _one(self, http: httpx.AsyncClient, node: NodeRef) -> LoadedKeyset | tuple[int, str]:
        """One node's checked keyset, or (its index, why not)."""
        try:
            response = await http.get(
                node.url + "/v1/keyset", params={"chain_id": str(self.chain_id)}
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return node.index, f"unreachable or not JSON ({type(exc).__name__})"
        if response.status_code != 200:
            code = body.get("error") if isinstance(body, dict) else None
            return node.index, f"HTTP {response.status_code} {str(code)[:40]}"
        try:
            keyset = verify_keyset(body, self.chain_id, self.trusted)
            check_committee(keyset, self.nodes)
        except KeysetError as exc:
            return node.index, str(exc)
        return LoadedKeyset(body, keyset)
