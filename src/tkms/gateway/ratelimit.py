"""A per-client token bucket on the gateway's anonymous writes (pure ASGI).

``POST /v0/secrets`` takes records from anyone, as Nox's gateway does; this
bounds how fast one client may write. Each client (its peer address, an IPv6
one by its /64, which one host usually holds whole) has a bucket of ``burst``
tokens refilled at ``writes_per_minute``; a write takes one, and a client with
an empty bucket gets 429 ``rate_limited`` with ``Retry-After`` (whole seconds)
before its body is read. At most ``max_clients`` buckets are kept, the least
recently used evicted first, so memory stays bounded whatever the number of
addresses an attacker has.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from tkms.gateway.config import RateLimitConfig
from tkms.web.errors import error_body, send_error_answer

WRITE_PATHS = frozenset({"/v0/secrets", "/v1/secrets", "/v1/acl/grant"})
"""The routes that create rows: records and grants."""


def client_key(host: str) -> str:
    """The bucket of an address: itself, or for IPv6 its /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a unix socket path or a test client's name: itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class TokenBuckets:
    """``take(key)`` → 0 when allowed, else the seconds until a token is back."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)  # now the most recently used
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


class WriteRateLimit:
    def __init__(
        self,
        app: ASGIApp,
        config: RateLimitConfig,
        on_limited: Callable[[], None] | None = None,
        paths: Collection[str] = WRITE_PATHS,
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.trust_forwarded_for = config.trust_forwarded_for
        self.buckets = (
            TokenBuckets(config.writes_per_minute, config.burst, config.max_clients)
            if config.writes_per_minute > 0
            else None
        )
        self.on_limited = on_limited or (lambda: None)

    def _client(self, scope: Scope) -> str:
        if self.trust_forwarded_for:
            for name, value in scope["headers"]:
                if name == b"x-forwarded-for":
                    last = value.decode("latin-1").rsplit(",", 1)[-1].strip()
                    if last:
                        return client_key(last)
        client = scope.get("client")
        return client_key(client[0]) if client else "unknown"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.buckets is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in self.paths
        ):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(self._client(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        self.on_limited()
        retry = max(1, math.ceil(wait))
        body = error_body("rate_limited", f"too many writes from this client: retry in {retry} s")
        await send_error_answer(send, 429, body, (b"retry-after", str(retry).encode()))
