"""The positive answers of NoxCompute's ACL, kept for a while (the node's and the gateway's).

NoxCompute has no revoke (docs/nox-compat.md, "no revoke"): once
``isViewer(handle, account)`` or ``isPubliclyDecryptable(handle)`` is true on
chain, it stays true. A true answer read once can therefore be served again
without an ``eth_call``, which is most of a user-mode partial's CPU beyond its
cryptography (docs/performance.md, "User mode"). Only two things bound it:

* ``ttl`` seconds: a grant read at the chain's head can be reorged away; the
  TTL bounds how long such a grant is still honoured (0: nothing is kept);
* ``max_entries`` (LRU): a flood of distinct handles costs memory, not more.

A false answer is never kept, so a grant added on chain counts at the very next
request; an RPC failure is never an answer at all (the caller's 503). Keys name
the chain and the contract, so one cache may serve several chains.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

DEFAULT_TTL = 60.0
DEFAULT_MAX_ENTRIES = 65_536


class AclCache:
    """True answers by key, each for ``ttl`` seconds from its read; at most ``max_entries``."""

    def __init__(
        self,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._until: OrderedDict[Hashable, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def holds(self, key: Hashable) -> bool:
        """Whether a true answer for ``key`` was read less than ``ttl`` seconds ago."""
        until = self._until.get(key)
        if until is None:
            return False
        if self._clock() >= until:
            del self._until[key]
            return False
        self._until.move_to_end(key)
        return True

    def keep(self, key: Hashable) -> None:
        if self.ttl <= 0:
            return
        self._until[key] = self._clock() + self.ttl
        self._until.move_to_end(key)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    async def ask(self, key: Hashable, read: Callable[[], Awaitable[bool]]) -> bool:
        """A kept true answer, else ``read()`` (its true answer kept, its false one not)."""
        if self.holds(key):
            return True
        answer = await read()
        if answer:
            self.keep(key)
        return answer

    async def is_viewer(
        self,
        chain_id: int,
        contract: bytes,
        handle: bytes,
        account: bytes,
        read: Callable[[], Awaitable[bool]],
    ) -> bool:
        return await self.ask(("isViewer", chain_id, contract, handle, account), read)

    async def is_publicly_decryptable(
        self, chain_id: int, contract: bytes, handle: bytes, read: Callable[[], Awaitable[bool]]
    ) -> bool:
        return await self.ask(("isPubliclyDecryptable", chain_id, contract, handle), read)
