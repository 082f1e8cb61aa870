"""The per-chain-key lifecycle: its table, epochs that only go up, restarts, its stored form."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.dkg.errors import DkgMessageError
from tkms.dkg.lifecycle import TRANSITIONS, Event, KeyLifecycle, LifecycleError, Status

SID = bytes(range(32))
SID2 = bytes(range(1, 33))


def serving(epoch: int) -> KeyLifecycle:
    return (
        KeyLifecycle().apply(Event.DKG_STARTED, session_id=SID).apply(Event.DKG_DONE, epoch=epoch)
    )


def resharing(epoch: int) -> KeyLifecycle:
    return serving(epoch).apply(Event.RESHARE_STARTED, epoch=epoch + 1, session_id=SID2)


def joining() -> KeyLifecycle:
    return KeyLifecycle().apply(Event.RESHARE_STARTED, epoch=2, session_id=SID2)


# One reachable state per status, and the arguments each event takes from it.
STATES = {
    Status.FRESH: KeyLifecycle(),
    Status.GENERATING: KeyLifecycle().apply(Event.DKG_STARTED, session_id=SID),
    Status.SERVING: serving(1),
    Status.RESHARING: resharing(1),
    Status.LEFT: resharing(1).apply(Event.LEFT),
    Status.FAILED: KeyLifecycle().apply(Event.DKG_STARTED, session_id=SID).apply(Event.DKG_FAILED),
}


def args(state: KeyLifecycle, event: Event) -> dict[str, object]:
    if event in (Event.DKG_STARTED,):
        return {"session_id": SID}
    if event is Event.RESHARE_STARTED:
        base = state.epoch if state.epoch is not None else (state.last_epoch or 0)
        return {"epoch": base + 1, "session_id": SID2}
    if event is Event.DKG_DONE:
        return {"epoch": 1}
    if event is Event.RESHARE_DONE:
        return {"epoch": state.target_epoch}
    return {}


@pytest.mark.parametrize(("status", "event"), sorted(TRANSITIONS))
def test_every_allowed_transition(status: Status, event: Event) -> None:
    state = STATES[status]
    after = state.apply(event, **args(state, event))  # type: ignore[arg-type]
    assert after.status is TRANSITIONS[(status, event)]
    after.check()
    assert KeyLifecycle.from_json(json.loads(json.dumps(after.to_json()))) == after


DISALLOWED = [pair for pair in itertools.product(Status, Event) if pair not in TRANSITIONS]


@pytest.mark.parametrize(("status", "event"), DISALLOWED)
def test_every_other_transition_is_refused(status: Status, event: Event) -> None:
    state = STATES[status]
    with pytest.raises(LifecycleError, match="not allowed"):
        state.apply(event, **args(state, event))  # type: ignore[arg-type]


def test_a_dkg_never_replaces_a_served_key() -> None:
    with pytest.raises(LifecycleError):
        serving(1).apply(Event.DKG_STARTED, session_id=SID)


def test_reshare_moves_epoch_up_by_one() -> None:
    state = resharing(1)
    assert (state.status, state.epoch, state.target_epoch, state.prior) == (
        Status.RESHARING,
        1,
        2,
        Status.SERVING,
    )
    done = state.apply(Event.RESHARE_DONE, epoch=2)
    assert (done.status, done.epoch, done.session_id) == (Status.SERVING, 2, None)
    with pytest.raises(LifecycleError):
        serving(3).apply(Event.RESHARE_STARTED, epoch=5, session_id=SID2)
    with pytest.raises(LifecycleError):
        resharing(1).apply(Event.RESHARE_DONE, epoch=3)


def test_failed_reshare_keeps_serving_the_old_epoch() -> None:
    after = resharing(4).apply(Event.RESHARE_FAILED)
    assert after == serving(4)
    assert joining().apply(Event.RESHARE_FAILED) == KeyLifecycle()


def test_import_serves_epoch_zero_and_reshares_to_one() -> None:
    imported = KeyLifecycle().apply(Event.IMPORT)
    assert (imported.status, imported.epoch) == (Status.SERVING, 0)
    next_ = imported.apply(Event.RESHARE_STARTED, epoch=1, session_id=SID2)
    assert next_.apply(Event.RESHARE_DONE, epoch=1).epoch == 1


def test_a_leaver_may_only_rejoin_above_its_last_epoch() -> None:
    left = resharing(1).apply(Event.LEFT)
    assert (left.status, left.epoch, left.last_epoch) == (Status.LEFT, None, 2)
    with pytest.raises(LifecycleError, match="does not go above"):
        left.apply(Event.RESHARE_STARTED, epoch=2, session_id=SID2)
    back = left.apply(Event.RESHARE_STARTED, epoch=3, session_id=SID2)
    assert back.apply(Event.RESHARE_FAILED) == left
    assert back.apply(Event.RESHARE_DONE, epoch=3).epoch == 3
    with pytest.raises(LifecycleError, match="only a node that served"):
        joining().apply(Event.LEFT)


def test_events_take_exactly_their_arguments() -> None:
    with pytest.raises(LifecycleError, match="session id"):
        KeyLifecycle().apply(Event.DKG_STARTED)
    with pytest.raises(LifecycleError, match="epoch"):
        STATES[Status.GENERATING].apply(Event.DKG_DONE)
    with pytest.raises(LifecycleError, match="epoch"):
        STATES[Status.GENERATING].apply(Event.DKG_FAILED, epoch=1)
    with pytest.raises(LifecycleError, match="32 bytes"):
        KeyLifecycle().apply(Event.DKG_STARTED, session_id=b"short")


def test_restart_aborts_a_ceremony_in_progress() -> None:
    assert STATES[Status.GENERATING].on_restart() == KeyLifecycle()
    assert resharing(7).on_restart() == serving(7)
    assert joining().on_restart() == KeyLifecycle()
    for status in (Status.FRESH, Status.SERVING, Status.LEFT, Status.FAILED):
        assert STATES[status].on_restart() == STATES[status]


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {**serving(1).to_json(), "status": "dancing"},
        {**serving(1).to_json(), "epoch": None},
        {**serving(1).to_json(), "epoch": -1},
        {**serving(1).to_json(), "sessionId": "0x" + "00" * 32},
        {**resharing(1).to_json(), "targetEpoch": 1},
        {**resharing(1).to_json(), "prior": "resharing"},
        {**serving(1).to_json(), "extra": 1},
    ],
)
def test_a_stored_state_that_could_not_be_reached_is_refused(body: object) -> None:
    with pytest.raises(DkgMessageError):
        KeyLifecycle.from_json(body)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Event)), max_size=30))
def test_random_walks_keep_epochs_rising(events: list[Event]) -> None:
    state = KeyLifecycle()
    highest = -1
    for event in events:
        try:
            state = state.apply(event, **args(state, event))  # type: ignore[arg-type]
        except LifecycleError:
            continue
        state.check()
        if state.last_epoch is not None:
            assert state.last_epoch >= highest
            highest = state.last_epoch
        assert KeyLifecycle.from_json(state.to_json()) == state
        assert state.on_restart().in_progress is False
