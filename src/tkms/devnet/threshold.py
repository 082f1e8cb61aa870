"""The threshold devnet: n nodes that create the KMS key together by a DKG ceremony."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from tkms.client.relay import Committee, CommitteeNode, run_ceremony
from tkms.crypto.wallet import address_hex
from tkms.devnet.gateway import print_gateway, print_story
from tkms.devnet.keys import KeyDir
from tkms.devnet.manifest import FILE_NAME, DevnetManifest, ManifestNode
from tkms.envconfig import ConfigError
from tkms.keyfiles import private_dir


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


def keyset_of(
    urls: dict[int, str], keys: KeyDir, chain_id: int, threshold: int, console: Console
) -> dict[str, Any]:
    """The keyset the nodes already share, or a new one from a ceremony."""
    keyset = existing_keyset(urls, chain_id)
    if keyset is None or keyset.get("threshold") != threshold:
        return ceremony(urls, keys, chain_id, threshold, console)
    console.print("reusing the key shares of the previous run")
    return keyset


def threshold_manifest(
    keys: KeyDir, urls: dict[int, str], chain_id: int, keyset: dict[str, Any]
) -> DevnetManifest:
    return DevnetManifest(
        chain_id=chain_id,
        threshold=int(keyset["threshold"]),
        public_key=str(keyset["publicKey"]),
        gateway_key_file=keys.file("gateway-wallet"),
        nodes=tuple(
            ManifestNode(i, url, address_hex(keys.wallet(f"node{i}-wallet").address))
            for i, url in urls.items()
        ),
    )


def print_threshold(state_dir: Path, manifest: DevnetManifest, console: Console) -> None:
    console.print(
        f"[bold green]tkms devnet up[/] (state in {state_dir}/): "
        f"{len(manifest.nodes)} nodes, threshold {manifest.threshold}"
    )
    for node in manifest.nodes:
        console.print(f"  node {node.index}  {node.url}  signer {node.signer}")
    console.print(f"  KMS public key  {manifest.public_key}")
    if manifest.gateway_url is not None:
        print_gateway(state_dir, manifest, console)
    console.print(f"  manifest        {state_dir / FILE_NAME}")
    console.print("\nTry it (in another shell, from this directory):", highlight=False)
    console.print(
        f"  curl -sS '{manifest.nodes[0].url}/v1/keyset?chain_id={manifest.chain_id}'",
        highlight=False,
    )
    console.print(
        f"  .venv/bin/tkms delegate --devnet {state_dir / FILE_NAME}",
        highlight=False,
    )
    if manifest.gateway_url is not None:
        print_story(state_dir, console)
