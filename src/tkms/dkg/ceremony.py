"""Pedersen joint-Feldman DKG with complaints, as a pure state machine.

A :class:`DkgParticipant` never does I/O: the driver hands it every message it
gets with :meth:`~DkgParticipant.receive`, and ends each phase (every
expected message in, or the phase deadline passed) with
:meth:`~DkgParticipant.advance`, which returns what to broadcast next.

    CREATED --start--> DEALING --advance--> COMPLAINING --advance--> JUSTIFYING
            --advance--> SIGNING --advance--> DONE        (any error: FAILED)

QUAL is every dealer whose deal was well formed, who took part in the
complaint round, and whose complaints (if any) it justified with shares that
match its commitments. The final share is ``x_i = Σ_{j∈QUAL} s_ji`` and the
group key ``Y = Σ_{j∈QUAL} C_j0``. The ceremony succeeds only when every
qualified node saw the same deals and signed the same keyset.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from tkms.crypto import curve, ecies, shamir
from tkms.crypto.shamir import Polynomial, Share
from tkms.dkg.committee import CeremonyConfig
from tkms.dkg.errors import DkgAbort, DkgEquivocationError, DkgError, DkgProtocolError
from tkms.dkg.keyset import KeysetResult, check_keyset_signatures, derive_keyset
from tkms.dkg.messages import (
    Complaint,
    Deal,
    DkgMessage,
    EncryptedShare,
    Justification,
    KeysetSignature,
    RevealedShare,
    sign,
    signer_of,
    signing_digest,
)
from tkms.dkg.secrets import NodeIdentity, SecretState

DEALS_DOMAIN = b"tkms-dkg-deals:v1"


class Phase(StrEnum):
    CREATED = "created"
    DEALING = "dealing"
    COMPLAINING = "complaining"
    JUSTIFYING = "justifying"
    SIGNING = "signing"
    DONE = "done"
    FAILED = "failed"


_ORDER = {p: n for n, p in enumerate(Phase)}
# The last phase in which each kind of message is still taken.
_CLOSES = {
    Deal.KIND: Phase.DEALING,
    Complaint.KIND: Phase.COMPLAINING,
    Justification.KIND: Phase.JUSTIFYING,
    KeysetSignature.KIND: Phase.SIGNING,
}


class DkgParticipant:
    """One node's view of one ceremony. Its repr shows no secret."""

    def __init__(self, config: CeremonyConfig, identity: NodeIdentity) -> None:
        mine = [m for m in config.members if m.signer == identity.address]
        if len(mine) != 1 or not curve.points_equal(
            mine[0].encryption_key, identity.encryption_public_key
        ):
            raise ValueError("this identity is not a member of the committee")
        self.config = config
        self.index = mine[0].index
        self._identity = identity
        self._phase = Phase.CREATED
        self._secret: SecretState | None = None
        self._deals: dict[int, Deal] = {}
        self._complaints: dict[int, Complaint] = {}
        self._justifications: dict[int, Justification] = {}
        self._keyset_sigs: dict[int, KeysetSignature] = {}
        self._digests: dict[tuple[str, int], bytes] = {}
        self._malformed_deals: set[int] = set()
        self._equivocators: set[int] = set()
        self._qualified: frozenset[int] | None = None
        self._keyset: KeysetResult | None = None
        self._share: Share | None = None
        self._signatures: dict[int, bytes] = {}

    # --- read-only views ---------------------------------------------------

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def qualified(self) -> frozenset[int] | None:
        return self._qualified

    @property
    def keyset(self) -> KeysetResult | None:
        return self._keyset

    @property
    def keyset_signatures(self) -> dict[int, bytes]:
        """Every valid signature of the keyset seen so far (complete once DONE)."""
        return dict(self._signatures)

    @property
    def key_share(self) -> Share | None:
        """The final share ``x_i``; only once the keyset is computed."""
        return self._share

    @property
    def complained_about(self) -> tuple[int, ...]:
        own = self._complaints.get(self.index)
        return own.accused if own else ()

    def deal_of(self, dealer: int) -> Deal | None:
        return self._deals.get(dealer)

    def ready(self) -> bool:
        """All messages the current phase waits for are in: the driver may advance early."""
        everyone = set(self.config.indices)
        if self._phase is Phase.DEALING:
            return set(self._deals) == everyone
        if self._phase is Phase.COMPLAINING:
            return set(self._complaints) == everyone
        if self._phase is Phase.JUSTIFYING:
            return self._accused() <= set(self._justifications)
        if self._phase is Phase.SIGNING:
            return set(self._keyset_sigs) == everyone
        return False

    def __repr__(self) -> str:
        return f"DkgParticipant(index={self.index}, phase={self._phase.value})"

    # --- input -------------------------------------------------------------

    def receive(self, message: DkgMessage) -> None:
        """Take one message from a peer; refuse it with :class:`DkgProtocolError`.

        A second, different message of the same kind from the same sender is
        equivocation: it is recorded (the sender cannot qualify) and raised.
        """
        if self._phase in (Phase.DONE, Phase.FAILED):
            raise DkgProtocolError("the ceremony is over")
        if message.session_id != self.config.session_id:
            raise DkgProtocolError("message belongs to another session")
        sender = message.sender
        if not self.config.is_member(sender):
            raise DkgProtocolError("sender is not in the committee")
        if sender == self.index:
            raise DkgProtocolError("message claims to come from this node")
        digest = signing_digest(message)
        if signer_of(message, digest) != self.config.member(sender).signer:
            raise DkgProtocolError(f"bad signature on a {message.KIND} from node {sender}")
        known = self._digests.get((message.KIND, sender))
        if known == digest:
            return  # a relay's retransmission
        if _ORDER[self._phase] > _ORDER[_CLOSES[message.KIND]]:
            raise DkgProtocolError(f"late {message.KIND} from node {sender}")
        if known is not None:
            self._equivocators.add(sender)
            raise DkgEquivocationError(f"node {sender} sent two different {message.KIND}s")
        self._store(message, digest)

    def _store(self, message: DkgMessage, digest: bytes) -> None:
        sender = message.sender
        self._digests[(message.KIND, sender)] = digest
        if isinstance(message, Deal):
            self._deals[sender] = message
            if not self._well_formed(message):
                # Signed and public: every node sees the same fault and drops the dealer.
                self._malformed_deals.add(sender)
        elif isinstance(message, Complaint):
            self._complaints[sender] = message
        elif isinstance(message, Justification):
            self._justifications[sender] = message
        else:
            self._keyset_sigs[sender] = message

    def _well_formed(self, deal: Deal) -> bool:
        recipients = [s.recipient for s in deal.shares]
        others = [i for i in self.config.indices if i != deal.sender]
        return len(deal.commitments) == self.config.threshold and recipients == others

    # --- phases ------------------------------------------------------------

    def start(self) -> list[DkgMessage]:
        """Deal: a random degree t−1 polynomial, its commitments, one sealed share each."""
        if self._phase is not Phase.CREATED:
            raise DkgProtocolError("already started")
        poly = self._new_polynomial()
        self._secret = SecretState(self.index, poly)
        shares = tuple(
            EncryptedShare.from_record(
                m.index,
                ecies.encrypt(
                    m.encryption_key,
                    curve.scalar_to_bytes(poly.evaluate(m.index)),
                    info=self.config.share_info(self.index, m.index),
                ),
            )
            for m in self.config.members
            if m.index != self.index
        )
        deal = Deal(self.config.session_id, self.index, poly.commitments(), shares)
        self._phase = Phase.DEALING
        return self._emit(sign(deal, self._identity.wallet))

    def _new_polynomial(self) -> Polynomial:
        # A reshare (dkg/reshare.py) fixes the constant term to the dealer's old share.
        return Polynomial.random(self.config.threshold)

    def advance(self) -> list[DkgMessage]:
        """End the current phase; returns the messages to broadcast (maybe none)."""
        step = {
            Phase.DEALING: self._close_dealing,
            Phase.COMPLAINING: self._close_complaining,
            Phase.JUSTIFYING: self._close_justifying,
            Phase.SIGNING: self._close_signing,
        }.get(self._phase)
        if step is None:
            raise DkgProtocolError(f"nothing to advance in phase {self._phase.value}")
        try:
            return step()
        except DkgError:
            self._phase = Phase.FAILED
            raise

    def _emit(self, message: DkgMessage) -> list[DkgMessage]:
        self._store(message, signing_digest(message))
        return [message]

    def _state(self) -> SecretState:
        assert self._secret is not None  # start() ran: every phase after it has one
        return self._secret

    def _commitments(self, dealer: int) -> tuple[curve.Point, ...]:
        return self._deals[dealer].commitments

    def _dealers(self) -> list[int]:
        """Dealers with one well-formed deal in hand (this node included)."""
        bad = self._malformed_deals | self._equivocators
        return [j for j in self.config.indices if j in self._deals and j not in bad]

    def _close_dealing(self) -> list[DkgMessage]:
        state = self._state()
        bad: list[int] = []
        for j in self._dealers():
            if j == self.index:
                continue
            value = self._open(j)
            if value is None:
                bad.append(j)
            else:
                state.accept(j, value)
        good = [j for j in self._dealers() if j not in bad]
        # One aggregate check for all dealers; per-dealer checks only to find a cheat.
        if good and not self._sum_matches(good):
            bad.extend(j for j in good if not self._share_matches(j))
        for j in bad:
            state.forget(j)
        complaint = Complaint(
            self.config.session_id, self.index, self._deals_digest(), tuple(sorted(bad))
        )
        self._phase = Phase.COMPLAINING
        return self._emit(sign(complaint, self._identity.wallet))

    def _open(self, dealer: int) -> int | None:
        sealed = self._deals[dealer].share_for(self.index)
        assert sealed is not None  # _well_formed: a share for every other member
        info = self.config.share_info(dealer, self.index)
        try:
            return curve.parse_scalar(self._identity.decrypt(sealed.record, info=info))
        except (ecies.EciesError, curve.CurveError):
            return None

    def _sum_matches(self, dealers: list[int]) -> bool:
        agg = shamir.aggregate_commitments([self._commitments(j) for j in dealers])
        expected = shamir.evaluate_commitments(agg, self.index)
        total = self._state().sum_from(dealers)
        return (
            expected is not None
            and total != 0
            and curve.points_equal(curve.base_mul(total), expected)
        )

    def _share_matches(self, dealer: int) -> bool:
        value = self._state().received_from(dealer)
        if value is None:
            return False
        return shamir.verify_share(self._commitments(dealer), Share(self.index, value))

    def _deals_digest(self) -> bytes:
        """What this node saw in round 1: every deal's transcript digest, by dealer."""
        h = hashlib.sha256(DEALS_DOMAIN)
        for j in sorted(self._deals):
            h.update(j.to_bytes(2, "big") + self._digests[(Deal.KIND, j)])
        for j in sorted(self._equivocators):
            # Two versions seen: never agree with anyone who saw only one.
            h.update(b"equivocation" + j.to_bytes(2, "big"))
        return h.digest()

    def _accused(self) -> set[int]:
        dealers = set(self._dealers())
        return {
            j for m, c in self._complaints.items() for j in c.accused if j in dealers and j != m
        }

    def _close_complaining(self) -> list[DkgMessage]:
        self._phase = Phase.JUSTIFYING
        accusers = self._complainers(self.index)
        if not accusers:
            return []
        state = self._state()
        revealed = tuple(RevealedShare(m, state.share_for(m)) for m in accusers)
        justification = Justification(self.config.session_id, self.index, revealed)
        return self._emit(sign(justification, self._identity.wallet))

    def _complainers(self, dealer: int) -> list[int]:
        return sorted(m for m, c in self._complaints.items() if dealer in c.accused and m != dealer)

    def _justified(self, dealer: int) -> bool:
        """Every complaint against ``dealer`` answered with a share matching its commitments."""
        complainers = self._complainers(dealer)
        if not complainers:
            return True
        answer = self._justifications.get(dealer)
        if answer is None:
            return False
        for m in complainers:
            value = answer.share_for(m)
            if value is None or not shamir.verify_share(self._commitments(dealer), Share(m, value)):
                return False
        return True

    def _close_justifying(self) -> list[DkgMessage]:
        complaints = self._complaints
        qual = frozenset(j for j in self._dealers() if j in complaints and self._justified(j))
        if len(qual) < self.config.threshold:
            raise DkgAbort(f"only {len(qual)} qualified dealers, need {self.config.threshold}")
        own = complaints[self.index]
        differing = sorted(j for j in qual if complaints[j].deals_digest != own.deals_digest)
        if differing:
            raise DkgEquivocationError(
                f"qualified nodes {differing} saw other deals than node {self.index}"
            )
        state = self._state()
        for j in own.accused:
            answer = self._justifications.get(j)
            if j in qual and answer is not None:
                value = answer.share_for(self.index)
                assert value is not None  # _justified checked it
                state.accept(j, value)
        self._qualified = qual
        self._share, self._keyset = self._derive(sorted(qual))
        digest = self._keyset.digest(self.config.chain_id)
        signature = self._keyset.sign(self._identity.wallet, self.config.chain_id)
        self._signatures[self.index] = signature
        message = KeysetSignature(self.config.session_id, self.index, digest, signature)
        self._phase = Phase.SIGNING
        return self._emit(sign(message, self._identity.wallet))

    def _derive(self, qual: list[int]) -> tuple[Share, KeysetResult]:
        keyset = derive_keyset(
            self.config.epoch,
            self.config.threshold,
            [self._commitments(j) for j in qual],
            [(m.index, m.signer) for m in self.config.members],
        )
        share = self._state().final_share(qual)
        mine = keyset.verification_keys()[self.index]
        if share.value == 0 or not curve.points_equal(curve.base_mul(share.value), mine):
            # Only colluding dealers whose errors cancelled in the aggregate check get here.
            culprits = [j for j in qual if not self._share_matches(j)]
            raise DkgAbort(f"own share disagrees with the commitments of dealers {culprits}")
        return share, keyset

    def _close_signing(self) -> list[DkgMessage]:
        keyset = self._keyset
        assert keyset is not None and self._qualified is not None
        mine = keyset.digest(self.config.chain_id)
        received = self._keyset_sigs
        offered = {m: msg.keyset_signature for m, msg in received.items()}
        bad = check_keyset_signatures(
            keyset,
            chain_id=self.config.chain_id,
            signatures=offered,
            required=set(offered) | self._qualified,
        )
        failed = [m for m in bad if m in self._qualified]
        if failed:
            other = sorted(m for m in failed if m in received and received[m].keyset_digest != mine)
            raise DkgAbort(
                f"qualified nodes {failed} did not sign this keyset"
                + (f" (nodes {other} signed a different one)" if other else "")
            )
        valid = set(offered) - set(bad)
        self._signatures = {m: offered[m] for m in sorted(valid)}
        self._phase = Phase.DONE
        return []
