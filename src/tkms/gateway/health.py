"""The gateway's ``/health``: 200 ``{"status": "ok"}`` only while its store takes writes.

Otherwise 503 ``{"status": "degraded", "checks": {"store": "read-only"}}`` (or
``"unavailable"``, ``"write failed"``), so that a load balancer stops sending
writes to a gateway whose every write would fail. The store's probe writes
nothing (see :meth:`SqlRecordStore.health`); its answer is kept for a second, so
polling ``/health`` costs at most one probe a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from starlette.responses import Response

from tkms.gateway.storage import SqlRecordStore
from tkms.web.common import json_response

log = logging.getLogger("tkms.gateway")


class StoreHealth:
    def __init__(
        self,
        store: SqlRecordStore,
        *,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self._reason: str | None = None

    async def reason(self) -> str | None:
        """None when the store takes writes, else why not (cached for ``ttl``)."""
        async with self._lock:  # one probe at a time; the others wait for its answer
            now = self._clock()
            if self._checked_at is None or now - self._checked_at >= self._ttl:
                try:
                    reason = await asyncio.to_thread(self._store.health)
                except Exception as exc:  # a probe must answer, whatever the driver does
                    log.warning("store probe failed: %s", type(exc).__name__)
                    reason = "unavailable"
                if reason != self._reason:
                    if reason is None:
                        log.info("store takes writes again")
                    else:
                        log.warning("store degraded: %s", reason)
                self._reason, self._checked_at = reason, self._clock()
            return self._reason

    async def response(self) -> Response:
        reason = await self.reason()
        if reason is None:
            return json_response({"status": "ok"})
        return json_response({"status": "degraded", "checks": {"store": reason}}, 503)
