"""The devnet's Handle Gateway: its environment, its part of devnet.json, its demo lines.

The gateway listens on the base port (the nodes on base+1…), signs with the
dev gateway wallet the nodes already trust, and keeps its SQLite database in
``state/gateway`` so handles survive a devnet restart. It is linked to the devnet's
chain (nox v0.6's ``CHAINS__<id>__RPC_URL`` and ``…__NOX_COMPUTE_CONTRACT_ADDRESS``):
its EIP-712 domains and input proofs name NoxCompute (:mod:`tkms.devnet.chain`), so
the demo app accepts its proofs, and its start-up checks compare its wallet with
``gateway()`` and its key with ``kmsPublicKey()``. By default it decides reads as
nox does, by ``isViewer`` on chain (``TKMS_GATEWAY_ACL=chain``): a grant is the
owner's transaction, and ``/v1/acl/*`` answers 501. ``--acl embedded`` keeps the
gateway's own ACL (the grants posted to ``/v1/acl/grant``) on the same chain, for
the benchmark's comparison; the CLI and the SDK then write both. Two dev users,
``user`` (the CLI's default) and ``bob``, let the README tell its story;
the dev runner wallet ``runner`` is the gateway's ``RUNNER_ADDRESS`` (docs/runner.md).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rich.console import Console

from tkms.crypto.wallet import address_hex
from tkms.devnet.chain import DevnetChain
from tkms.devnet.keys import KeyDir
from tkms.devnet.manifest import DEFAULT_STATE_DIR, FILE_NAME, DevnetManifest, ManifestUser
from tkms.keyfiles import private_dir

USERS = ("user", "bob")
RUNNER = "runner"


def with_gateway(
    manifest: DevnetManifest, keys: KeyDir, url: str, chain: DevnetChain, acl: str
) -> DevnetManifest:
    """The manifest with the gateway, its ACL, the chain, its contracts and the users."""
    return dataclasses.replace(
        manifest,
        acl=acl,
        gateway_url=url,
        gateway_signer=address_hex(keys.wallet("gateway-wallet").address),
        verifying_contract=chain.nox_address,
        rpc_url=chain.url,
        nox_compute=chain.nox_address,
        app=chain.app_address,
        users={
            name: ManifestUser(address_hex(keys.wallet(name).address), keys.file(name))
            for name in USERS
        },
        runner=ManifestUser(address_hex(keys.wallet(RUNNER).address), keys.file(RUNNER)),
    )


def gateway_env(
    keys: KeyDir, state_dir: Path, port: int, manifest: DevnetManifest
) -> dict[str, str]:
    nodes = [{"index": n.index, "url": n.url, "signer": n.signer} for n in manifest.nodes]
    if len(nodes) == 1:
        # One nox-compatible node holding the whole key: the gateway's v0 mode.
        kms = {
            "TKMS_GATEWAY_KMS__URL": manifest.nodes[0].url,
            "TKMS_GATEWAY_KMS__SIGNER_ADDRESS": manifest.nodes[0].signer,
        }
    else:
        kms = {"TKMS_GATEWAY_NODES": json.dumps(nodes)}
    assert manifest.nox_compute is not None and manifest.rpc_url is not None
    chain = f"TKMS_GATEWAY_CHAINS__{manifest.chain_id}__"
    return {
        **kms,
        "TKMS_GATEWAY_SIGNER__WALLET_KEY_FILE": str(keys.file("gateway-wallet")),
        f"{chain}RPC_URL": manifest.rpc_url,
        f"{chain}NOX_COMPUTE_CONTRACT_ADDRESS": manifest.nox_compute,
        # Explicit both ways: `chain` makes a broken link a start-up error, not a fallback.
        "TKMS_GATEWAY_ACL": manifest.acl,
        # Also checked against kmsPublicKey() at start: a stale devnet.json is refused.
        "TKMS_GATEWAY_KMS__PUBLIC_KEY": manifest.public_key,
        "TKMS_GATEWAY_STATE_DIR": str(private_gateway_dir(state_dir).resolve()),
        "TKMS_GATEWAY_RUNNER_ADDRESS": address_hex(keys.wallet(RUNNER).address),
        "TKMS_GATEWAY_SERVER__HOST": "127.0.0.1",
        "TKMS_GATEWAY_SERVER__PORT": str(port),
        # Loopback only, and bench/e2e.py writes hundreds of records a second.
        "TKMS_GATEWAY_RATE_LIMIT__WRITES_PER_MINUTE": "0",
    }


def private_gateway_dir(state_dir: Path) -> Path:
    """The gateway's directory, 0700; database files an older run left open become 0600."""
    path = private_dir(state_dir / "gateway")
    for file in path.glob("gateway.sqlite3*"):
        file.chmod(0o600)
    return path


def print_gateway(state_dir: Path, manifest: DevnetManifest, console: Console) -> None:
    """The gateway and the dev users, for the header of the devnet's output."""
    console.print(
        f"  gateway         {manifest.gateway_url}  signer {manifest.gateway_signer}",
        highlight=False,
    )
    for name, user in manifest.users.items():
        label = "user (default)" if name == "user" else f"user {name}"
        key_file = state_dir / "keys" / f"{name}.key"
        console.print(f"  {label:<15} {user.address}  key {key_file}", highlight=False)
    if manifest.runner is not None:
        key_file = state_dir / "keys" / f"{RUNNER}.key"
        runner = manifest.runner.address
        console.print(f"  {'runner':<15} {runner}  key {key_file}", highlight=False)
    if manifest.rpc_url is not None:
        console.print(
            f"  chain           {manifest.rpc_url}  anvil, chain id {manifest.chain_id}, "
            f"state in {state_dir}/chain/",
            highlight=False,
        )
        console.print(
            f"  NoxCompute      {manifest.nox_compute}  gateway() = the gateway's signer, "
            "kmsPublicKey() = the KMS public key",
            highlight=False,
        )
        console.print(f"  demo app        {manifest.app}", highlight=False)
    console.print(f"  ACL             {acl_line(manifest)}", highlight=False)


def acl_line(manifest: DevnetManifest) -> str:
    if manifest.acl_on_chain:
        return (
            "on chain: the gateway reads NoxCompute's isViewer; a grant is the owner's "
            "transaction (addViewer)"
        )
    return "embedded: the gateway's own grants (--acl embedded); the CLI writes both"


def print_nox_sdk(manifest: DevnetManifest, console: Console) -> None:
    """The three settings the Nox SDK needs on a chain it does not know."""
    if manifest.rpc_url is None:
        return
    console.print("\nThe Nox SDK on this chain:", highlight=False)
    console.print(f"  gatewayUrl            {manifest.gateway_url}", highlight=False)
    console.print(f"  smartContractAddress  {manifest.nox_compute}", highlight=False)
    console.print(
        f"  RPC URL               {manifest.rpc_url}  (chain id {manifest.chain_id})",
        highlight=False,
    )


def devnet_flag(state_dir: Path) -> str:
    """`` --devnet …`` for a command run beside a devnet in another state directory."""
    return "" if state_dir == DEFAULT_STATE_DIR else f" --devnet {state_dir / FILE_NAME}"


def state_flag(state_dir: Path) -> str:
    return "" if state_dir == DEFAULT_STATE_DIR else f" --state-dir {state_dir}"


def print_story(state_dir: Path, console: Console) -> None:
    """Three lines to paste: encrypt as the dev user, grant bob, decrypt as bob."""
    flag = devnet_flag(state_dir)
    console.print("\nThe user's story (in another shell, from this directory):", highlight=False)
    console.print(f"  H=$(.venv/bin/tkms encrypt{flag} --type uint256 1000)", highlight=False)
    console.print(f"  .venv/bin/tkms grant{flag} $H bob", highlight=False)
    console.print(
        f"  .venv/bin/tkms decrypt{flag} $H --key-file {state_dir}/keys/bob.key", highlight=False
    )
