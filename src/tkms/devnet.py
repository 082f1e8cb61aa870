"""A local devnet: KMS node processes on loopback with dev keys, kept in a state dir.

``--nodes 1`` runs one nox-compatible node holding the whole key (v0).
Otherwise ``n`` nodes create the key together by a DKG ceremony (shown with a
progress display) and serve v1 partial delegations, behind a Handle Gateway
on the base port (:mod:`tkms.devnet_gateway`). Restarted on the same
state directory it reuses its keys and shares instead of a new ceremony. It
writes ``devnet.json`` so that tools and tests find everything, prints how to
use it, and stops every process it started on SIGINT/SIGTERM.

Every secret it makes (wallet, sealing, admin, user keys) is a 0600 file in
``keys/`` (0700); ``devnet.json`` names those files (absolute paths) and holds
no key itself. The node and gateway directories are 0700, the gateway's
SQLite files 0600.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console

from tkms.client.ceremony import Committee, CommitteeNode, run_ceremony
from tkms.crypto import curve
from tkms.crypto.wallet import Wallet, address_hex
from tkms.devnet_gateway import gateway_env, gateway_manifest, print_gateway, print_story
from tkms.devnet_single import print_single_node, single_manifest, single_node_env
from tkms.envconfig import ConfigError, check_directory
from tkms.keyfiles import private_dir, read_hex, write_hex, write_private

MANIFEST = "devnet.json"


class KeyDir:
    """Dev keys under ``state/keys``, made on first use and reused afterwards."""

    def __init__(self, state_dir: Path) -> None:
        self.path = private_dir(state_dir / "keys")

    def file(self, name: str) -> Path:
        path = self.path / f"{name}.key"
        if not path.exists():
            write_hex(path, curve.scalar_to_bytes(curve.random_scalar()))
        return path.resolve()

    def wallet(self, name: str) -> Wallet:
        return Wallet(read_hex(self.file(name)))


def prepare_state_dir(state_dir: Path) -> None:
    """The state directory, or the one-line error of ``--state-dir``."""
    try:
        check_directory(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
    except ValueError as exc:
        raise ConfigError(f"--state-dir: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--state-dir: cannot create {state_dir}: {exc.strerror}") from None


def write_manifest(state_dir: Path, manifest: dict[str, Any]) -> None:
    """devnet.json: no key in it (only key files), 0600 all the same, written atomically."""
    write_private(state_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"the process serving {url} exited with code {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ConfigError(f"{url} did not become healthy within {timeout:.0f} s")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    full.update(env)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tkms", *args], env=full, stdout=out, stderr=subprocess.STDOUT
        )


def threshold_node_env(
    keys: KeyDir, state_dir: Path, index: int, port: int, chain_id: int
) -> dict[str, str]:
    return {
        "TKMS_NODE_WALLET_KEY_FILE": str(keys.file(f"node{index}-wallet")),
        "TKMS_NODE_SEALING_KEY_FILE": str(keys.file(f"node{index}-sealing")),
        "TKMS_NODE_STATE_DIR": str(private_dir(state_dir / f"node{index}").resolve()),
        "TKMS_NODE_DKG_ADMIN_ADDRESS": address_hex(keys.wallet("admin").address),
        f"TKMS_NODE_CHAINS__{chain_id}__GATEWAY_ADDRESS": address_hex(
            keys.wallet("gateway-wallet").address
        ),
        "TKMS_NODE_SERVER__HOST": "127.0.0.1",
        "TKMS_NODE_SERVER__PORT": str(port),
        "TKMS_NODE_SERVICE_NAME": f"tkms-node-{index}",
    }


def existing_keyset(urls: dict[int, str], chain_id: int) -> dict[str, Any] | None:
    """The keyset every node already serves, if they all serve the same one."""
    bodies = []
    for url in urls.values():
        response = httpx.get(f"{url}/v1/keyset", params={"chain_id": str(chain_id)}, timeout=5)
        if response.status_code != 200:
            return None
        bodies.append(response.json())
    if len({json.dumps(b, sort_keys=True) for b in bodies}) != 1:
        return None
    keyset: dict[str, Any] = bodies[0]
    return keyset


def run_devnet(
    *,
    state_dir: Path,
    base_port: int,
    chain_id: int,
    nodes: int,
    threshold: int,
    console: Console,
) -> None:
    if not 1 <= threshold <= nodes:
        raise ConfigError(f"--threshold must lie in [1, {nodes}]")
    prepare_state_dir(state_dir)
    keys = KeyDir(state_dir)
    logs = state_dir / "logs"
    logs.mkdir(exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        if nodes == 1:
            url = f"http://127.0.0.1:{base_port + 1}"
            process = spawn(
                ["node"], single_node_env(keys, base_port + 1, chain_id), logs / "node1.log"
            )
            processes.append(process)
            wait_healthy(url, process)
            manifest = single_manifest(keys, url, chain_id)
            processes.append(start_gateway(keys, state_dir, base_port, manifest, logs))
            print_single_node(state_dir, keys, manifest, console)
            print_story(state_dir, console)
        else:
            urls = {i: f"http://127.0.0.1:{base_port + i}" for i in range(1, nodes + 1)}
            for i in urls:
                env = threshold_node_env(keys, state_dir, i, base_port + i, chain_id)
                processes.append(spawn(["node"], env, logs / f"node{i}.log"))
            for i, url in urls.items():
                wait_healthy(url, processes[i - 1])
            keyset = existing_keyset(urls, chain_id)
            if keyset is None or keyset.get("threshold") != threshold:
                keyset = ceremony(urls, keys, chain_id, threshold, console)
            else:
                console.print("reusing the key shares of the previous run")
            manifest = {
                "chainId": chain_id,
                "threshold": threshold,
                "publicKey": keyset["publicKey"],
                "gatewayKeyFile": str(keys.file("gateway-wallet")),
                "nodes": [
                    {
                        "index": i,
                        "url": url,
                        "signer": address_hex(keys.wallet(f"node{i}-wallet").address),
                    }
                    for i, url in urls.items()
                ],
            }
            processes.append(start_gateway(keys, state_dir, base_port, manifest, logs))
            print_threshold(state_dir, manifest, console)
        console.print("\nCtrl-C stops the devnet.")
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        dead = [i + 1 for i, p in enumerate(processes) if p.poll() is not None]
        raise ConfigError(f"devnet process(es) {dead} exited; logs in {logs}")
    except KeyboardInterrupt:
        console.print("stopping devnet")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_gateway(
    keys: KeyDir, state_dir: Path, port: int, manifest: dict[str, Any], logs: Path
) -> subprocess.Popen[bytes]:
    """The gateway on the base port; completes and writes devnet.json once it is up."""
    url = f"http://127.0.0.1:{port}"
    manifest.update(gateway_manifest(keys, url))
    gateway = spawn(["gateway"], gateway_env(keys, state_dir, port, manifest), logs / "gateway.log")
    wait_healthy(url, gateway)
    write_manifest(state_dir, manifest)
    return gateway


def ceremony(
    urls: dict[int, str], keys: KeyDir, chain_id: int, threshold: int, console: Console
) -> dict[str, Any]:
    from tkms.ui import ceremony_progress

    committee = Committee(chain_id, tuple(CommitteeNode(i, u) for i, u in urls.items()))
    console.print(f"key generation: {len(urls)} nodes, threshold {threshold}")
    with ceremony_progress(console) as progress:
        outcome = run_ceremony(committee, keys.wallet("admin"), threshold, progress=progress)
    if outcome.keyset is None:
        detail = "; ".join(f"node {i}: {e}" for i, e in sorted(outcome.errors.items()))
        raise ConfigError(f"the key generation failed: {detail}")
    return outcome.keyset


def print_threshold(state_dir: Path, manifest: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold green]tkms devnet up[/] (state in {state_dir}/): "
        f"{len(manifest['nodes'])} nodes, threshold {manifest['threshold']}"
    )
    for node in manifest["nodes"]:
        console.print(f"  node {node['index']}  {node['url']}  signer {node['signer']}")
    console.print(f"  KMS public key  {manifest['publicKey']}")
    if "gateway" in manifest:
        print_gateway(state_dir, manifest, console)
    console.print(f"  manifest        {state_dir / MANIFEST}")
    console.print("\nTry it (in another shell, from this directory):", highlight=False)
    console.print(
        f"  curl -sS '{manifest['nodes'][0]['url']}/v1/keyset?chain_id={manifest['chainId']}'",
        highlight=False,
    )
    console.print(
        f"  .venv/bin/tkms delegate --devnet {state_dir / MANIFEST}",
        highlight=False,
    )
    if "gateway" in manifest:
        print_story(state_dir, console)
