"""Drive n participants through a whole ceremony in one process (tests, benchmark).

Every message goes through its JSON form and back for each recipient, as it
would through the HTTP relay, so sizes and parsing costs are real. An
``interceptor`` plays the untrusted relay: it sees each (message, recipient)
delivery and may pass, replace or drop it; it can re-sign with any node's
identity through the :class:`Simulation` it is handed. ``participant_factory``
is the one hook for a misbehaving node: the faults themselves live with the
tests (``tests/dkg_faults.py``), not in the shipped package.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tkms.dkg.ceremony import DkgParticipant, Phase
from tkms.dkg.committee import CeremonyConfig
from tkms.dkg.errors import DkgError
from tkms.dkg.messages import DkgMessage, M, parse_message, sign
from tkms.dkg.secrets import NodeIdentity

ROUNDS = 4  # deal → complain → justify → sign → done


@dataclass
class Traffic:
    """What crossed the relay: broadcasts, per-recipient deliveries, JSON bytes."""

    messages: int = 0
    bytes_sent: int = 0
    deliveries: int = 0
    bytes_delivered: int = 0
    by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)

    def count(self, kind: str, size: int) -> None:
        self.messages += 1
        self.bytes_sent += size
        n, b = self.by_kind.get(kind, (0, 0))
        self.by_kind[kind] = (n + 1, b + size)


@dataclass
class Simulation:
    config: CeremonyConfig
    identities: dict[int, NodeIdentity]
    participants: dict[int, DkgParticipant]
    traffic: Traffic = field(default_factory=Traffic)
    failures: dict[int, DkgError] = field(default_factory=dict)
    rejected: list[tuple[int, int, DkgError]] = field(default_factory=list)
    """(recipient, claimed sender, error) for every delivery a participant refused."""

    @property
    def succeeded(self) -> bool:
        return not self.failures and all(p.phase is Phase.DONE for p in self.participants.values())

    def resign(self, message: M) -> M:
        """Re-sign a tampered message with its claimed sender's wallet."""
        return sign(message, self.identities[message.sender].wallet)


Interceptor = Callable[[DkgMessage, int, Simulation], DkgMessage | None]
"""The relay: sees each (message, recipient) delivery; may pass, replace or drop it."""

ParticipantFactory = Callable[[int, CeremonyConfig, NodeIdentity, "Simulation"], DkgParticipant]
"""(index, config, identity, simulation) → the state machine that node runs."""


def make_committee(
    n: int, t: int, *, chain_id: int = 1, epoch: int = 1
) -> tuple[CeremonyConfig, dict[int, NodeIdentity]]:
    identities = {i: NodeIdentity.generate() for i in range(1, n + 1)}
    members = tuple(identities[i].member(i) for i in range(1, n + 1))
    expires_at = int(time.time()) + 3600
    config = CeremonyConfig(chain_id, epoch, t, members, secrets.token_bytes(32), expires_at)
    return config, identities


def run_in_process(
    n: int,
    t: int,
    *,
    chain_id: int = 1,
    epoch: int = 1,
    participant_factory: ParticipantFactory | None = None,
    interceptor: Interceptor | None = None,
    wire: bool = True,
) -> Simulation:
    """A full ceremony; failures are collected on the result, never raised.

    ``participant_factory`` may give some nodes another state machine (a test's
    faulty dealer); ``interceptor`` plays a lying relay; ``wire`` sends every
    delivery through JSON.
    """
    config, identities = make_committee(n, t, chain_id=chain_id, epoch=epoch)
    sim = Simulation(config, identities, {})
    for i, ident in identities.items():
        sim.participants[i] = (
            DkgParticipant(config, ident)
            if participant_factory is None
            else participant_factory(i, config, ident, sim)
        )
    outgoing = {i: p.start() for i, p in sim.participants.items()}
    _deliver(sim, outgoing, interceptor, wire)
    for _ in range(ROUNDS):
        outgoing = {}
        for i, p in sim.participants.items():
            if i in sim.failures:
                continue
            try:
                outgoing[i] = p.advance()
            except DkgError as exc:
                sim.failures[i] = exc
        _deliver(sim, outgoing, interceptor, wire)
    return sim


def _encode(message: DkgMessage) -> str:
    return json.dumps(message.to_json(), separators=(",", ":"))


def _deliver(
    sim: Simulation,
    outgoing: dict[int, list[DkgMessage]],
    interceptor: Interceptor | None,
    wire: bool,
) -> None:
    for sender, messages in outgoing.items():
        for message in messages:
            text = _encode(message)
            sim.traffic.count(message.KIND, len(text))
            for r, participant in sim.participants.items():
                if r == sender or r in sim.failures:
                    continue
                delivered = message if interceptor is None else interceptor(message, r, sim)
                if delivered is None:
                    continue
                body = text if delivered is message else _encode(delivered)
                sim.traffic.deliveries += 1
                sim.traffic.bytes_delivered += len(body)
                try:
                    participant.receive(parse_message(json.loads(body)) if wire else delivered)
                except DkgError as exc:
                    sim.rejected.append((r, delivered.sender, exc))
