"""A node's lifecycle state per chain key (tkms.dkg.lifecycle), kept in its keystore.

The keystore stores :meth:`KeyLifecycle.to_json` next to the chain's shares;
a keystore written before lifecycles existed implies one (a share held:
serving its epoch; none: fresh). Every change goes through the table of
:mod:`tkms.dkg.lifecycle`: a transition it does not allow is refused
(409 ``invalid_transition``) before anything is dealt.
"""

from __future__ import annotations

from tkms.dkg.errors import DkgMessageError
from tkms.dkg.lifecycle import Event, KeyLifecycle, LifecycleError, Status
from tkms.node.keystore import NodeSecrets
from tkms.web.errors import ApiError

STATUSES = tuple(s.value for s in Status)


def load(secrets: NodeSecrets, chain_id: int) -> KeyLifecycle:
    recorded = secrets.lifecycle.get(chain_id)
    if recorded is not None:
        try:
            return KeyLifecycle.from_json(recorded)
        except DkgMessageError:
            pass  # sealed, so ours: an older layout; the shares held say where we stand
    held = secrets.chains.get(chain_id)
    if held is not None:
        return KeyLifecycle(Status.SERVING, held.epoch, last_epoch=held.epoch)
    return KeyLifecycle()


def store(secrets: NodeSecrets, chain_id: int, state: KeyLifecycle) -> None:
    secrets.lifecycle[chain_id] = state.to_json()


def apply(
    secrets: NodeSecrets,
    chain_id: int,
    event: Event,
    *,
    epoch: int | None = None,
    session_id: bytes | None = None,
) -> KeyLifecycle:
    """The next state (in memory; the caller saves the keystore), or a 409."""
    try:
        state = load(secrets, chain_id).apply(event, epoch=epoch, session_id=session_id)
    except LifecycleError as exc:
        raise ApiError(409, "invalid_transition", str(exc)) from None
    store(secrets, chain_id, state)
    return state


def superseded(secrets: NodeSecrets, chain_id: int, epoch: int) -> None:
    """A node whose epoch-``epoch`` share was superseded by a switch it missed: it has,
    in effect, left that committee (the table then lets it rejoin by a reshare)."""
    store(secrets, chain_id, KeyLifecycle(Status.LEFT, last_epoch=epoch))


def reconcile(secrets: NodeSecrets, chain_id: int) -> None:
    """After an abort: a node that still holds a share serves its epoch."""
    held = secrets.chains.get(chain_id)
    state = load(secrets, chain_id)
    if held is not None and state.status is not Status.SERVING and not state.in_progress:
        store(secrets, chain_id, KeyLifecycle(Status.SERVING, held.epoch, last_epoch=held.epoch))


def status_of(secrets: NodeSecrets, chain_id: int) -> str:
    return load(secrets, chain_id).status.value


def on_restart(secrets: NodeSecrets, now: float) -> bool:
    """Abort every ceremony cut by the restart; destroy due shares. True if anything changed."""
    changed = bool(secrets.reshares)
    secrets.reshares.clear()
    for chain_id in list(secrets.lifecycle):
        state = load(secrets, chain_id)
        after = state.on_restart()
        if after != state:
            store(secrets, chain_id, after)
            reconcile(secrets, chain_id)
            changed = True
    return bool(secrets.destroy_due(now)) or changed
