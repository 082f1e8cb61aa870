"""What one node of a reshare has heard: every signed message, checked as it arrives.

The sender of a ``deal`` or ``justification`` is an old index (a dealer), of a
``complaint`` or ``keysetSignature`` a new index (a receiver): the kind says
which committee a sender index belongs to, and so which signer it must carry.
Everything here is public; the secret side is :class:`tkms.dkg.secrets.ReshareSecrets`.
"""

from __future__ import annotations

import hashlib

from tkms.crypto import curve, shamir
from tkms.crypto.shamir import Share
from tkms.dkg.ceremony import Phase
from tkms.dkg.errors import DkgEquivocationError, DkgProtocolError
from tkms.dkg.messages import (
    Complaint,
    Deal,
    DkgMessage,
    Justification,
    KeysetSignature,
    signer_of,
    signing_digest,
)
from tkms.dkg.reshare_config import ReshareConfig

DEALS_DOMAIN = b"tkms-reshare-deals:v1"
ORDER = {p: n for n, p in enumerate(Phase)}
# The last phase in which each kind of message is still taken.
_CLOSES = {
    Deal.KIND: Phase.DEALING,
    Complaint.KIND: Phase.COMPLAINING,
    Justification.KIND: Phase.JUSTIFYING,
    KeysetSignature.KIND: Phase.SIGNING,
}
FROM_DEALER = (Deal.KIND, Justification.KIND)


class ReshareInbox:
    """The messages of one reshare by kind and sender, and the public checks on them."""

    def __init__(self, config: ReshareConfig, old_index: int | None, new_index: int | None) -> None:
        self.config = config
        self.old_index = old_index
        self.new_index = new_index
        self.deals: dict[int, Deal] = {}
        self.complaints: dict[int, Complaint] = {}
        self.justifications: dict[int, Justification] = {}
        self.keyset_sigs: dict[int, KeysetSignature] = {}
        self.malformed_deals: set[int] = set()
        self.equivocators: set[int] = set()
        self._digests: dict[tuple[str, int], bytes] = {}

    def is_own(self, message: DkgMessage) -> bool:
        mine = self.old_index if message.KIND in FROM_DEALER else self.new_index
        return mine is not None and message.sender == mine

    def receive(self, message: DkgMessage, phase: Phase) -> None:
        """Check and keep one message; raises :class:`DkgProtocolError` to refuse it.

        The node's own message coming back through the relay is ignored when it
        is the very one it sent; a second, different message of one kind from
        one sender is equivocation: raised, and a dealer doing it is dropped.
        """
        if message.session_id != self.config.session_id:
            raise DkgProtocolError("message belongs to another session")
        sender = message.sender
        if message.KIND in FROM_DEALER:
            if not self.config.is_dealer(sender):
                raise DkgProtocolError("sender is not a dealer of this reshare")
            expected = self.config.old_node(sender).signer
        else:
            if not self.config.is_member(sender):
                raise DkgProtocolError("sender is not in the new committee")
            expected = self.config.member(sender).signer
        digest = signing_digest(message)
        known = self._digests.get((message.KIND, sender))
        if self.is_own(message):
            if known == digest:
                return
            raise DkgProtocolError("message claims to come from this node")
        if signer_of(message, digest) != expected:
            raise DkgProtocolError(f"bad signature on a {message.KIND} from node {sender}")
        if known == digest:
            return  # a relay's retransmission
        if ORDER[phase] > ORDER[_CLOSES[message.KIND]]:
            raise DkgProtocolError(f"late {message.KIND} from node {sender}")
        if known is not None:
            if message.KIND in FROM_DEALER:
                self.equivocators.add(sender)
            raise DkgEquivocationError(f"node {sender} sent two different {message.KIND}s")
        self.store(message, digest)

    def store(self, message: DkgMessage, digest: bytes | None = None) -> None:
        sender = message.sender
        self._digests[(message.KIND, sender)] = digest or signing_digest(message)
        if isinstance(message, Deal):
            self.deals[sender] = message
            if not self._well_formed(message):
                # Public and signed, C_j0 included: every node drops this dealer alike.
                self.malformed_deals.add(sender)
        elif isinstance(message, Complaint):
            self.complaints[sender] = message
        elif isinstance(message, Justification):
            self.justifications[sender] = message
        else:
            self.keyset_sigs[sender] = message

    def _well_formed(self, deal: Deal) -> bool:
        """t_new commitments, one sealed sub-share per new member, and ``C_j0 = Y_j``."""
        recipients = [s.recipient for s in deal.shares]
        return (
            len(deal.commitments) == self.config.new_threshold
            and recipients == list(self.config.new_indices)
            and curve.points_equal(
                deal.commitments[0], self.config.old_node(deal.sender).verification_key
            )
        )

    def commitments(self, dealer: int) -> tuple[curve.Point, ...]:
        return self.deals[dealer].commitments

    def dealers(self) -> list[int]:
        """Dealers with one well-formed deal in hand (this node included)."""
        bad = self.malformed_deals | self.equivocators
        return [j for j in self.config.dealers if j in self.deals and j not in bad]

    def deals_digest(self) -> bytes:
        """What this node saw in round 1: every deal's transcript digest, by dealer."""
        h = hashlib.sha256(DEALS_DOMAIN)
        for j in sorted(self.deals):
            h.update(j.to_bytes(2, "big") + self._digests[(Deal.KIND, j)])
        for j in sorted(self.equivocators):
            # Two versions seen: never agree with anyone who saw only one.
            h.update(b"equivocation" + j.to_bytes(2, "big"))
        return h.digest()

    def accused(self) -> set[int]:
        dealers = set(self.dealers())
        return {j for c in self.complaints.values() for j in c.accused if j in dealers}

    def complainers(self, dealer: int) -> list[int]:
        return sorted(m for m, c in self.complaints.items() if dealer in c.accused)

    def justified(self, dealer: int) -> bool:
        """Every complaint against ``dealer`` answered with a sub-share matching its commitments."""
        complainers = self.complainers(dealer)
        if not complainers:
            return True
        answer = self.justifications.get(dealer)
        if answer is None:
            return False
        for m in complainers:
            value = answer.share_for(m)
            if value is None or not shamir.verify_share(self.commitments(dealer), Share(m, value)):
                return False
        return True
