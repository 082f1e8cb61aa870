"""Why one node gave the gateway no usable answer: a kind and a detail, never parsed text.

The kind is the outcome label of the ``tkms_gateway_node_requests_total``
metric; ``str()`` is what a 503 ``not_enough_partials`` names per node
(``"timeout: no answer in time"``). A node that answered well but for another
keyset epoch carries that epoch: it tells the gateway that the committee
reshared and its keyset is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    UNREACHABLE = "unreachable"  # no connection, or it broke before a whole answer
    TIMEOUT = "timeout"  # no answer in time
    REFUSED = "refused"  # a documented error answer (non-200)
    INVALID = "invalid"  # an answer that is not the protocol's, or not signed by the node


@dataclass(frozen=True, slots=True)
class NodeFailure:
    kind: FailureKind
    detail: str
    other_epoch: int | None = None  # the node's epoch, when it is not the keyset's

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"

    @classmethod
    def stale_epoch(cls, node_epoch: int, keyset_epoch: int) -> NodeFailure:
        return cls(
            FailureKind.INVALID, f"epoch {node_epoch}, keyset epoch {keyset_epoch}", node_epoch
        )
