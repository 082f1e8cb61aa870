"""``tkms devnet reshare --nodes N --threshold T``: the running devnet's key to N nodes.

Carried out inside the devnet process (a control request, devnet/control.py):
it starts the nodes the new committee adds (node i for i up to N; a new node
takes a free port, since the ports after the old ones are anvil's), reshares
the key from the nodes that hold it to nodes 1..N (same public key, so
``kmsPublicKey()`` on chain stays as it is), writes the new ``devnet.json``,
restarts the gateway with the new committee once it has learnt the new epoch,
and stops the nodes that left.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import httpx

from tkms.client.errors import CeremonyError
from tkms.client.relay import Committee, CommitteeNode
from tkms.client.reshare_relay import run_reshare
from tkms.devnet.chain import DevnetChain
from tkms.devnet.gateway import gateway_env, with_gateway
from tkms.devnet.keys import KeyDir
from tkms.devnet.manifest import DevnetManifest
from tkms.devnet.processes import free_port
from tkms.devnet.threshold import threshold_manifest
from tkms.envconfig import ConfigError


class Devnet(Protocol):
    """What a reshare needs of the running devnet (devnet/run.py's ``Devnet``), named here
    so that this module does not import run.py, which dispatches to it."""

    state_dir: Path
    base_port: int
    acl: str
    keys: KeyDir
    members: dict[str, Any]

    def add(self, target: str, args: list[str], env: dict[str, str], port: int) -> Any: ...
    def threshold_env(self, i: int, port: int) -> dict[str, str]: ...
    def url(self, offset: int) -> str: ...
    def linked(self) -> DevnetChain: ...


def parse_shape(target: str) -> tuple[int, int]:
    """``"N/T"`` → (N, T); ConfigError unless 2 ≤ N ≤ 64 and 1 ≤ T ≤ N."""
    try:
        nodes, threshold = (int(part) for part in target.split("/"))
    except ValueError:
        raise ConfigError(f"a reshare names nodes/threshold, not {target!r}") from None
    if not 2 <= nodes <= 64 or not 1 <= threshold <= nodes:
        raise ConfigError("--nodes must lie in [2, 64] and --threshold in [1, nodes]")
    return nodes, threshold


def reshare_devnet(devnet: Devnet, target: str) -> tuple[bool, str]:
    try:
        nodes, threshold = parse_shape(target)
        return True, _reshare(devnet, nodes, threshold)
    except (ConfigError, CeremonyError) as exc:
        return False, f"reshare failed, the old epoch serves on: {exc}"


def _reshare(devnet: Devnet, nodes: int, threshold: int) -> str:
    manifest = DevnetManifest.in_state_dir(devnet.state_dir)
    if manifest is None or len(manifest.nodes) < 2:
        raise ConfigError("only a threshold devnet reshares (start it with --nodes 2 or more)")
    old = {n.index: n.url for n in manifest.nodes}
    for i in range(1, nodes + 1):
        if i not in old:
            port = free_port()
            member = devnet.add(str(i), ["node"], devnet.threshold_env(i, port), port)
            _wait(member.started().url)
    urls = {
        i: (old[i] if i in old else devnet.members[str(i)].started().url)
        for i in range(1, nodes + 1)
    }
    chain_id = manifest.chain_id
    outcome = run_reshare(
        Committee(chain_id, tuple(CommitteeNode(i, u) for i, u in sorted(old.items()))),
        Committee(chain_id, tuple(CommitteeNode(i, u) for i, u in sorted(urls.items()))),
        devnet.keys.wallet("admin"),
        threshold,
        trusted=bytes.fromhex(manifest.public_key.removeprefix("0x")),
    )
    if outcome.keyset is None:
        detail = "; ".join(f"{outcome.urls.get(k, k)}: {e}" for k, e in outcome.errors.items())
        raise ConfigError(detail or "no keyset")
    epoch = int(outcome.keyset["epoch"])
    new = threshold_manifest(devnet.keys, urls, chain_id, outcome.keyset)
    new = with_gateway(new, devnet.keys, devnet.url(0), devnet.linked(), devnet.acl)
    gateway = devnet.members.get("gateway")
    if gateway is not None:
        _wait_epoch(gateway.started().url, chain_id, epoch)  # it served through the switch
        gateway.stopped = True
        gateway.started().stop()
        gateway.env = gateway_env(devnet.keys, devnet.state_dir, devnet.base_port, new)
        gateway.start()
        _wait(gateway.started().url)
    new.write(devnet.state_dir)
    left = sorted(i for i in old if i > nodes)
    for i in left:
        member = devnet.members[str(i)]
        member.stopped = True
        member.started().stop()
    return f"reshared to {nodes} nodes, threshold {threshold}: epoch {epoch}, same public key" + (
        f"; nodes {left} left and were stopped" if left else ""
    )


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"{url} was not healthy within {timeout:.0f} s")


def _wait_epoch(url: str, chain_id: int, epoch: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url + "/v1/keyset", params={"chain_id": str(chain_id)}).json()
            if body.get("epoch") == epoch:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
