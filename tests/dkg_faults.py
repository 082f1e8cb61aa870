"""Misbehaving DKG nodes for the in-process simulation (test code, never shipped).

A :data:`Fault` rewrites (or, returning None, withholds) a node's own messages
before it records and sends them, as modified node software would; it plugs
into :func:`tkms.dkg.simulation.run_in_process` through its one hook,
``participant_factory`` (see :func:`with_faults`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Literal

from tkms.crypto import curve, ecies
from tkms.crypto.shamir import combine_scalars
from tkms.dkg.ceremony import DkgParticipant
from tkms.dkg.committee import CeremonyConfig
from tkms.dkg.messages import Deal, DkgMessage, EncryptedShare, Justification
from tkms.dkg.secrets import NodeIdentity
from tkms.dkg.simulation import ParticipantFactory, Simulation

Fault = Callable[[DkgMessage, Simulation], DkgMessage | None]


class FaultyParticipant(DkgParticipant):
    def __init__(
        self, config: CeremonyConfig, identity: NodeIdentity, fault: Fault, sim: Simulation
    ) -> None:
        super().__init__(config, identity)
        self._fault = fault
        self._sim = sim

    def _emit(self, message: DkgMessage) -> list[DkgMessage]:
        changed = self._fault(message, self._sim)
        return [] if changed is None else super()._emit(changed)


def with_faults(faults: Mapping[int, Fault]) -> ParticipantFactory:
    """The nodes named in ``faults`` misbehave; the others run the real state machine."""

    def factory(
        index: int, config: CeremonyConfig, identity: NodeIdentity, sim: Simulation
    ) -> DkgParticipant:
        fault = faults.get(index)
        if fault is None:
            return DkgParticipant(config, identity)
        return FaultyParticipant(config, identity, fault, sim)

    return factory


def group_secret(sim: Simulation) -> int:
    """Σ λ_i·x_i over the first t finished nodes (a real KMS never does this)."""
    shares = {}
    for i, p in sim.participants.items():
        if p.key_share is not None:
            shares[i] = p.key_share.value
    chosen = dict(sorted(shares.items())[: sim.config.threshold])
    return combine_scalars(chosen)


def bad_share_dealer(
    victim: int, *, justification: Literal["honest", "bad", "silent"] = "honest"
) -> Fault:
    """A dealer that seals a wrong share for ``victim``.

    When accused it answers with its true share (``honest``), a wrong one
    (``bad``) or not at all (``silent``).
    """

    def fault(message: DkgMessage, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, Deal):
            return sim.resign(_with_wrong_share(message, victim, sim.config))
        if isinstance(message, Justification) and justification != "honest":
            if justification == "silent":
                return None
            wrong = tuple(replace(r, value=(r.value + 1) % curve.ORDER) for r in message.revealed)
            return sim.resign(replace(message, revealed=wrong))
        return message

    return fault


def _with_wrong_share(deal: Deal, victim: int, config: CeremonyConfig) -> Deal:
    key = config.member(victim).encryption_key
    info = config.share_info(deal.sender, victim)
    wrong = curve.scalar_to_bytes(curve.random_scalar())
    shares = tuple(
        EncryptedShare.from_record(victim, ecies.encrypt(key, wrong, info=info))
        if s.recipient == victim
        else s
        for s in deal.shares
    )
    return replace(deal, shares=shares, signature=b"")
