"""Drive every node of a reshare through it in one process (tests, benchmark).

As :mod:`tkms.dkg.simulation` for the DKG: every message goes through its
JSON form and back for each recipient, an ``interceptor`` plays the relay and
``participant_factory`` is the one hook for a misbehaving node. Nodes are keyed
by their signer address, since a node that stays has two indexes.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tkms.dkg.ceremony import Phase
from tkms.dkg.errors import DkgError
from tkms.dkg.keyset import KeysetResult
from tkms.dkg.messages import DkgMessage, M, parse_message, sign
from tkms.dkg.reshare import ReshareParticipant
from tkms.dkg.reshare_config import ReshareConfig
from tkms.dkg.secrets import NodeIdentity
from tkms.dkg.simulation import ROUNDS, Traffic


@dataclass(frozen=True)
class NodeRole:
    """Who a node is in a reshare: its identity, old index and share (if it deals), new index."""

    identity: NodeIdentity
    old_index: int | None
    old_share: int | None
    new_index: int | None


@dataclass
class ReshareSimulation:
    config: ReshareConfig
    roles: dict[bytes, NodeRole]
    participants: dict[bytes, ReshareParticipant]
    traffic: Traffic = field(default_factory=Traffic)
    failures: dict[bytes, DkgError] = field(default_factory=dict)
    rejected: list[tuple[bytes, int, DkgError]] = field(default_factory=list)
    """(recipient address, claimed sender index, error) for every refused delivery."""

    @property
    def succeeded(self) -> bool:
        return not self.failures and all(p.phase is Phase.DONE for p in self.participants.values())

    def by_new(self, index: int) -> ReshareParticipant:
        return next(p for p in self.participants.values() if p.new_index == index)

    def by_old(self, index: int) -> ReshareParticipant:
        return next(p for p in self.participants.values() if p.old_index == index)

    def receivers(self) -> dict[int, ReshareParticipant]:
        """New index → participant, ascending."""
        found = {p.new_index: p for p in self.participants.values() if p.new_index is not None}
        return dict(sorted(found.items()))

    def resign(self, message: M) -> M:
        """Re-sign a tampered message with the wallet of its claimed sender."""
        if message.KIND in ("deal", "justification"):
            signer = self.config.old_node(message.sender).signer
        else:
            signer = self.config.member(message.sender).signer
        return sign(message, self.roles[signer].identity.wallet)


Interceptor = Callable[[DkgMessage, bytes, ReshareSimulation], DkgMessage | None]
"""The relay: sees each (message, recipient address) delivery; may pass, replace or drop it."""

ParticipantFactory = Callable[[NodeRole, ReshareConfig, ReshareSimulation], ReshareParticipant]


def reshare_config(
    old_keyset: KeysetResult,
    dealers: Sequence[int],
    new_members: Mapping[int, NodeIdentity],
    new_threshold: int,
    *,
    chain_id: int = 1,
) -> ReshareConfig:
    members = tuple(new_members[i].member(i) for i in sorted(new_members))
    return ReshareConfig(
        chain_id=chain_id,
        old_keyset=old_keyset,
        old_epoch=old_keyset.epoch,
        new_epoch=old_keyset.epoch + 1,
        dealers=tuple(sorted(dealers)),
        new_threshold=new_threshold,
        new_members=members,
        nonce=secrets.token_bytes(32),
        expires_at=int(time.time()) + 3600,
    )


def simulate_reshare(
    old_keyset: KeysetResult,
    old_shares: Mapping[int, int],
    old_identities: Mapping[int, NodeIdentity],
    new_members: Mapping[int, NodeIdentity],
    new_threshold: int,
    *,
    dealers: Sequence[int] | None = None,
    chain_id: int = 1,
    participant_factory: ParticipantFactory | None = None,
    interceptor: Interceptor | None = None,
    wire: bool = True,
) -> ReshareSimulation:
    """A whole reshare; failures are collected on the result, never raised.

    ``old_shares`` / ``old_identities`` are by old index, ``new_members`` by
    new index; a node that stays appears in both with the same identity.
    ``dealers`` defaults to every old index with a share.
    """
    chosen = sorted(old_shares) if dealers is None else sorted(dealers)
    config = reshare_config(old_keyset, chosen, new_members, new_threshold, chain_id=chain_id)
    roles: dict[bytes, NodeRole] = {}
    for j in chosen:
        ident = old_identities[j]
        roles[ident.address] = NodeRole(ident, j, old_shares[j], None)
    for i, ident in new_members.items():
        old = roles.get(ident.address)
        roles[ident.address] = NodeRole(
            ident, old.old_index if old else None, old.old_share if old else None, i
        )
    sim = ReshareSimulation(config, roles, {})
    for address, role in roles.items():
        sim.participants[address] = (
            ReshareParticipant(
                config,
                role.identity,
                old_index=role.old_index,
                old_share=role.old_share,
                new_index=role.new_index,
            )
            if participant_factory is None
            else participant_factory(role, config, sim)
        )
    outgoing = {a: p.start() for a, p in sim.participants.items()}
    _deliver(sim, outgoing, interceptor, wire)
    for _ in range(ROUNDS):
        outgoing = {}
        for a, p in sim.participants.items():
            if a in sim.failures:
                continue
            try:
                outgoing[a] = p.advance()
            except DkgError as exc:
                sim.failures[a] = exc
        _deliver(sim, outgoing, interceptor, wire)
    return sim


def _encode(message: DkgMessage) -> str:
    return json.dumps(message.to_json(), separators=(",", ":"))


def _deliver(
    sim: ReshareSimulation,
    outgoing: dict[bytes, list[DkgMessage]],
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
