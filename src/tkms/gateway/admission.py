"""Admission control of the reads that ask the nodes (docs/gateway.md §9).

Without it every read that arrives starts at once: at 256 concurrent users
each node had hundreds of partials queued, a read's 2 s ``DEADLINE`` ran out
while it waited for a core, and the work of the reads that failed was lost
(bench/soak.py: 9 decryptions/s and 328 errors, where 16 users get 35/s).
Here at most ``max_in_flight`` reads run (the chain's ACL read and the fan-out
included: both queue behind the same cores), up to ``max_queue`` more wait
their turn in arrival order, and one past that is refused at once with 503
``gateway_busy`` and ``Retry-After``, which the SDK honours. A read's fan-out
deadline starts when it is admitted, so the time it waited is never counted
against the nodes.

The default in-flight bound is twice the committee: enough to keep every node
busy (a read asks ``t + spare`` of them, each answers in a few ms when idle),
few enough that a node never holds more than a couple of partials at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from tkms.web.errors import ApiError


class AdmissionConfig(BaseModel):
    """``ADMISSION__MAX_IN_FLIGHT`` (0: twice the committee, at least 4),
    ``ADMISSION__MAX_QUEUE`` and ``ADMISSION__RETRY_AFTER`` (seconds)."""

    model_config = ConfigDict(extra="forbid")
    max_in_flight: int = Field(0, ge=0, le=100_000)
    # About 5 s of reads at this 2-core machine's measured rate (~50/s): a read
    # queued longer would outlast the SDK's default 10 s timeout once served.
    max_queue: int = Field(256, ge=0, le=1_000_000)
    retry_after: int = Field(1, ge=1, le=3600)

    def in_flight(self, committee: int) -> int:
        return self.max_in_flight or max(4, 2 * committee)


class GatewayBusy(ApiError):
    """503 ``gateway_busy``: the queue is full; the answer carries ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            503, "gateway_busy", f"too many reads in progress; retry in {retry_after} s"
        )
        self.retry_after = retry_after


class Admission:
    """A FIFO semaphore with a bounded queue (one event loop: no lock needed)."""

    def __init__(self, max_in_flight: int, max_queue: int, retry_after: int = 1) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``max_in_flight`` places for the block; GatewayBusy if none is near."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self.active < self.max_in_flight and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.max_queue:
            raise GatewayBusy(self.retry_after)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # _release hands its place over: ``active`` stays as it is
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a place just as the requester went away
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.active -= 1
