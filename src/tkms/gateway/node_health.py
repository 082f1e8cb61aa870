"""Which nodes a fan-out asks first: recent latency and failures (docs/gateway.md §3).

protocol.md §4 asks every node and keeps the first ``t + spare`` answers; the
other ``n − t − spare`` partials are computed, sealed and signed for nothing,
and on a machine where nodes share cores that work is taken from the answers
that count. So the gateway asks the ``t + spare`` nodes most likely to answer
well, and the others only when one of those fails, or when the answers are late
(the *hedge*: the deadline nears, or the slowest chosen node is well past its
usual time). Health is a hint, never a check: a node chosen wrongly costs one
hedge, and every node stays reachable (a penalized node is only asked last).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ALPHA = 0.2  # weight of the newest latency in the moving average
COOLDOWN = 5.0  # seconds a failed (or client-excluded) node is asked last
HEDGE_FACTOR = 4.0  # hedge once the chosen nodes are this many times their usual latency late
HEDGE_FLOOR = 0.025  # … but never sooner than this (a loopback round trip is ~2 ms)


@dataclass
class _Record:
    latency: float | None = None  # moving average of successful answers, seconds
    penalized_until: float = 0.0


class NodeHealth:
    """Per node index: a moving average of answer latency, and recent failures."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._nodes: dict[int, _Record] = {}

    def _record(self, index: int) -> _Record:
        record = self._nodes.get(index)
        if record is None:
            record = self._nodes[index] = _Record()
        return record

    def answered(self, index: int, seconds: float) -> None:
        record = self._record(index)
        old = record.latency
        record.latency = seconds if old is None else old + ALPHA * (seconds - old)

    def failed(self, index: int) -> None:
        """A failure (timeout, refusal, bad answer), or a client that caught it lying."""
        self._record(index).penalized_until = self._clock() + COOLDOWN

    def order(self, indexes: Iterable[int]) -> list[int]:
        """``indexes`` best first: not penalized, then fastest; unmeasured nodes count as
        fast, so that each is tried; ties by index, so that the choice is stable."""
        now = self._clock()

        def key(index: int) -> tuple[bool, float, int]:
            record = self._nodes.get(index) or _Record()
            return (record.penalized_until > now, record.latency or 0.0, index)

        return sorted(indexes, key=key)

    def hedge_after(self, chosen: Iterable[int], deadline: float) -> float:
        """Seconds after which the reserve is asked even though no chosen node failed."""
        latencies = [self._nodes[i].latency for i in chosen if i in self._nodes]
        usual = max((x for x in latencies if x is not None), default=0.0)
        return min(deadline / 2, max(HEDGE_FLOOR, HEDGE_FACTOR * usual))
