"""The lifecycle status a node records per chain key, as the keystore keeps it.

The statuses and their allowed transitions are those of docs/dkg.md
("lifecycle"): fresh → generating → serving e → resharing e → serving e+1,
left, or failed; epochs only go up. The node writes the JSON form
``{"status", "epoch"}`` next to the shares, so that a restart knows where it
stood; a reshare in progress at a restart is aborted (:func:`on_restart`).
"""

from __future__ import annotations

from typing import Any

from tkms.node.keystore import ChainShare, NodeSecrets

FRESH = "fresh"
GENERATING = "generating"
SERVING = "serving"
RESHARING = "resharing"
LEFT = "left"
FAILED = "failed"
STATUSES = (FRESH, GENERATING, SERVING, RESHARING, LEFT, FAILED)


def state(status: str, epoch: int | None) -> dict[str, Any]:
    return {"status": status, "epoch": epoch}


def serving(epoch: int) -> dict[str, Any]:
    return state(SERVING, epoch)


def resharing(epoch: int) -> dict[str, Any]:
    return state(RESHARING, epoch)


def left(epoch: int) -> dict[str, Any]:
    return state(LEFT, epoch)


def after_abort(held: ChainShare | None) -> dict[str, Any]:
    """An aborted reshare: the share held serves on; a joiner with none is fresh again."""
    return serving(held.epoch) if held is not None else state(FRESH, None)


def put(secrets: NodeSecrets, chain_id: int, value: dict[str, Any] | None) -> None:
    if value is None:
        secrets.lifecycle.pop(chain_id, None)
    else:
        secrets.lifecycle[chain_id] = value


def status_of(secrets: NodeSecrets, chain_id: int) -> dict[str, Any]:
    """The recorded state, or the one a v1 keystore implies (a share: serving its epoch)."""
    recorded = secrets.lifecycle.get(chain_id)
    if recorded is not None:
        return recorded
    return after_abort(secrets.chains.get(chain_id))


def on_restart(secrets: NodeSecrets, now: float) -> bool:
    """Abort every reshare cut by the restart; destroy due shares. True if anything changed."""
    changed = bool(secrets.reshares)
    for chain_id in list(secrets.reshares):
        del secrets.reshares[chain_id]
        put(secrets, chain_id, after_abort(secrets.chains.get(chain_id)))
    for chain_id, value in list(secrets.lifecycle.items()):
        if value.get("status") == GENERATING and chain_id not in secrets.chains:
            put(secrets, chain_id, state(FRESH, None))  # a DKG cut by the restart
            changed = True
    return bool(secrets.destroy_due(now)) or changed
