"""Resharing the same Y to a new committee, in memory: joins, leaves, refresh, import, faults."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reshare_faults import bad_subshare_dealer, with_faults, withhold_deal
from tkms.client.errors import NotEnoughPartials
from tkms.client.recombine import decrypt_record
from tkms.crypto import curve, dleq, ecies, rsa
from tkms.crypto.shamir import combine_points
from tkms.dkg import (
    Deal,
    DkgAbort,
    DkgEquivocationError,
    DkgMessage,
    DkgProtocolError,
    KeysetResult,
    NodeIdentity,
    Phase,
    ReshareParticipant,
    check_keyset_signatures,
    run_in_process,
)
from tkms.dkg.messages import Complaint, sign
from tkms.dkg.reshare_config import single_keyset
from tkms.dkg.reshare_simulation import (
    ParticipantFactory,
    ReshareSimulation,
    reshare_config,
    simulate_reshare,
)
from tkms.protocol.delegation import SealedPartial
from tkms.protocol.keyset import verify_keyset

CHAIN_ID = 421614


class OldCommittee:
    """A DKG's outcome at epoch 1: keyset, shares and identities by old index."""

    def __init__(self, n: int, t: int) -> None:
        sim = run_in_process(n, t, chain_id=CHAIN_ID)
        assert sim.succeeded, sim.failures
        keyset = sim.participants[1].keyset
        assert keyset is not None
        self.keyset: KeysetResult = keyset
        self.identities = sim.identities
        self.shares = {i: p.key_share.value for i, p in sim.participants.items() if p.key_share}


def new_committee(old: OldCommittee, keep: list[int], joiners: int) -> dict[int, NodeIdentity]:
    """The kept old nodes (renumbered 1..) then ``joiners`` fresh identities."""
    members = [old.identities[j] for j in keep] + [NodeIdentity.generate() for _ in range(joiners)]
    return {i: ident for i, ident in enumerate(members, start=1)}


def partials(shares: dict[int, int], point: curve.Point) -> dict[int, curve.Point]:
    return {i: curve.parse_point(curve.mul_secret_encoded(point, x)) for i, x in shares.items()}


def open_record(record: ecies.EciesRecord, shares: dict[int, int]) -> bytes:
    """The SDK's recombination: x(Σ λ_i·x_i·K) from these partials, then HKDF + AES-GCM."""
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    shared_x = curve.point_x(combine_points(partials(shares, ephemeral)))
    return ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)


def assert_reshared(
    sim: ReshareSimulation, old_keyset: KeysetResult, old_shares: dict[int, int]
) -> KeysetResult:
    """Same Y, epoch + 1, one consistent signed keyset; old records open, epochs do not mix."""
    assert sim.succeeded, sim.failures
    receivers = sim.receivers()
    keyset = receivers[min(receivers)].keyset
    assert keyset is not None
    assert keyset.public_key_bytes == old_keyset.public_key_bytes
    assert keyset.epoch == old_keyset.epoch + 1
    assert keyset.threshold == sim.config.new_threshold
    assert keyset.is_consistent()
    digests = {p.keyset.digest(CHAIN_ID) for p in sim.participants.values() if p.keyset}
    assert len(digests) == 1
    new_shares: dict[int, int] = {}
    for i, p in receivers.items():
        share = p.key_share
        assert share is not None and share.index == i
        assert curve.points_equal(curve.base_mul(share.value), keyset.verification_keys()[i])
        assert not check_keyset_signatures(
            keyset, chain_id=CHAIN_ID, signatures=p.keyset_signatures, required=receivers
        )
        new_shares[i] = share.value
    for p in sim.participants.values():
        if p.new_index is None:
            assert p.phase is Phase.DONE and p.key_share is None and p.keyset == keyset
    record = ecies.encrypt(old_keyset.public_key, b"sealed at the old epoch")
    t_new = keyset.threshold
    for chosen in itertools.islice(itertools.combinations(sorted(new_shares), t_new), 4):
        assert open_record(record, {i: new_shares[i] for i in chosen}) == b"sealed at the old epoch"
    if old_keyset.threshold > 1 and t_new > 1:
        # One stale share of epoch e among epoch e+1's: the wrong point, no plaintext.
        mixed = dict(sorted(new_shares.items())[:t_new])
        k = min(mixed)
        mixed[k] = old_shares[k]
        with pytest.raises(ecies.EciesError):
            open_record(record, mixed)
    return keyset


@pytest.mark.parametrize(
    ("keep", "joiners", "t_new"),
    [
        pytest.param([1, 2, 3, 4, 5], 2, 4, id="5/3->7/4 two joined"),
        pytest.param([1, 2, 3, 5], 0, 3, id="5/3->4/3 one left"),
        pytest.param([1, 2, 3, 4, 5], 0, 3, id="5/3->5/3 refresh"),
        pytest.param([1, 2, 3, 4, 5], 4, 5, id="5/3->9/5"),
    ],
)
def test_reshare_keeps_y_and_moves_to_the_next_epoch(
    keep: list[int], joiners: int, t_new: int
) -> None:
    old = OldCommittee(5, 3)
    members = new_committee(old, keep, joiners)
    sim = simulate_reshare(
        old.keyset, old.shares, old.identities, members, t_new, chain_id=CHAIN_ID
    )
    keyset = assert_reshared(sim, old.keyset, old.shares)
    assert len(keyset.nodes) == len(keep) + joiners
    assert sim.by_new(1).subset == (1, 2, 3)
    leavers = set(range(1, 6)) - set(keep)
    for j in leavers:
        assert sim.by_old(j).new_index is None


def test_refresh_changes_every_share() -> None:
    old = OldCommittee(5, 3)
    sim = simulate_reshare(
        old.keyset, old.shares, old.identities, dict(old.identities), 3, chain_id=CHAIN_ID
    )
    assert_reshared(sim, old.keyset, old.shares)
    for i, p in sim.receivers().items():
        assert p.key_share is not None and p.key_share.value != old.shares[i]


def test_import_path_one_of_one_to_five_of_three() -> None:
    whole = curve.random_scalar()
    holder = NodeIdentity.generate()
    keyset = single_keyset(curve.base_mul(whole), holder.address)
    assert keyset.epoch == 0 and keyset.is_consistent()
    members = {i: NodeIdentity.generate() for i in range(1, 6)}
    sim = simulate_reshare(keyset, {1: whole}, {1: holder}, members, 3, chain_id=CHAIN_ID)
    new = assert_reshared(sim, keyset, {1: whole})
    assert new.epoch == 1
    assert sim.by_old(1).key_share is None


# --- faulty dealers --------------------------------------------------------------


def run_with(
    old: OldCommittee, factory: ParticipantFactory, *, dealers: list[int] | None = None
) -> ReshareSimulation:
    members = new_committee(old, [1, 2, 3, 4, 5], 2)
    return simulate_reshare(
        old.keyset,
        old.shares,
        old.identities,
        members,
        4,
        dealers=dealers,
        chain_id=CHAIN_ID,
        participant_factory=factory,
    )


@pytest.mark.parametrize("answer", ["bad", "silent"])
def test_a_dealer_with_a_bad_subshare_is_disqualified_and_the_reshare_completes(
    answer: Literal["bad", "silent"],
) -> None:
    old = OldCommittee(5, 3)
    sim = run_with(old, with_faults({1: bad_subshare_dealer(6, justification=answer)}))
    assert sim.by_new(6).complained_about == (1,)
    assert_reshared(sim, old.keyset, old.shares)
    for p in sim.participants.values():
        assert p.qualified == frozenset({2, 3, 4, 5})
        assert p.disqualified == (1,)
        assert p.subset == (2, 3, 4)


def test_a_justified_complaint_keeps_the_dealer() -> None:
    old = OldCommittee(5, 3)
    sim = run_with(old, with_faults({2: bad_subshare_dealer(7, justification="honest")}))
    assert sim.by_new(7).complained_about == (2,)
    assert_reshared(sim, old.keyset, old.shares)
    assert sim.by_new(1).subset == (1, 2, 3)


def test_a_dealer_whose_constant_is_not_its_old_share_is_disqualified() -> None:
    old = OldCommittee(5, 3)
    sim = run_with(old, with_faults({}, wrong_constant=frozenset({2})))
    assert_reshared(sim, old.keyset, old.shares)
    for p in sim.receivers().values():
        assert 2 in p.complained_about
    for p in sim.participants.values():
        assert p.qualified == frozenset({1, 3, 4, 5}) and p.subset == (1, 3, 4)


def test_a_silent_dealer_is_left_out() -> None:
    old = OldCommittee(5, 3)
    sim = run_with(old, with_faults({4: withhold_deal}))
    assert_reshared(sim, old.keyset, old.shares)
    assert sim.by_new(1).qualified == frozenset({1, 2, 3, 5})


@pytest.mark.parametrize(
    "factory",
    [
        pytest.param(with_faults({2: bad_subshare_dealer(6, justification="silent")}), id="bad"),
        pytest.param(with_faults({}, wrong_constant=frozenset({3})), id="constant"),
        pytest.param(with_faults({1: withhold_deal}), id="silent"),
    ],
)
def test_too_few_honest_dealers_abort(factory: ParticipantFactory) -> None:
    old = OldCommittee(5, 3)
    sim = run_with(old, factory, dealers=[1, 2, 3])
    assert not sim.succeeded
    assert set(sim.failures) == set(sim.participants)
    assert all(isinstance(e, DkgAbort) for e in sim.failures.values())
    for p in sim.participants.values():
        assert p.phase is Phase.FAILED and p.key_share is None and p.keyset is None


def test_a_relay_hiding_a_deal_from_one_node_fails_the_reshare() -> None:
    """The nodes' deal digests differ: caught before any keyset is signed."""
    old = OldCommittee(4, 2)
    members = new_committee(old, [1, 2, 3, 4], 0)
    victim = members[4].address

    def relay(message: DkgMessage, to: bytes, sim: ReshareSimulation) -> DkgMessage | None:
        hidden = isinstance(message, Deal) and message.sender == 1 and to == victim
        return None if hidden else message

    sim = simulate_reshare(
        old.keyset, old.shares, old.identities, members, 2, chain_id=CHAIN_ID, interceptor=relay
    )
    assert not sim.succeeded
    assert sim.failures and all(isinstance(e, DkgEquivocationError) for e in sim.failures.values())
    assert all(p.key_share is None for p in sim.participants.values())


# --- any shape of committee ----------------------------------------------------------


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_small_reshare_keeps_y(data: st.DataObject) -> None:
    n_old = data.draw(st.integers(1, 4), label="n_old")
    t_old = data.draw(st.integers(1, n_old), label="t_old")
    keep = data.draw(st.lists(st.sampled_from(range(1, n_old + 1)), unique=True), label="keep")
    joiners = data.draw(st.integers(0 if keep else 1, 4), label="joiners")
    n_new = len(keep) + joiners
    t_new = data.draw(st.integers(1, n_new), label="t_new")
    extra = data.draw(st.integers(0, n_old - t_old), label="extra dealers")
    old = OldCommittee(n_old, t_old)
    dealers = sorted(data.draw(st.permutations(range(1, n_old + 1)))[: t_old + extra])
    members = new_committee(old, sorted(keep), joiners)
    sim = simulate_reshare(
        old.keyset, old.shares, old.identities, members, t_new, dealers=dealers, chain_id=CHAIN_ID
    )
    assert_reshared(sim, old.keyset, old.shares)
    assert sim.by_new(1).subset == tuple(dealers[:t_old])


# --- through the SDK's own checks ------------------------------------------------------


def sealed_partials(
    shares: dict[int, int], epoch: int, ephemeral: curve.Point, client: rsa.RSAPrivateKey
) -> list[SealedPartial]:
    """What each node answers: RSA-OAEP(enc(x_i·K) ‖ DLEQ proof), for its epoch."""
    out = []
    for i, x in sorted(shares.items()):
        s_enc, proof = dleq.Prover(x).partial(ephemeral)
        out.append(SealedPartial(i, epoch, rsa.encrypt(client.public_key(), s_enc + proof)))
    return out


def test_the_sdk_trusts_the_new_keyset_and_refuses_mixed_epochs() -> None:
    old = OldCommittee(5, 3)
    members = new_committee(old, [1, 2, 3, 4, 5], 2)
    sim = simulate_reshare(old.keyset, old.shares, old.identities, members, 4, chain_id=CHAIN_ID)
    assert sim.succeeded, sim.failures
    new = sim.by_new(1)
    assert new.keyset is not None
    body = new.keyset.to_json(chain_id=CHAIN_ID, signatures=new.keyset_signatures)
    trusted = old.keyset.public_key_bytes
    verified = verify_keyset(json.loads(json.dumps(body)), CHAIN_ID, trusted)
    assert verified.epoch == 2 and verified.public_key_bytes == trusted
    client = rsa.generate_private_key()
    record = ecies.encrypt(old.keyset.public_key, b"written at epoch 1")
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    new_shares = {i: p.key_share.value for i, p in sim.receivers().items() if p.key_share}
    answers = sealed_partials(dict(sorted(new_shares.items())[3:]), 2, ephemeral, client)
    assert decrypt_record(verified, client, record, answers) == b"written at epoch 1"
    # An old node's epoch-1 partial is refused by the epoch-2 keyset, whatever it claims.
    stale = sealed_partials({1: old.shares[1]}, 1, ephemeral, client)
    relabelled = sealed_partials({1: old.shares[1]}, 2, ephemeral, client)
    rest = sealed_partials({i: new_shares[i] for i in (2, 3, 4)}, 2, ephemeral, client)
    with pytest.raises(NotEnoughPartials):
        decrypt_record(verified, client, record, stale + rest)
    with pytest.raises(NotEnoughPartials):
        decrypt_record(verified, client, record, relabelled + rest)


def test_senders_are_checked_against_the_committee_their_kind_names() -> None:
    old = OldCommittee(3, 2)
    members = new_committee(old, [2, 3], 1)  # old 1 leaves, old 2, 3 stay as new 1, 2
    config = reshare_config(old.keyset, [1, 2, 3], members, 2, chain_id=CHAIN_ID)
    joiner = ReshareParticipant(config, members[3], old_index=None, old_share=None, new_index=3)
    leaver = ReshareParticipant(
        config, old.identities[1], old_index=1, old_share=old.shares[1], new_index=None
    )
    stayer = ReshareParticipant(
        config, old.identities[2], old_index=2, old_share=old.shares[2], new_index=1
    )
    assert joiner.start() == []
    (deal,) = leaver.start()
    (own,) = stayer.start()
    joiner.receive(deal)
    stayer.receive(own)  # its own deal echoed back: ignored
    with pytest.raises(DkgProtocolError, match="claims to come from this node"):
        stayer.receive(sign(replace(own, shares=own.shares[:1]), old.identities[2].wallet))
    # Old node 1's deal re-signed by the joiner's wallet: not dealer 1's signer.
    with pytest.raises(DkgProtocolError, match="bad signature"):
        stayer.receive(sign(deal, members[3].wallet))
    # A complaint "from new member 1" signed by old node 1 (who is not new member 1).
    fake = sign(Complaint(config.session_id, 1, bytes(32), ()), old.identities[1].wallet)
    with pytest.raises(DkgProtocolError, match="bad signature"):
        joiner.receive(fake)
    with pytest.raises(DkgProtocolError, match="not in the new committee"):
        joiner.receive(replace(fake, sender=9))
    with pytest.raises(DkgProtocolError, match="not a dealer"):
        joiner.receive(replace(deal, sender=9))
    with pytest.raises(DkgProtocolError, match="another session"):
        joiner.receive(replace(deal, session_id=bytes(32)))
    joiner.advance()  # dealing closes: a deal now is late
    with pytest.raises(DkgProtocolError, match="late"):
        joiner.receive(own)
    assert joiner.is_own(Complaint(config.session_id, 3, bytes(32), ()))
    assert not joiner.is_own(replace(deal, sender=3))
