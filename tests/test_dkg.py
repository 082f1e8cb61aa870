"""The DKG state machine end to end, in memory, with faulty dealers and a lying relay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.dkg_faults import Fault, bad_share_dealer, group_secret, with_faults
from tkms.crypto import curve, ecies, shamir
from tkms.crypto.wallet import Wallet
from tkms.dkg import (
    CeremonyConfig,
    Complaint,
    Deal,
    DkgAbort,
    DkgEquivocationError,
    DkgMessage,
    DkgParticipant,
    DkgProtocolError,
    Justification,
    KeysetResult,
    KeysetSignature,
    Phase,
    Simulation,
    check_keyset_signatures,
    make_committee,
    run_in_process,
)
from tkms.dkg.messages import EncryptedShare, sign

CHAIN_ID = 421614


def _assert_agreement(sim: Simulation) -> KeysetResult:
    """Every node finished with the same keyset, signed by all, matching its share."""
    assert sim.succeeded, sim.failures
    keysets = [p.keyset for p in sim.participants.values()]
    first = keysets[0]
    assert first is not None
    digests = {k.digest(sim.config.chain_id) for k in keysets if k is not None}
    assert len(digests) == 1
    assert first.is_consistent()
    for i, p in sim.participants.items():
        share = p.key_share
        assert share is not None and share.index == i
        node = first.node(i)
        assert node is not None and node.signer == sim.identities[i].address
        assert curve.points_equal(curve.base_mul(share.value), node.verification_key)
        sigs = p.keyset_signatures
        assert set(sigs) == set(sim.participants)
        assert not check_keyset_signatures(
            first, chain_id=sim.config.chain_id, signatures=sigs, required=sim.participants
        )
    # Σ λ_i·x_i·G == Y over the first t nodes (a test may assemble the key; a node never does).
    assert curve.points_equal(curve.base_mul(group_secret(sim)), first.public_key)
    return first


@pytest.mark.parametrize(("n", "t"), [(5, 3), (1, 1), (3, 2), (4, 4), (7, 4)])
def test_honest_ceremony(n: int, t: int) -> None:
    sim = run_in_process(n, t, chain_id=CHAIN_ID, epoch=3)
    keyset = _assert_agreement(sim)
    assert keyset.threshold == t and keyset.epoch == 3
    assert [node.index for node in keyset.nodes] == list(range(1, n + 1))
    assert not sim.rejected
    for p in sim.participants.values():
        assert p.qualified == frozenset(range(1, n + 1))
        assert p.complained_about == ()
    # Y is the sum of the dealers' constant commitments.
    deals = [sim.participants[1].deal_of(j) for j in range(1, n + 1)]
    assert curve.points_equal(curve.add(d.commitments[0] for d in deals if d), keyset.public_key)
    assert sim.traffic.by_kind.keys() == {"deal", "complaint", "keysetSignature"}
    assert sim.traffic.messages == 3 * n


def test_bad_share_then_honest_justification_keeps_the_dealer() -> None:
    sim = run_in_process(5, 3, participant_factory=with_faults({2: bad_share_dealer(4)}))
    keyset = _assert_agreement(sim)
    assert sim.participants[4].complained_about == (2,)
    assert all(p.complained_about == () for i, p in sim.participants.items() if i != 4)
    assert sim.traffic.by_kind["justification"] == (1, sim.traffic.by_kind["justification"][1])
    for p in sim.participants.values():
        assert p.qualified == frozenset({1, 2, 3, 4, 5})
    assert keyset.is_consistent()


@pytest.mark.parametrize("answer", ["bad", "silent"])
def test_bad_share_and_bad_or_no_justification_disqualifies(answer: Any) -> None:
    sim = run_in_process(
        5, 3, participant_factory=with_faults({2: bad_share_dealer(4, justification=answer)})
    )
    keyset = _assert_agreement(sim)
    for p in sim.participants.values():
        assert p.qualified == frozenset({1, 3, 4, 5})
    # The disqualified dealer's polynomial is not part of the key.
    dealer_of = sim.participants[1].deal_of
    qual_sum = curve.add(d.commitments[0] for j in (1, 3, 4, 5) if (d := dealer_of(j)))
    assert curve.points_equal(qual_sum, keyset.public_key)
    # ...but node 2 still holds a valid share of the new key.
    assert keyset.node(2) is not None


def test_too_few_qualified_dealers_abort() -> None:
    sim = run_in_process(
        3, 3, participant_factory=with_faults({1: bad_share_dealer(2, justification="silent")})
    )
    assert not sim.succeeded
    assert set(sim.failures) == {1, 2, 3}
    assert all(isinstance(e, DkgAbort) for e in sim.failures.values())
    assert "2 qualified dealers, need 3" in str(sim.failures[1])


def _reseal(deal: Deal, victim: int, sim: Simulation, change: Callable[[int], int]) -> Deal:
    """The deal with the victim's share replaced by ``change(share)``, re-signed."""
    info = sim.config.share_info(deal.sender, victim)
    old = deal.share_for(victim)
    assert old is not None
    value = int.from_bytes(sim.identities[victim].decrypt(old.record, info=info), "big")
    key = sim.config.member(victim).encryption_key
    new = ecies.encrypt(key, curve.scalar_to_bytes(change(value) % curve.ORDER), info=info)
    shares = tuple(
        EncryptedShare.from_record(victim, new) if s.recipient == victim else s for s in deal.shares
    )
    return sim.resign(replace(deal, shares=shares))


def _shift(victim: int, delta: int, *, silent: bool = False) -> Fault:
    """A dealer that adds ``delta`` to the victim's share (and may not justify)."""

    def fault(message: DkgMessage, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, Deal):
            return _reseal(message, victim, sim, lambda v: v + delta)
        if silent and isinstance(message, Justification):
            return None
        return message

    return fault


def test_cancelling_errors_pass_the_aggregate_check() -> None:
    # Dealers 1 and 2 shift node 3's shares by +δ and −δ: the sum still checks,
    # and with both in QUAL node 3's final share is right.
    sim = run_in_process(
        5, 3, participant_factory=with_faults({1: _shift(3, 12345), 2: _shift(3, -12345)})
    )
    _assert_agreement(sim)
    assert sim.participants[3].complained_about == ()


def test_cancelling_errors_are_caught_when_one_colluder_is_disqualified() -> None:
    # Dealer 1 also cheats node 5, who complains; dealer 1 stays silent and QUAL
    # drops it. Node 3's share then misses dealer 2's −δ: it must fail loudly.
    def dealer_1(message: DkgMessage, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, Deal):
            shifted = _reseal(message, 3, sim, lambda v: v + 12345)
            return _reseal(shifted, 5, sim, lambda v: v + 1)
        return None if isinstance(message, Justification) else message

    sim = run_in_process(5, 3, participant_factory=with_faults({1: dealer_1, 2: _shift(3, -12345)}))
    assert sim.participants[4].qualified == frozenset({2, 3, 4, 5})
    assert isinstance(sim.failures[3], DkgAbort)
    assert "dealers [2]" in str(sim.failures[3])
    # Node 3 signs nothing, so nobody else may call the ceremony a success.
    for i in (1, 2, 4, 5):
        assert isinstance(sim.failures[i], DkgAbort)
        assert "[3] did not sign" in str(sim.failures[i])


def _started(n: int = 3, t: int = 2) -> tuple[CeremonyConfig, dict[int, Any], list[DkgMessage]]:
    config, identities = make_committee(n, t)
    participants = {i: DkgParticipant(config, ident) for i, ident in identities.items()}
    deals = [m for p in participants.values() for m in p.start()]
    return config, participants, deals


def test_forged_signatures_are_refused() -> None:
    _, participants, deals = _started()
    deal = next(d for d in deals if d.sender == 1)
    target = participants[2]
    # Signed by a wallet outside the committee.
    with pytest.raises(DkgProtocolError, match="bad signature"):
        target.receive(sign(deal, Wallet.generate()))
    # Node 3 signing a deal that claims to be node 1's.
    impostor = next(d for d in deals if d.sender == 3)
    with pytest.raises(DkgProtocolError, match="bad signature"):
        target.receive(replace(impostor, sender=1))
    # Any altered byte under the signature.
    altered = replace(deal, commitments=(curve.GENERATOR, *deal.commitments[1:]))
    with pytest.raises(DkgProtocolError, match="bad signature"):
        target.receive(altered)
    with pytest.raises(DkgProtocolError, match="bad signature"):
        target.receive(replace(deal, signature=b"\x00" * 65))
    with pytest.raises(DkgProtocolError, match="not in the committee"):
        target.receive(replace(deal, sender=9))
    with pytest.raises(DkgProtocolError, match="this node"):
        target.receive(next(d for d in deals if d.sender == 2))
    target.receive(deal)
    target.receive(deal)  # the same message twice is harmless


def test_messages_from_another_session_are_refused() -> None:
    config, identities = make_committee(3, 2)
    other = CeremonyConfig(
        config.chain_id,
        config.epoch,
        config.threshold,
        config.members,
        b"\x01" * 32,
        config.expires_at,
    )
    assert other.session_id != config.session_id
    mine = DkgParticipant(config, identities[2])
    mine.start()
    replayed = DkgParticipant(other, identities[1]).start()[0]
    with pytest.raises(DkgProtocolError, match="another session"):
        mine.receive(replayed)
    # Relabelling the session breaks the signature.
    with pytest.raises(DkgProtocolError, match="bad signature"):
        mine.receive(replace(replayed, session_id=config.session_id))
    # A change of epoch, threshold or chain is another session too.
    for changed in (
        replace(config, epoch=config.epoch + 1),
        replace(config, threshold=3),
        replace(config, chain_id=config.chain_id + 1),
    ):
        assert changed.session_id != config.session_id


def test_late_messages_are_refused() -> None:
    config, participants, deals = _started()
    p = participants[1]
    for d in deals:
        if d.sender != 1:
            p.receive(d)
    assert p.ready()
    p.advance()
    late = next(d for d in deals if d.sender == 2)
    p.receive(late)  # identical duplicate: still fine
    fresh = DkgParticipant(config, _identity_of(participants[2]))
    with pytest.raises(DkgProtocolError, match="late deal"):
        p.receive(fresh.start()[0])


def _identity_of(p: DkgParticipant) -> Any:
    return p._identity


def test_dealer_equivocation_seen_directly() -> None:
    config, participants, deals = _started()
    first = next(d for d in deals if d.sender == 1)
    second = DkgParticipant(config, _identity_of(participants[1])).start()[0]
    target = participants[3]
    target.receive(first)
    with pytest.raises(DkgEquivocationError, match="node 1"):
        target.receive(second)


def test_relay_withholding_a_deal_is_detected() -> None:
    def withhold(message: DkgMessage, recipient: int, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, Deal) and message.sender == 1 and recipient == 2:
            return None
        return message

    sim = run_in_process(5, 3, interceptor=withhold)
    assert set(sim.failures) == {1, 2, 3, 4, 5}
    assert all(isinstance(e, DkgEquivocationError) for e in sim.failures.values())
    assert "[2]" in str(sim.failures[1])


def test_dealer_showing_two_deals_is_detected() -> None:
    cache: dict[int, Deal] = {}

    def equivocate(message: DkgMessage, recipient: int, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, Deal) and message.sender == 1 and recipient in (4, 5):
            if 1 not in cache:
                cache[1] = _reseal(message, 4, sim, lambda v: v)  # fresh ECIES: other bytes
            return cache[1]
        return message

    sim = run_in_process(5, 3, interceptor=equivocate)
    assert set(sim.failures) == {1, 2, 3, 4, 5}
    assert all(isinstance(e, DkgEquivocationError) for e in sim.failures.values())


def test_a_node_signing_another_keyset_fails_the_ceremony() -> None:
    def lie(message: DkgMessage, recipient: int, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, KeysetSignature) and message.sender == 3:
            keyset = sim.participants[3].keyset
            assert keyset is not None
            forged = replace(keyset, epoch=keyset.epoch + 1)
            wallet = sim.identities[3].wallet
            return sim.resign(
                replace(
                    message,
                    keyset_digest=forged.digest(sim.config.chain_id),
                    keyset_signature=forged.sign(wallet, sim.config.chain_id),
                )
            )
        return message

    sim = run_in_process(4, 3, interceptor=lie)
    assert set(sim.failures) == {1, 2, 4}
    assert "[3]" in str(sim.failures[1]) and "different one" in str(sim.failures[1])
    assert sim.participants[3].phase is Phase.DONE


def test_secrets_stay_out_of_repr() -> None:
    sim = run_in_process(3, 2)
    p = sim.participants[1]
    share = p.key_share
    assert share is not None
    texts = [repr(p), repr(sim.identities[1]), repr(share), repr(p._secret), repr(sim)]
    secret_forms = [str(share.value), hex(share.value)[2:], f"{share.value:064x}"]
    key = sim.identities[1].encryption_key_bytes().hex()
    for text in texts:
        assert not any(s in text.lower() for s in [*secret_forms, key])
    # The polynomial's coefficients neither.
    state = p._secret
    assert state is not None
    assert str(state.polynomial.secret) not in repr(state.polynomial)


def test_participant_requires_committee_membership() -> None:
    config, _ = make_committee(3, 2)
    from tkms.dkg import NodeIdentity

    with pytest.raises(ValueError, match="not a member"):
        DkgParticipant(config, NodeIdentity.generate())


def test_advance_outside_a_phase_is_refused() -> None:
    config, identities = make_committee(2, 2)
    p = DkgParticipant(config, identities[1])
    with pytest.raises(DkgProtocolError):
        p.advance()
    p.start()
    with pytest.raises(DkgProtocolError, match="already started"):
        p.start()


def test_structurally_wrong_deal_disqualifies_its_dealer() -> None:
    def short(message: DkgMessage, sim: Simulation) -> DkgMessage | None:
        if isinstance(message, Deal):
            return sim.resign(replace(message, commitments=message.commitments[:-1]))
        return message

    sim = run_in_process(5, 3, participant_factory=with_faults({5: short}))
    _assert_agreement(sim)
    assert sim.participants[1].qualified == frozenset({1, 2, 3, 4})


def test_share_commitments_are_feldman() -> None:
    # A sanity link between the DKG deal and shamir: the share each node opened
    # is the dealer polynomial evaluated at its index.
    sim = run_in_process(4, 2)
    for j in range(1, 5):
        deal = sim.participants[1].deal_of(j)
        assert deal is not None
        for i in range(1, 5):
            state = sim.participants[i]._secret
            assert state is not None
            value = state.received_from(j)
            assert value is not None
            assert shamir.verify_share(deal.commitments, shamir.Share(i, value))


def test_complaint_carries_what_was_seen() -> None:
    sim = run_in_process(3, 2)
    digests = {p._complaints[p.index].deals_digest for p in sim.participants.values()}
    assert len(digests) == 1
    assert isinstance(sim.participants[1]._complaints[2], Complaint)
