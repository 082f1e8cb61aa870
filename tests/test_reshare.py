"""Resharing the same Y to a new committee, in memory: joins, leaves, refresh, import, faults."""

from __future__ import annotations

import itertools

import pytest

from tkms.crypto import curve, ecies
from tkms.crypto.shamir import combine_points
from tkms.dkg import KeysetResult, NodeIdentity, Phase, check_keyset_signatures, run_in_process
from tkms.dkg.reshare_config import single_keyset
from tkms.dkg.reshare_simulation import ReshareSimulation, simulate_reshare

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
