"""A local devnet: KMS node processes on loopback with dev keys, kept in a state dir.

Restarted on the same state directory it reuses its keys. It writes
``devnet.json`` so that tools and tests find everything, prints how to use
it, and stops every process it started on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from rich.console import Console

from tkms.client.delegation import sign_delegate_request
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet, address_hex
from tkms.envconfig import ConfigError
from tkms.keyfiles import read_hex, write_hex, write_private


@dataclass
class DevKeys:
    kms_key: bytes
    node_wallet: Wallet
    gateway_wallet: Wallet


def _key(path: Path, make: bool) -> bytes:
    if not path.exists():
        if not make:
            raise ConfigError(f"{path} is missing: remove the state directory to start afresh")
        write_hex(path, curve.scalar_to_bytes(curve.random_scalar()))
    return read_hex(path)


def load_or_create_keys(state_dir: Path) -> DevKeys:
    keys = state_dir / "keys"
    fresh = not keys.exists()
    keys.mkdir(parents=True, exist_ok=True)
    os.chmod(keys, 0o700)
    return DevKeys(
        kms_key=_key(keys / "kms.key", fresh),
        node_wallet=Wallet(_key(keys / "node-wallet.key", fresh)),
        gateway_wallet=Wallet(_key(keys / "gateway-wallet.key", fresh)),
    )


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


def start_single_node(
    state_dir: Path, keys: DevKeys, port: int, chain_id: int
) -> subprocess.Popen[bytes]:
    key_dir = (state_dir / "keys").resolve()
    env = dict(os.environ)
    env.update(
        {
            "NOX_KMS_WALLET_KEY_FILE": str(key_dir / "node-wallet.key"),
            f"NOX_KMS_CHAINS__{chain_id}__ECC_KEY_FILE": str(key_dir / "kms.key"),
            f"NOX_KMS_CHAINS__{chain_id}__GATEWAY_ADDRESS": address_hex(
                keys.gateway_wallet.address
            ),
            "NOX_KMS_SERVER__HOST": "127.0.0.1",
            "NOX_KMS_SERVER__PORT": str(port),
        }
    )
    return subprocess.Popen([sys.executable, "-m", "tkms", "node"], env=env)


def write_example(state_dir: Path, keys: DevKeys, url: str, chain_id: int) -> dict[str, str]:
    """A signed request anyone can replay with curl, and the answer it must open to."""
    public = curve.base_mul(int.from_bytes(keys.kms_key, "big"))
    record = ecies.encrypt(public, b"hello from the tkms devnet")
    rsa_key = rsa.generate_private_key()
    write_private(state_dir / "example-rsa.der", rsa.private_key_der(rsa_key))
    ephemeral = to_hex(record.ephemeral_pubkey)
    target = to_hex(rsa.public_key_der(rsa_key))
    (state_dir / "example-request.json").write_text(
        json.dumps({"ephemeralPubKey": ephemeral, "targetPubKey": target}) + "\n"
    )
    signature = sign_delegate_request(keys.gateway_wallet, chain_id, ephemeral, target)
    expected = curve.point_x(
        curve.mul(curve.parse_point(record.ephemeral_pubkey), int.from_bytes(keys.kms_key, "big"))
    )
    return {"ephemeral": ephemeral, "signature": signature, "expected": to_hex(expected)}


def run_devnet(*, state_dir: Path, base_port: int, chain_id: int, console: Console) -> None:
    keys = load_or_create_keys(state_dir)
    url = f"http://127.0.0.1:{base_port}"
    public_key = curve.encode_point(curve.base_mul(int.from_bytes(keys.kms_key, "big")))
    manifest: dict[str, Any] = {
        "chainId": chain_id,
        "threshold": 1,
        "publicKey": to_hex(public_key),
        "gatewayPrivateKey": to_hex(keys.gateway_wallet.private_key_bytes()),
        "nodes": [{"index": 1, "url": url, "signer": address_hex(keys.node_wallet.address)}],
    }
    (state_dir / "devnet.json").write_text(json.dumps(manifest, indent=2) + "\n")

    process = start_single_node(state_dir, keys, base_port, chain_id)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        wait_healthy(url, process)
        example = write_example(state_dir, keys, url, chain_id)
        gw_file = state_dir / "keys" / "gateway-wallet.key"
        console.print(f"[bold green]tkms devnet up[/] (state in {state_dir}/)")
        console.print(f"  node URL          {url}")
        console.print(f"  node signer       {address_hex(keys.node_wallet.address)}")
        console.print(f"  KMS public key    {to_hex(public_key)}")
        console.print(f"  gateway address   {address_hex(keys.gateway_wallet.address)}")
        console.print(f"  gateway key (dev) {gw_file}")
        console.print("\nTry it (in another shell, from this directory):", highlight=False)
        console.print(
            f"  .venv/bin/tkms delegate --node {url} --chain-id {chain_id} "
            f"--gateway-key-file {gw_file} --ephemeral-pubkey {example['ephemeral']}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"  → shared secret x:  {example['expected']}", highlight=False)
        console.print(
            f"\n  curl -sS -X POST '{url}/v0/delegate?chain_id={chain_id}&salt=0x{'00' * 32}' "
            "-H 'Content-Type: application/json' "
            f"-H 'Authorization: Bearer {example['signature']}' "
            f"--data @{state_dir}/example-request.json",
            highlight=False,
            soft_wrap=True,
        )
        console.print("\nCtrl-C stops the devnet.")
        process.wait()
        raise ConfigError(f"the node exited with code {process.returncode}")
    except KeyboardInterrupt:
        console.print("stopping devnet")
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
