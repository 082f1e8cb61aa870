"""The single-node devnet (``--nodes 1``): one nox-compatible node with the whole key."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import address_hex
from tkms.devnet.gateway import print_gateway
from tkms.devnet.keys import KeyDir
from tkms.devnet.manifest import DevnetManifest, ManifestNode
from tkms.keyfiles import read_hex, write_private
from tkms.protocol.delegation import sign_delegate_request


def single_node_env(keys: KeyDir, port: int, chain_id: int) -> dict[str, str]:
    return {
        "NOX_KMS_WALLET_KEY_FILE": str(keys.file("node1-wallet")),
        f"NOX_KMS_CHAINS__{chain_id}__ECC_KEY_FILE": str(keys.file("kms")),
        f"NOX_KMS_CHAINS__{chain_id}__GATEWAY_ADDRESS": address_hex(
            keys.wallet("gateway-wallet").address
        ),
        "NOX_KMS_SERVER__HOST": "127.0.0.1",
        "NOX_KMS_SERVER__PORT": str(port),
    }


def write_example(state_dir: Path, keys: KeyDir, kms_key: int, chain_id: int) -> dict[str, str]:
    """A signed request anyone can replay with curl, and the answer it must open to."""
    record = ecies.encrypt(curve.base_mul(kms_key), b"hello from the tkms devnet")
    rsa_key = rsa.generate_private_key()
    write_private(keys.path / "example-rsa.der", rsa.private_key_der(rsa_key))
    ephemeral = to_hex(record.ephemeral_pubkey)
    target = to_hex(rsa.public_key_der(rsa_key))
    (state_dir / "example-request.json").write_text(
        json.dumps({"ephemeralPubKey": ephemeral, "targetPubKey": target}) + "\n"
    )
    gateway = keys.wallet("gateway-wallet")
    signature = sign_delegate_request(gateway, chain_id, ephemeral, target)
    expected = curve.point_x(curve.mul(curve.parse_point(record.ephemeral_pubkey), kms_key))
    return {"ephemeral": ephemeral, "signature": signature, "expected": to_hex(expected)}


def single_public_key(keys: KeyDir) -> str:
    """The public key of the single node's whole KMS key (made on first use)."""
    kms_key = int.from_bytes(read_hex(keys.file("kms")), "big")
    return to_hex(curve.encode_point(curve.base_mul(kms_key)))


def single_manifest(keys: KeyDir, url: str, chain_id: int) -> DevnetManifest:
    signer = address_hex(keys.wallet("node1-wallet").address)
    return DevnetManifest(
        chain_id=chain_id,
        threshold=1,
        public_key=single_public_key(keys),
        gateway_key_file=keys.file("gateway-wallet"),
        nodes=(ManifestNode(1, url, signer),),
    )


def print_single_node(
    state_dir: Path, keys: KeyDir, manifest: DevnetManifest, console: Console
) -> None:
    kms_key = int.from_bytes(read_hex(keys.file("kms")), "big")
    chain_id = manifest.chain_id
    node = manifest.nodes[0]
    example = write_example(state_dir, keys, kms_key, chain_id)
    gw_file = keys.file("gateway-wallet")
    console.print(f"[bold green]tkms devnet up[/] (state in {state_dir}/): one nox-compatible node")
    console.print(f"  node URL          {node.url}")
    console.print(f"  node signer       {node.signer}")
    console.print(f"  KMS public key    {manifest.public_key}")
    console.print(f"  gateway key (dev) {gw_file}")
    if manifest.gateway_url is not None:
        print_gateway(state_dir, manifest, console)
    console.print("\nTry it (in another shell, from this directory):", highlight=False)
    console.print(
        f"  .venv/bin/tkms delegate --node {node.url} --chain-id {chain_id} "
        f"--gateway-key-file {gw_file} --ephemeral-pubkey {example['ephemeral']}",
        highlight=False,
    )
    console.print(f"  → shared secret x:  {example['expected']}", highlight=False)
    console.print(
        f"\n  curl -sS -X POST '{node.url}/v0/delegate?chain_id={chain_id}&salt=0x{'00' * 32}' "
        "-H 'Content-Type: application/json' "
        f"-H 'Authorization: Bearer {example['signature']}' "
        f"--data @{state_dir}/example-request.json",
        highlight=False,
    )
