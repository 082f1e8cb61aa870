"""One chain key's lifecycle on one node, above any single ceremony (drand's DKG states).

    fresh ──dkg_started──▶ generating ──dkg_done(e)──▶ serving e
      │                        └──dkg_failed──▶ failed ──dkg_started──▶ generating
      ├──import──▶ serving 0 (a 1-of-1 imported key; its first reshare makes epoch 1)
      └──reshare_started(e+1)──▶ resharing (a node joining; also from left or failed)
    serving e ──reshare_started(e+1)──▶ resharing e→e+1 ──reshare_done(e+1)──▶ serving e+1
                                                        ├──reshare_failed──▶ serving e
                                                        └──left──▶ left (it dealt, holds no share)

The transitions are the table :data:`TRANSITIONS`; anything else raises
:class:`LifecycleError`. Epochs only go up. A reshare remembers the state it
started from, and a failed or aborted one returns there: a node serving ``e``
keeps serving ``e`` (drand#752), a joiner goes back to ``fresh`` (or ``left``).
A ceremony's secrets live only in memory, so :meth:`KeyLifecycle.on_restart`
aborts one in progress: a DKG back to ``fresh``, a reshare back to where it
started. The node persists :meth:`~KeyLifecycle.to_json` with its keystore.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from tkms.crypto.encoding import to_hex
from tkms.dkg import wire
from tkms.dkg.errors import DkgError, DkgMessageError
from tkms.dkg.reshare_config import IMPORT_EPOCH


class Status(StrEnum):
    FRESH = "fresh"
    GENERATING = "generating"
    SERVING = "serving"
    RESHARING = "resharing"
    LEFT = "left"
    FAILED = "failed"


class Event(StrEnum):
    DKG_STARTED = "dkg_started"
    DKG_DONE = "dkg_done"
    DKG_FAILED = "dkg_failed"
    RESHARE_STARTED = "reshare_started"
    RESHARE_DONE = "reshare_done"
    RESHARE_FAILED = "reshare_failed"
    LEFT = "left"
    IMPORT = "import"


S, E = Status, Event
TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (S.FRESH, E.DKG_STARTED): S.GENERATING,
    (S.FAILED, E.DKG_STARTED): S.GENERATING,
    (S.GENERATING, E.DKG_DONE): S.SERVING,
    (S.GENERATING, E.DKG_FAILED): S.FAILED,
    (S.FRESH, E.IMPORT): S.SERVING,
    (S.FAILED, E.IMPORT): S.SERVING,
    (S.SERVING, E.RESHARE_STARTED): S.RESHARING,
    (S.FRESH, E.RESHARE_STARTED): S.RESHARING,
    (S.LEFT, E.RESHARE_STARTED): S.RESHARING,
    (S.FAILED, E.RESHARE_STARTED): S.RESHARING,
    (S.RESHARING, E.RESHARE_DONE): S.SERVING,
    (S.RESHARING, E.RESHARE_FAILED): S.SERVING,  # a joiner returns to ``prior`` instead
    (S.RESHARING, E.LEFT): S.LEFT,
}
"""(status, event) → status; a reshare's failure returns to the status it started from."""

# The events that start or end a ceremony carry a session id / an epoch.
_NEEDS_SESSION = {E.DKG_STARTED, E.RESHARE_STARTED}
_NEEDS_EPOCH = {E.DKG_DONE, E.RESHARE_STARTED, E.RESHARE_DONE}


class LifecycleError(DkgError):
    """A transition the table does not allow, or an epoch that does not go up."""


@dataclass(frozen=True)
class KeyLifecycle:
    """The state of one chain key: ``epoch`` is the one held (None before any), never lower.

    While a ceremony runs, ``session_id`` names it; while resharing,
    ``target_epoch`` is the epoch it makes and ``prior`` the status to return to.
    """

    status: Status = Status.FRESH
    epoch: int | None = None
    session_id: bytes | None = None
    target_epoch: int | None = None
    prior: Status | None = None
    last_epoch: int | None = None
    """The highest epoch this node ever held, kept after it leaves: a rejoin must go above it."""

    def apply(
        self, event: Event, *, epoch: int | None = None, session_id: bytes | None = None
    ) -> KeyLifecycle:
        """The state after ``event``; raises :class:`LifecycleError` if it is not allowed.

        ``dkg_started`` and ``reshare_started`` take the ceremony's
        ``session_id``; ``dkg_done`` its epoch; ``reshare_started`` and
        ``reshare_done`` the new epoch (which must be the one started).
        """
        target = TRANSITIONS.get((self.status, event))
        if target is None:
            raise LifecycleError(f"{event.value} is not allowed while {self.status.value}")
        if (event in _NEEDS_SESSION) != (session_id is not None):
            raise LifecycleError(f"{event.value} takes a session id, and only it does")
        if session_id is not None and len(session_id) != 32:
            raise LifecycleError("a session id is 32 bytes")
        if (event in _NEEDS_EPOCH) != (epoch is not None):
            raise LifecycleError(f"{event.value} takes an epoch, and only it does")
        if event is E.DKG_STARTED:
            return replace(self, status=target, session_id=session_id)
        if event is E.DKG_DONE:
            assert epoch is not None
            self._check_above(epoch)
            return self._settle(target, epoch)
        if event is E.DKG_FAILED:
            return replace(self, status=target, session_id=None)
        if event is E.IMPORT:
            self._check_above(IMPORT_EPOCH)
            return self._settle(target, IMPORT_EPOCH)
        if event is E.RESHARE_STARTED:
            assert epoch is not None
            if self.status is S.SERVING and self.epoch is not None and epoch != self.epoch + 1:
                raise LifecycleError(
                    f"a reshare of epoch {self.epoch} makes epoch {self.epoch + 1}"
                )
            self._check_above(epoch)
            return replace(
                self, status=target, session_id=session_id, target_epoch=epoch, prior=self.status
            )
        if event is E.RESHARE_DONE:
            if epoch != self.target_epoch:
                raise LifecycleError(f"this reshare makes epoch {self.target_epoch}, not {epoch}")
            assert epoch is not None
            return self._settle(target, epoch)
        if event is E.RESHARE_FAILED:
            return self._abort_reshare()
        # E.LEFT: the dealt share is of no more use; no epoch is held any longer.
        if self.prior is not S.SERVING:
            raise LifecycleError("only a node that served the old epoch can leave")
        return KeyLifecycle(S.LEFT, last_epoch=self.target_epoch)

    def _check_above(self, epoch: int) -> None:
        floor = self.last_epoch
        if epoch < 0 or (floor is not None and epoch <= floor):
            raise LifecycleError(f"epoch {epoch} does not go above epoch {floor}")

    def _settle(self, status: Status, epoch: int) -> KeyLifecycle:
        return KeyLifecycle(status, epoch, last_epoch=epoch)

    def _abort_reshare(self) -> KeyLifecycle:
        prior = self.prior or S.FRESH
        return KeyLifecycle(prior, self.epoch, last_epoch=self.last_epoch)

    def on_restart(self) -> KeyLifecycle:
        """After a restart: a ceremony in progress is aborted (its secrets died with the process).

        ``generating`` goes back to ``fresh``, ``resharing`` to the status it
        started from (``serving e`` keeps serving e); other states are kept.
        """
        if self.status is S.GENERATING:
            return KeyLifecycle(S.FRESH, last_epoch=self.last_epoch)
        if self.status is S.RESHARING:
            return self._abort_reshare()
        return self

    @property
    def in_progress(self) -> bool:
        return self.status in (S.GENERATING, S.RESHARING)

    # --- JSON ------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "epoch": self.epoch,
            "sessionId": None if self.session_id is None else to_hex(self.session_id),
            "targetEpoch": self.target_epoch,
            "prior": None if self.prior is None else self.prior.value,
            "lastEpoch": self.last_epoch,
        }

    @classmethod
    def from_json(cls, data: object) -> KeyLifecycle:
        keys = {"status", "epoch", "sessionId", "targetEpoch", "prior", "lastEpoch"}
        obj = wire.expect_object(data, keys, "lifecycle")
        state = cls(
            status=_status(obj["status"]),
            epoch=_epoch(obj, "epoch"),
            session_id=None if obj["sessionId"] is None else wire.get_hex(obj, "sessionId", 32),
            target_epoch=_epoch(obj, "targetEpoch"),
            prior=None if obj["prior"] is None else _status(obj["prior"]),
            last_epoch=_epoch(obj, "lastEpoch"),
        )
        state.check()
        return state

    def check(self) -> None:
        """The invariants every reachable state keeps; a stored state is checked on load."""
        serving = self.status is S.SERVING
        ok = (
            (self.epoch is not None) == (serving or self.prior is S.SERVING)
            and (self.session_id is not None) == self.in_progress
            and (self.target_epoch is not None) == (self.status is S.RESHARING)
            and (self.prior is not None) == (self.status is S.RESHARING)
            and self.prior not in (S.GENERATING, S.RESHARING)
            and (self.epoch is None or self.last_epoch == self.epoch)
            and (
                self.target_epoch is None
                or self.last_epoch is None
                or self.target_epoch > self.last_epoch
            )
        )
        if not ok:
            raise DkgMessageError("lifecycle: inconsistent state")


def _status(value: object) -> Status:
    if not isinstance(value, str) or value not in Status._value2member_map_:
        raise DkgMessageError("lifecycle: unknown status")
    return Status(value)


def _epoch(obj: Any, key: str) -> int | None:
    if obj[key] is None:
        return None
    return wire.get_int(obj, key, low=0, high=2**256 - 1)
