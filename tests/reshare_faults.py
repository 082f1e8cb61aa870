"""Misbehaving reshare nodes for the in-process simulation (test code, never shipped).

As :mod:`tests.dkg_faults` for the DKG: a fault rewrites (or, returning None,
withholds) a node's own messages before it records and sends them; it plugs
into :func:`tkms.dkg.reshare_simulation.simulate_reshare` through
``participant_factory`` (see :func:`with_faults`), keyed by old index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Literal

from tkms.crypto import curve, ecies
from tkms.dkg.messages import Deal, DkgMessage, EncryptedShare, Justification
from tkms.dkg.reshare import ReshareParticipant
from tkms.dkg.reshare_config import ReshareConfig
from tkms.dkg.reshare_simulation import NodeRole, ParticipantFactory, ReshareSimulation
from tkms.dkg.secrets import ReshareSecrets

Fault = Callable[[DkgMessage, ReshareSimulation], DkgMessage | None]


class FaultyParticipant(ReshareParticipant):
    def __init__(
        self,
        role: NodeRole,
        config: ReshareConfig,
        fault: Fault,
        sim: ReshareSimulation,
        *,
        wrong_constant: bool = False,
    ) -> None:
        super().__init__(
            config,
            role.identity,
            old_index=role.old_index,
            old_share=role.old_share,
            new_index=role.new_index,
        )
        if wrong_constant:
            # Deals a share of some other secret: consistent, but C_j0 ≠ Y_j.
            self._secret = ReshareSecrets(curve.random_scalar())
        self._fault = fault
        self._sim = sim

    def _emit(self, message: DkgMessage) -> list[DkgMessage]:
        changed = self._fault(message, self._sim)
        return [] if changed is None else super()._emit(changed)


def honest(message: DkgMessage, sim: ReshareSimulation) -> DkgMessage | None:
    return message


def with_faults(
    faults: Mapping[int, Fault], *, wrong_constant: frozenset[int] = frozenset()
) -> ParticipantFactory:
    """The dealers (old indexes) named misbehave; every other node runs the real machine."""

    def factory(
        role: NodeRole, config: ReshareConfig, sim: ReshareSimulation
    ) -> ReshareParticipant:
        j = role.old_index
        if j is None or (j not in faults and j not in wrong_constant):
            return ReshareParticipant(
                config,
                role.identity,
                old_index=role.old_index,
                old_share=role.old_share,
                new_index=role.new_index,
            )
        return FaultyParticipant(
            role, config, faults.get(j, honest), sim, wrong_constant=j in wrong_constant
        )

    return factory


def withhold_deal(message: DkgMessage, sim: ReshareSimulation) -> DkgMessage | None:
    return None if isinstance(message, Deal) else message


def bad_subshare_dealer(
    victim: int, *, justification: Literal["honest", "bad", "silent"] = "honest"
) -> Fault:
    """A dealer that seals a wrong sub-share for new member ``victim``, then answers as told."""

    def fault(message: DkgMessage, sim: ReshareSimulation) -> DkgMessage | None:
        if isinstance(message, Deal):
            return sim.resign(_with_wrong_share(message, victim, sim.config))
        if isinstance(message, Justification) and justification != "honest":
            if justification == "silent":
                return None
            wrong = tuple(replace(r, value=(r.value + 1) % curve.ORDER) for r in message.revealed)
            return sim.resign(replace(message, revealed=wrong))
        return message

    return fault


def _with_wrong_share(deal: Deal, victim: int, config: ReshareConfig) -> Deal:
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
