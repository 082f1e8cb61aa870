"""Resharing the same ``Y`` from epoch e's committee to a new one, as a pure state machine.

It runs the DKG's rounds and wire (:mod:`tkms.dkg.messages`) so that a node's
round loop drives a :class:`ReshareParticipant` as it drives a
:class:`~tkms.dkg.ceremony.DkgParticipant`:

    CREATED --start--> DEALING --advance--> COMPLAINING --advance--> JUSTIFYING
            --advance--> SIGNING --advance--> DONE        (any error: FAILED)

Each dealer ``j`` (an old index) deals ``g_j`` of degree ``t_new − 1`` with
``g_j(0) = x_j``, its share of epoch e; every new member ``i`` checks its
sub-share ``s_ji = g_j(i)`` against the Feldman commitments, and every node
checks in public that ``C_j0 = Y_j`` of the old keyset (a dealer failing that
is disqualified as a malformed deal). With ``S`` the ``t_old`` lowest
qualified dealers, ``x'_i = Σ_{j∈S} λ_j·s_ji`` and
``Y'_i = Σ_{j∈S} λ_j·g_j(i)·G``; ``Σ_{j∈S} λ_j·C_j0 = Y`` is checked.

The sender of a ``deal`` or ``justification`` is an old index (a dealer), of a
``complaint`` or ``keysetSignature`` a new index (a receiver): the kind says
which committee a sender index belongs to, and which signer it must carry.
"""

from __future__ import annotations

from tkms.crypto import curve, ecies, shamir
from tkms.crypto.shamir import Share
from tkms.dkg.ceremony import Phase
from tkms.dkg.errors import DkgAbort, DkgEquivocationError, DkgError, DkgProtocolError
from tkms.dkg.keyset import KeysetResult, check_keyset_signatures, derive_reshared_keyset
from tkms.dkg.messages import (
    Complaint,
    Deal,
    DkgMessage,
    EncryptedShare,
    Justification,
    KeysetSignature,
    RevealedShare,
    sign,
)
from tkms.dkg.reshare_config import ReshareConfig
from tkms.dkg.reshare_inbox import ReshareInbox
from tkms.dkg.secrets import NodeIdentity, ReshareSecrets


class ReshareParticipant:
    """One node's view of one reshare: a dealer (leaves), a receiver (joins), or both (stays).

    Its repr shows no secret; the old share is kept only as the dealing polynomial's constant.
    """

    def __init__(
        self,
        config: ReshareConfig,
        identity: NodeIdentity,
        *,
        old_index: int | None,
        old_share: int | None,
        new_index: int | None,
    ) -> None:
        if old_index is None and new_index is None:
            raise ValueError("a participant is a dealer, a new member, or both")
        if (old_index is None) != (old_share is None):
            raise ValueError("a dealer needs its old index and its old share, together")
        if old_index is not None and old_share is not None:
            if not config.is_dealer(old_index):
                raise ValueError("this old index is not among the dealers")
            old = config.old_node(old_index)
            if old.signer != identity.address:
                raise ValueError("this identity is not that dealer of the old keyset")
            if not 1 <= old_share < curve.ORDER or not curve.points_equal(
                curve.base_mul(old_share), old.verification_key
            ):
                raise ValueError("the old share does not match its verification key")
        if new_index is not None:
            if not config.is_member(new_index):
                raise ValueError("this new index is not in the new committee")
            member = config.member(new_index)
            if member.signer != identity.address or not curve.points_equal(
                member.encryption_key, identity.encryption_public_key
            ):
                raise ValueError("this identity is not that member of the new committee")
        self.config = config
        self.old_index = old_index
        self.new_index = new_index
        self._identity = identity
        self._secret = ReshareSecrets(old_share)
        self._phase = Phase.CREATED
        self._inbox = ReshareInbox(config, old_index, new_index)
        self._accused_by_me: tuple[int, ...] = ()
        self._deals_digest_seen: bytes | None = None
        self._qualified: frozenset[int] | None = None
        self._subset: tuple[int, ...] | None = None
        self._keyset: KeysetResult | None = None
        self._share: Share | None = None
        self._signatures: dict[int, bytes] = {}

    # --- read-only views ---------------------------------------------------

    @property
    def index(self) -> int:
        """The index this node answers as: its new one, or its old one if it leaves."""
        index = self.new_index if self.new_index is not None else self.old_index
        assert index is not None  # the constructor demands one
        return index

    @property
    def is_dealer(self) -> bool:
        return self.old_index is not None

    @property
    def is_receiver(self) -> bool:
        return self.new_index is not None

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def qualified(self) -> frozenset[int] | None:
        """QUAL: the dealers (old indexes) whose deal survived every check."""
        return self._qualified

    @property
    def subset(self) -> tuple[int, ...] | None:
        """The ``t_old`` lowest qualified dealers, whose sub-shares make the new share."""
        return self._subset

    @property
    def disqualified(self) -> tuple[int, ...]:
        if self._qualified is None:
            return ()
        return tuple(j for j in self.config.dealers if j not in self._qualified)

    @property
    def keyset(self) -> KeysetResult | None:
        return self._keyset

    @property
    def keyset_signatures(self) -> dict[int, bytes]:
        """Every valid signature of the new keyset seen so far (every new member's once DONE)."""
        return dict(self._signatures)

    @property
    def key_share(self) -> Share | None:
        """The new share ``x'_i`` (new index); None for a dealer that leaves."""
        return self._share

    @property
    def complained_about(self) -> tuple[int, ...]:
        return self._accused_by_me

    def deal_of(self, dealer: int) -> Deal | None:
        return self._inbox.deals.get(dealer)

    def is_own(self, message: DkgMessage) -> bool:
        """Whether ``message`` names this node as its sender (in the committee its kind implies)."""
        return self._inbox.is_own(message)

    def ready(self) -> bool:
        """All messages the current phase waits for are in: the driver may advance early."""
        receivers, inbox = set(self.config.new_indices), self._inbox
        if self._phase is Phase.DEALING:
            return set(inbox.deals) >= set(self.config.dealers)
        if self._phase is Phase.COMPLAINING:
            return set(inbox.complaints) == receivers
        if self._phase is Phase.JUSTIFYING:
            return inbox.accused() <= set(inbox.justifications)
        if self._phase is Phase.SIGNING:
            return set(inbox.keyset_sigs) == receivers
        return False

    def __repr__(self) -> str:
        return (
            f"ReshareParticipant(old_index={self.old_index}, new_index={self.new_index}, "
            f"phase={self._phase.value})"
        )

    # --- input -------------------------------------------------------------

    def receive(self, message: DkgMessage) -> None:
        """Take one message from a peer; refuse it with :class:`DkgProtocolError`.

        The node's own message echoed by the relay is ignored; a second,
        different message of one kind from one sender is equivocation, raised.
        """
        if self._phase in (Phase.DONE, Phase.FAILED):
            raise DkgProtocolError("the ceremony is over")
        self._inbox.receive(message, self._phase)

    # --- phases ------------------------------------------------------------

    def start(self) -> list[DkgMessage]:
        """A dealer deals ``g_j`` (``g_j(0) = x_j``) to every new member; a joiner waits."""
        if self._phase is not Phase.CREATED:
            raise DkgProtocolError("already started")
        self._phase = Phase.DEALING
        if self.old_index is None:
            return []
        poly = self._secret.deal(self.config.new_threshold)
        shares = tuple(
            EncryptedShare.from_record(
                m.index,
                ecies.encrypt(
                    m.encryption_key,
                    curve.scalar_to_bytes(poly.evaluate(m.index)),
                    info=self.config.share_info(self.old_index, m.index),
                ),
            )
            for m in self.config.new_members
        )
        deal = Deal(self.config.session_id, self.old_index, poly.commitments(), shares)
        return self._emit(sign(deal, self._identity.wallet))

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
        self._inbox.store(message)
        return [message]

    def _close_dealing(self) -> list[DkgMessage]:
        self._deals_digest_seen = self._inbox.deals_digest()
        self._phase = Phase.COMPLAINING
        if self.new_index is None:
            return []
        bad = [j for j in self._inbox.dealers() if not self._accept(j)]
        good = [j for j in self._inbox.dealers() if j not in bad]
        # One aggregate check for all dealers; per-dealer checks only to find a cheat.
        if good and not self._sum_matches(good):
            bad.extend(j for j in good if not self._share_matches(j))
        for j in bad:
            self._secret.forget(j)
        # A public fault (wrong C_j0, bad shape) is named too: the complaint shows it.
        named = set(bad) | {j for j in self._inbox.malformed_deals if j in self._inbox.deals}
        self._accused_by_me = tuple(sorted(named))
        complaint = Complaint(
            self.config.session_id, self.new_index, self._deals_digest_seen, self._accused_by_me
        )
        return self._emit(sign(complaint, self._identity.wallet))

    def _accept(self, dealer: int) -> bool:
        assert self.new_index is not None
        sealed = self._inbox.deals[dealer].share_for(self.new_index)
        assert sealed is not None  # _well_formed: a sub-share for every new member
        info = self.config.share_info(dealer, self.new_index)
        try:
            value = curve.parse_scalar(self._identity.decrypt(sealed.record, info=info))
        except (ecies.EciesError, curve.CurveError):
            return False
        self._secret.accept(dealer, value)
        return True

    def _sum_matches(self, dealers: list[int]) -> bool:
        assert self.new_index is not None
        agg = shamir.aggregate_commitments([self._inbox.commitments(j) for j in dealers])
        expected = shamir.evaluate_commitments(agg, self.new_index)
        total = self._secret.sum_from(dealers)
        return (
            expected is not None
            and total != 0
            and curve.points_equal(curve.base_mul(total), expected)
        )

    def _share_matches(self, dealer: int) -> bool:
        value = self._secret.received_from(dealer)
        if value is None or self.new_index is None:
            return False
        return shamir.verify_share(self._inbox.commitments(dealer), Share(self.new_index, value))

    def _close_complaining(self) -> list[DkgMessage]:
        self._phase = Phase.JUSTIFYING
        if self.old_index is None or self.old_index not in self._inbox.dealers():
            return []
        accusers = self._inbox.complainers(self.old_index)
        if not accusers:
            return []
        revealed = tuple(RevealedShare(m, self._secret.share_for(m)) for m in accusers)
        justification = Justification(self.config.session_id, self.old_index, revealed)
        return self._emit(sign(justification, self._identity.wallet))

    def _close_justifying(self) -> list[DkgMessage]:
        qual = frozenset(j for j in self._inbox.dealers() if self._inbox.justified(j))
        need = self.config.old_threshold
        if len(qual) < need:
            raise DkgAbort(f"only {len(qual)} qualified dealers, need {need}: epoch stays")
        differing = sorted(
            m
            for m, c in self._inbox.complaints.items()
            if c.deals_digest != self._deals_digest_seen
        )
        if differing:
            raise DkgEquivocationError(f"new members {differing} saw other deals than this node")
        for j in self._accused_by_me:
            answer = self._inbox.justifications.get(j)
            if j in qual and answer is not None and self.new_index is not None:
                value = answer.share_for(self.new_index)
                assert value is not None  # _justified checked it
                self._secret.accept(j, value)
        self._qualified = qual
        self._subset = tuple(sorted(qual)[:need])
        self._keyset = self._derive_keyset(self._subset)
        self._phase = Phase.SIGNING
        if self.new_index is None:
            return []
        self._share = self._derive_share(self._subset, self._keyset)
        digest = self._keyset.digest(self.config.chain_id)
        signature = self._keyset.sign(self._identity.wallet, self.config.chain_id)
        self._signatures[self.new_index] = signature
        message = KeysetSignature(self.config.session_id, self.new_index, digest, signature)
        return self._emit(sign(message, self._identity.wallet))

    def _derive_keyset(self, subset: tuple[int, ...]) -> KeysetResult:
        return derive_reshared_keyset(
            self.config.new_epoch,
            self.config.new_threshold,
            self.config.old_keyset.public_key,
            {j: self._inbox.commitments(j) for j in subset},
            [(m.index, m.signer) for m in self.config.new_members],
        )

    def _derive_share(self, subset: tuple[int, ...], keyset: KeysetResult) -> Share:
        assert self.new_index is not None
        value = self._secret.combine(subset)
        mine = keyset.verification_keys()[self.new_index]
        if value == 0 or not curve.points_equal(curve.base_mul(value), mine):
            # Only colluding dealers whose errors cancelled in the aggregate check get here.
            culprits = [j for j in subset if not self._share_matches(j)]
            raise DkgAbort(f"own share disagrees with the commitments of dealers {culprits}")
        return Share(self.new_index, value)

    def _close_signing(self) -> list[DkgMessage]:
        keyset = self._keyset
        assert keyset is not None
        mine = keyset.digest(self.config.chain_id)
        received = self._inbox.keyset_sigs
        offered = {m: msg.keyset_signature for m, msg in received.items()}  # own one included
        # Every new member must hold its share and say so: a silent one would be a dead index.
        bad = check_keyset_signatures(
            keyset,
            chain_id=self.config.chain_id,
            signatures=offered,
            required=self.config.new_indices,
        )
        if bad:
            other = sorted(m for m in bad if m in received and received[m].keyset_digest != mine)
            raise DkgAbort(
                f"new members {list(bad)} did not sign this keyset"
                + (f" (members {other} signed a different one)" if other else "")
            )
        self._signatures = {m: offered[m] for m in sorted(offered)}
        self._phase = Phase.DONE
        return []
