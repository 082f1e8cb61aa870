"""The chain head, read at most once a second: the runner statements' freshness bound.

A runner's ``OperandAccessAuthorization`` names a block, which must be within
``RUNNER_MAX_BLOCK_AGE`` (256) blocks of the head (docs/runner.md). Every operand
of a computation asks it, at each node and at the gateway; the head a second old
makes that bound at most about a second laxer (under one block on most chains),
for one ``eth_blockNumber`` a second instead of one per operand. A failed read is
not kept: the next asker reads again (and its caller answers 503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

MAX_AGE = 1.0


class RecentHead:
    """``await head()``: the last head read less than ``max_age`` seconds ago, else a new read.

    Concurrent askers share one read; the age counts from the moment the read began."""

    def __init__(
        self,
        read: Callable[[], Awaitable[int]],
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age = max_age
        self._clock = clock
        self._head: tuple[float, int] | None = None  # (read began, block number)
        self._lock: asyncio.Lock | None = None  # made in the loop that first asks

    async def __call__(self) -> int:
        if (fresh := self._fresh()) is not None:
            return fresh
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if (fresh := self._fresh()) is not None:
                return fresh  # read by another asker while this one waited
            began = self._clock()
            head = await self._read()
            self._head = (began, head)
            return head

    def _fresh(self) -> int | None:
        if self._head is None or self._clock() - self._head[0] >= self.max_age:
            return None
        return self._head[1]
