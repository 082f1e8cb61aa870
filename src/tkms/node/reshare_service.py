"""The node's side of a reshare over HTTP (docs/dkg.md, "resharing").

Same shape as :mod:`tkms.node.dkg_service`: the admin signs a ``ReshareStart``
naming the old keyset, the dealers and the new committee; the relay carries
the rounds (``DkgStep`` statements over the reshare's session id). A node
takes part as a dealer (it holds a share of the old keyset and is listed as
one), a new member, or both; it checks that the old keyset named is the one it
holds (409 ``keyset_mismatch``), so that no start can make it deal a share of
another key or move its epoch backwards.

The switch is two keystore writes (node/keystore.py): the new share becomes
current while the old one stays for ``grace`` seconds to answer requests that
still name the old epoch; then it is destroyed. A reshare that fails, expires
or is cut by a restart leaves the old epoch serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.dkg import DkgError, DkgMessageError, Phase, parse_keyset
from tkms.dkg.lifecycle import Event, Status
from tkms.dkg.reshare import ReshareParticipant
from tkms.dkg.reshare_config import ReshareConfig
from tkms.node import lifecycle_store as states
from tkms.node.ceremony_metrics import CeremonyRecord
from tkms.node.dkg_service import (
    MAX_LIFETIME,
    DkgService,
    admin_check,
    deliver,
    holding_from,
)
from tkms.node.keystore import ChainShare, NodeSecrets, ReshareRecord, RetiredShare
from tkms.web.errors import ApiError

log = logging.getLogger("tkms.node.reshare")

DEFAULT_GRACE = 60
"""Seconds an old epoch's share keeps answering after the switch (the gateway's switch time)."""

ParticipantFactory = Callable[..., ReshareParticipant]


def _behind(held: ChainShare, config: ReshareConfig, new_index: int | None) -> bool:
    """A node that missed a switch (killed at the wrong instant): same Y, older epoch.

    It cannot deal (its share is of an older polynomial) but may join as a new
    member; its stale share is retired at the switch like any old one.
    """
    same_key = held.keyset.get("publicKey") == to_hex(config.old_keyset.public_key_bytes)
    return same_key and held.epoch < config.old_epoch and new_index is not None


class ReshareService:
    """One reshare at a time per node; it shares the DKG service's keystore and lock."""

    def __init__(self, dkg: DkgService, *, grace: int = DEFAULT_GRACE) -> None:
        self.dkg = dkg
        self.grace = grace
        self.participant: ReshareParticipant | None = None
        self.old_share: ChainShare | None = None
        self.round = 0
        self.started_at = 0.0
        # A seam for adversarial tests (a dealer that cheats runs a subclass).
        self.participant_factory: ParticipantFactory = ReshareParticipant
        self.last: dict[int, CeremonyRecord] = {}
        self._timers: list[threading.Timer] = []

    def __repr__(self) -> str:
        return f"ReshareService(participant={self.participant!r})"

    @property
    def secrets(self) -> NodeSecrets:
        return self.dkg.secrets

    # --- start -------------------------------------------------------------

    def start(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "request body must be a JSON object")
        try:
            config = ReshareConfig.from_json(body.get("config"))
        except DkgMessageError as exc:
            raise ApiError(400, "invalid_reshare", f"config: {exc}") from None
        chain_id = config.chain_id
        if chain_id not in self.dkg.partials.gateways:
            raise ApiError(400, "unknown_chain", f"chain {chain_id} is not configured")
        digest = eip712.digest(
            eip712.dkg_domain(chain_id), eip712.RESHARE_START, config.start_statement()
        )
        admin_check(self.dkg.admin, digest, body.get("authorization"))
        with self.dkg._lock:
            now = self.dkg.clock()
            if config.expires_at <= now:
                raise ApiError(403, "ceremony_expired", "the reshare's start has expired")
            if config.expires_at > now + MAX_LIFETIME:
                raise ApiError(
                    400, "invalid_reshare", f"expiresAt is more than {MAX_LIFETIME} s ahead"
                )
            if config.session_id in self.secrets.sessions:
                raise ApiError(409, "session_seen", "this node has already started this session")
            held = self.secrets.chains.get(chain_id)
            participant = self._participant(config, held)
            self._abort_locked("replaced by a new reshare")
            self.secrets.forget_expired(now)
            self.secrets.sessions[config.session_id] = config.expires_at
            self.secrets.reshares[chain_id] = ReshareRecord(
                config.session_id, config.expires_at, config.old_epoch, config.new_epoch
            )
            before = self.secrets.lifecycle.get(chain_id)
            if held is not None and held.epoch < config.old_epoch:
                states.superseded(self.secrets, chain_id, held.epoch)
            states.apply(
                self.secrets,
                chain_id,
                Event.RESHARE_STARTED,
                epoch=config.new_epoch,
                session_id=config.session_id,
            )
            try:  # durable before this node deals: a replay after a restart is refused
                self.dkg.keystore.save(self.secrets)
            except OSError:
                del self.secrets.sessions[config.session_id]
                del self.secrets.reshares[chain_id]
                if before is None:
                    self.secrets.lifecycle.pop(chain_id, None)
                else:
                    self.secrets.lifecycle[chain_id] = before
                raise ApiError(
                    503, "state_unavailable", "cannot record the session durably"
                ) from None
            messages = participant.start()
            self.participant, self.old_share = participant, held
            self.round, self.started_at = 1, time.monotonic()
        log.info(
            "reshare %s started: old index %s, new index %s",
            config.session_id.hex()[:16],
            participant.old_index,
            participant.new_index,
        )
        return self._answer(participant, messages, [])

    def _participant(self, config: ReshareConfig, held: ChainShare | None) -> ReshareParticipant:
        me = self.dkg.identity.address
        old_index = next((n.index for n in config.old_keyset.nodes if n.signer == me), None)
        new_index = next((m.index for m in config.new_members if m.signer == me), None)
        if held is not None:
            try:
                ours = parse_keyset(held.keyset).keyset.digest(config.chain_id)
            except DkgMessageError:
                ours = b""
            if ours != config.old_keyset_digest and not _behind(held, config, new_index):
                raise ApiError(
                    409,
                    "keyset_mismatch",
                    f"this node holds keyset epoch {held.epoch} of chain {config.chain_id},"
                    " not the one this reshare continues",
                )
            if ours != config.old_keyset_digest:
                old_index = None  # behind: its share is of an older epoch; it only receives
        elif old_index is not None and config.is_dealer(old_index):
            raise ApiError(409, "keyset_mismatch", "this node holds no share of the old keyset")
        dealer = old_index if old_index is not None and config.is_dealer(old_index) else None
        if dealer is None and new_index is None:
            raise ApiError(400, "not_a_member", "this node is neither a dealer nor a new member")
        try:
            return self.participant_factory(
                config,
                self.dkg.identity,
                old_index=dealer,
                old_share=held.share if dealer is not None and held is not None else None,
                new_index=new_index,
            )
        except ValueError:
            raise ApiError(400, "not_a_member", "this node does not match its place") from None

    # --- rounds ------------------------------------------------------------

    def step(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise ApiError(
                400, "invalid_body", "expected {sessionId, round, messages, authorization}"
            )
        with self.dkg._lock:
            participant = self.participant
            if participant is None:
                raise ApiError(409, "no_ceremony", "no reshare in progress")
            try:
                session = parse_hex(body.get("sessionId"), name="sessionId", length=32)
            except EncodingError as exc:
                raise ApiError(400, "invalid_body", str(exc)) from None
            config = participant.config
            if session != config.session_id:
                raise ApiError(409, "wrong_session", "another reshare is in progress")
            round_ = body.get("round")
            if not isinstance(round_, int) or isinstance(round_, bool) or round_ < 0:
                raise ApiError(400, "invalid_body", "round must be a non-negative integer")
            digest = eip712.digest(
                eip712.dkg_domain(config.chain_id),
                eip712.DKG_STEP,
                {"sessionId": session, "round": round_},
            )
            admin_check(self.dkg.admin, digest, body.get("authorization"))
            if config.expires_at <= self.dkg.clock():
                self._abort_locked("expired")
                raise ApiError(403, "ceremony_expired", "the reshare has expired")
            if round_ != self.round:
                raise ApiError(409, "wrong_round", f"node is at round {self.round}, not {round_}")
            rejected = deliver(body["messages"], participant.receive, participant.is_own)
            try:
                messages = participant.advance()
            except DkgError as exc:
                log.warning("reshare failed at round %d: %s", self.round, exc)
                self._abort_locked(str(exc))
                return {
                    "phase": Phase.FAILED.value,
                    "error": str(exc),
                    "rejected": rejected,
                    "messages": [],
                }
            self.round += 1
            if participant.phase is Phase.DONE:
                self._switch(participant)
                self.participant = None
            return self._answer(participant, messages, rejected)

    def _abort_locked(self, why: str) -> None:
        """Epoch e keeps serving: drop the reshare's record and state (best effort on disk)."""
        participant = self.participant
        self.participant = None
        if participant is None:
            return
        chain_id = participant.config.chain_id
        self._record(participant, "failed")
        self.secrets.reshares.pop(chain_id, None)
        if states.load(self.secrets, chain_id).status is Status.RESHARING:
            states.apply(self.secrets, chain_id, Event.RESHARE_FAILED)
        states.reconcile(self.secrets, chain_id)
        try:
            self.dkg.keystore.save(self.secrets)
        except OSError:
            log.warning("reshare aborted but not recorded; a restart aborts it again")
        log.info("reshare %s aborted: %s", participant.config.session_id.hex()[:16], why)

    def _switch(self, participant: ReshareParticipant) -> None:
        """Write 1: the new share current, the old one retired; write 2 (later): destroy it."""
        config = participant.config
        chain_id = config.chain_id
        secrets = self.secrets
        snapshot = secrets.to_json()  # what memory goes back to if the write fails
        old = secrets.chains.get(chain_id)
        destroy_at = int(self.dkg.clock()) + self.grace
        keyset, share = participant.keyset, participant.key_share
        new: ChainShare | None = None
        if participant.is_receiver:
            assert keyset is not None and share is not None
            body = keyset.to_json(chain_id=chain_id, signatures=participant.keyset_signatures)
            new = ChainShare(participant.index, keyset.epoch, keyset.threshold, share.value, body)
        if old is not None:
            secrets.retired.setdefault(chain_id, {})[old.epoch] = RetiredShare(old, destroy_at)
        if new is not None:
            secrets.chains[chain_id] = new
            states.apply(secrets, chain_id, Event.RESHARE_DONE, epoch=new.epoch)
        else:
            secrets.chains.pop(chain_id, None)
            states.apply(secrets, chain_id, Event.LEFT)
        secrets.reshares.pop(chain_id, None)
        try:
            self.dkg.keystore.save(secrets)  # the switch: one atomic write
        except OSError:
            # Nothing switched on disk: memory goes back as it was, epoch e serves on.
            restored = NodeSecrets.from_json(snapshot)
            secrets.chains, secrets.retired = restored.chains, restored.retired
            secrets.lifecycle, secrets.reshares = restored.lifecycle, restored.reshares
            raise ApiError(503, "state_unavailable", "cannot seal the new share") from None
        partials = self.dkg.partials
        if old is not None:
            partials.previous.setdefault(chain_id, {})[old.epoch] = holding_from(old)
        if new is not None:
            partials.holdings[chain_id] = holding_from(new)
        else:
            partials.holdings.pop(chain_id, None)
        self._record(participant, "done")
        log.info("reshare complete: chain %d epoch %d", chain_id, config.new_epoch)
        self._schedule_locked()

    def schedule_destruction(self) -> None:
        """Destroy every retired share whose time has come, now or at its time."""
        with self.dkg._lock:
            self._schedule_locked()

    def _schedule_locked(self) -> None:
        now = self.dkg.clock()
        if self.secrets.due_for_destruction(now):
            self._destroy_locked()
        times = [r.destroy_at for held in self.secrets.retired.values() for r in held.values()]
        if times:
            timer = threading.Timer(max(0.0, min(times) - now) + 0.05, self.destroy_due)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)

    def destroy_due(self) -> None:
        with self.dkg._lock:
            self._destroy_locked()

    def _destroy_locked(self) -> None:
        snapshot = self.secrets.to_json()
        gone = self.secrets.destroy_due(self.dkg.clock())
        if not gone:
            return
        try:
            self.dkg.keystore.save(self.secrets)  # write 2: the old share is gone
        except OSError:
            self.secrets.retired = NodeSecrets.from_json(snapshot).retired
            log.warning("could not destroy retired shares yet; retried at the next write")
            return
        for chain_id, epoch in gone:
            self.dkg.partials.previous.get(chain_id, {}).pop(epoch, None)
            log.info("chain %d: the share of epoch %d is destroyed", chain_id, epoch)

    def _record(self, participant: ReshareParticipant, outcome: str) -> None:
        self.last[participant.config.chain_id] = CeremonyRecord(
            kind="reshare",
            outcome=outcome,
            seconds=time.monotonic() - self.started_at,
            complaints=len(participant.complained_about),
            disqualified=len(participant.disqualified),
        )

    def _answer(
        self, participant: ReshareParticipant, messages: list[Any], rejected: list[str]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "index": participant.index,
            "oldIndex": participant.old_index,
            "newIndex": participant.new_index,
            "phase": participant.phase.value,
            "round": self.round,
            "messages": [m.to_json() for m in messages],
            "rejected": rejected,
        }
        if participant.phase is Phase.DONE and participant.keyset is not None:
            answer["keyset"] = participant.keyset.to_json(
                chain_id=participant.config.chain_id, signatures=participant.keyset_signatures
            )
            answer["qualified"] = sorted(participant.qualified or ())
            answer["disqualified"] = list(participant.disqualified)
        return answer
