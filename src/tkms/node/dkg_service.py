"""The node's side of a ceremony over HTTP: admin-authorised, relay-driven rounds.

The relay (``tkms dkg``) is a bulletin board: it can delay or drop messages
but not forge them, since every DKG message carries its sender's signature
and every node checks it. Only the committee's admin key may start a
ceremony or close a round. When a ceremony completes, the share and the
signed keyset are sealed to disk before the node answers "done", and the
partial delegator starts serving them.

Every node (and whoever watches the relay) sees all of the admin's
statements of a ceremony, so each is made useless for a replay: a start names
the whole ceremony and its expiry, a node starts each session once (the
session is sealed to disk before the node deals, so a restart remembers it),
and a node that holds a key for a chain never takes part in a new DKG for
that chain: a DKG only ever creates a key, it never replaces one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tkms.crypto import curve, eip712
from tkms.crypto.dleq import Prover
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet, recover_address
from tkms.dkg import (
    CeremonyConfig,
    DkgError,
    DkgMessage,
    DkgMessageError,
    DkgParticipant,
    NodeIdentity,
    Phase,
    parse_message,
)
from tkms.dkg.lifecycle import Event
from tkms.node import lifecycle_store
from tkms.node.delegation_v1 import PartialDelegator, ShareHolding
from tkms.node.keystore import ChainShare, NodeSecrets, SealedKeystore
from tkms.web.errors import ApiError

log = logging.getLogger("tkms.node.dkg")

MAX_LIFETIME = 24 * 3600
"""How far ahead a start may expire: it bounds how long a node remembers a session."""


def deliver(
    raw_messages: list[Any],
    receive: Callable[[DkgMessage], None],
    is_own: Callable[[DkgMessage], bool],
) -> list[str]:
    """Hand a round's relayed messages to a ceremony (a DKG's or a reshare's); what
    fails to parse or to check is listed, as docs/dkg.md's ``rejected``, and skipped.
    Our own broadcast, relayed back to everyone, is skipped silently."""
    rejected = []
    for raw in raw_messages:
        try:
            message = parse_message(raw)
        except DkgMessageError as exc:
            rejected.append(f"malformed message: {exc}")
            continue
        if is_own(message):
            continue
        try:
            receive(message)
        except DkgError as exc:
            rejected.append(str(exc))
    return rejected


def admin_check(admin: bytes | None, digest: bytes, signature_hex: object) -> None:
    if admin is None:
        raise ApiError(403, "dkg_disabled", "this node has no DKG admin address configured")
    try:
        signature = parse_hex(signature_hex, name="authorization", length=65)
        signer = recover_address(digest, signature)
    except (EncodingError, SignatureError):
        raise ApiError(401, "invalid_signature", "admin authorization is invalid") from None
    if signer != admin:
        raise ApiError(401, "unauthorized_signer", "not signed by the committee admin")


def holding_from(share: ChainShare) -> ShareHolding:
    return ShareHolding(share.index, share.epoch, Prover(share.share), share.keyset)


class DkgService:
    """One ceremony at a time; a new authorised session replaces an unfinished one.

    ``clock`` gives Unix seconds (a seam for tests of expiry).
    """

    def __init__(
        self,
        wallet: Wallet,
        keystore: SealedKeystore,
        secrets: NodeSecrets,
        partials: PartialDelegator,
        admin: bytes | None,
    ) -> None:
        self.identity = NodeIdentity(wallet, secrets.encryption_key)
        self.keystore = keystore
        self.secrets = secrets
        self.partials = partials
        self.admin = admin
        self.participant: DkgParticipant | None = None
        # A seam for adversarial tests (a dealer that cheats runs a subclass).
        self.participant_factory: Callable[[CeremonyConfig, NodeIdentity], DkgParticipant] = (
            DkgParticipant
        )
        self.round = 0
        self.clock: Callable[[], float] = time.time
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DkgService(participant={self.participant!r})"

    def identity_json(self) -> dict[str, Any]:
        return {
            "signer": to_hex(self.identity.address),
            "encryptionKey": to_hex(curve.encode_point(self.identity.encryption_public_key)),
        }

    def start(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "request body must be a JSON object")
        try:
            config = CeremonyConfig.from_json(body.get("config"))
        except DkgMessageError as exc:
            raise ApiError(400, "invalid_ceremony", f"config: {exc}") from None
        if config.chain_id not in self.partials.gateways:
            raise ApiError(400, "unknown_chain", f"chain {config.chain_id} is not configured")
        digest = eip712.digest(
            eip712.dkg_domain(config.chain_id), eip712.DKG_START, config.start_statement()
        )
        admin_check(self.admin, digest, body.get("authorization"))
        with self._lock:
            now = self.clock()
            if config.expires_at <= now:
                raise ApiError(403, "ceremony_expired", "the ceremony's start has expired")
            if config.expires_at > now + MAX_LIFETIME:
                raise ApiError(
                    400, "invalid_ceremony", f"expiresAt is more than {MAX_LIFETIME} s ahead"
                )
            if config.session_id in self.secrets.sessions:
                raise ApiError(409, "session_seen", "this node has already started this session")
            held = self.secrets.chains.get(config.chain_id)
            if held is not None:
                raise ApiError(
                    409,
                    "key_exists",
                    f"this node holds a key of chain {config.chain_id} (epoch {held.epoch});"
                    " a DKG never replaces it",
                )
            try:
                participant = self.participant_factory(config, self.identity)
            except ValueError:
                raise ApiError(400, "not_a_member", "this node is not in the committee") from None
            # Remembered on disk before this node deals: a replay after a restart is
            # refused too. A failure to persist refuses the start (nothing dealt yet).
            self.secrets.forget_expired(now)
            self.secrets.sessions[config.session_id] = config.expires_at
            try:
                self.keystore.save(self.secrets)
            except OSError:
                del self.secrets.sessions[config.session_id]
                raise ApiError(
                    503, "state_unavailable", "cannot record the session durably"
                ) from None
            messages = participant.start()
            self.participant = participant
            self.round = 1
        log.info("ceremony %s started as node %d", config.session_id.hex()[:16], participant.index)
        return self._answer(participant, messages, [])

    def step(self, body: Any) -> dict[str, Any]:
        """Take the previous round's messages, close the phase, return this node's next ones."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise ApiError(
                400, "invalid_body", "expected {sessionId, round, messages, authorization}"
            )
        with self._lock:
            participant = self.participant
            if participant is None:
                raise ApiError(409, "no_ceremony", "no ceremony in progress")
            try:
                session = parse_hex(body.get("sessionId"), name="sessionId", length=32)
            except EncodingError as exc:
                raise ApiError(400, "invalid_body", str(exc)) from None
            if session != participant.config.session_id:
                raise ApiError(409, "wrong_session", "another ceremony is in progress")
            round_ = body.get("round")
            if not isinstance(round_, int) or isinstance(round_, bool) or round_ < 0:
                raise ApiError(400, "invalid_body", "round must be a non-negative integer")
            digest = eip712.digest(
                eip712.dkg_domain(participant.config.chain_id),
                eip712.DKG_STEP,
                {"sessionId": session, "round": round_},
            )
            admin_check(self.admin, digest, body.get("authorization"))
            if participant.config.expires_at <= self.clock():
                self.participant = None
                log.warning("ceremony %s expired at round %d", session.hex()[:16], self.round)
                raise ApiError(403, "ceremony_expired", "the ceremony has expired")
            if round_ != self.round:
                raise ApiError(409, "wrong_round", f"node is at round {self.round}, not {round_}")
            rejected = deliver(
                body["messages"], participant.receive, lambda m: m.sender == participant.index
            )
            try:
                messages = participant.advance()
            except DkgError as exc:
                log.warning("ceremony failed at round %d: %s", self.round, exc)
                return {
                    "phase": Phase.FAILED.value,
                    "error": str(exc),
                    "rejected": rejected,
                    "messages": [],
                }
            self.round += 1
            if participant.phase is Phase.DONE:
                self.participant = None  # over: its round statements now meet no_ceremony
                self._complete(participant)
            return self._answer(participant, messages, rejected)

    def _complete(self, participant: DkgParticipant) -> None:
        keyset, share = participant.keyset, participant.key_share
        assert keyset is not None and share is not None
        chain_id = participant.config.chain_id
        if chain_id in self.secrets.chains:  # refused at start; checked again at the write
            raise ApiError(409, "key_exists", f"this node holds a key of chain {chain_id}")
        body = keyset.to_json(chain_id=chain_id, signatures=participant.keyset_signatures)
        held = ChainShare(participant.index, keyset.epoch, keyset.threshold, share.value, body)
        # The lifecycle as the table says (tkms.dkg.lifecycle): generating, then serving.
        lifecycle_store.apply(
            self.secrets, chain_id, Event.DKG_STARTED, session_id=participant.config.session_id
        )
        lifecycle_store.apply(self.secrets, chain_id, Event.DKG_DONE, epoch=keyset.epoch)
        self.secrets.chains[chain_id] = held
        try:
            self.keystore.save(self.secrets)  # durable before anyone is told "done"
        except OSError:
            del self.secrets.chains[chain_id]
            self.secrets.lifecycle.pop(chain_id, None)
            raise ApiError(503, "state_unavailable", "cannot seal the new share") from None
        self.partials.holdings[chain_id] = holding_from(held)
        log.info(
            "ceremony complete: chain %d epoch %d, index %d",
            chain_id,
            keyset.epoch,
            participant.index,
        )

    def _answer(
        self, participant: DkgParticipant, messages: list[Any], rejected: list[str]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "index": participant.index,
            "phase": participant.phase.value,
            "round": self.round,
            "messages": [m.to_json() for m in messages],
            "rejected": rejected,
        }
        if participant.phase is Phase.DONE and participant.keyset is not None:
            answer["keyset"] = self.secrets.chains[participant.config.chain_id].keyset
            answer["qualified"] = sorted(participant.qualified or ())
        return answer
