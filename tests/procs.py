"""Running tkms services as real processes on loopback for tests."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec

from tests import reaper
from tkms.chain.contract import DemoApp, NoxCompute
from tkms.chain.rpc import RpcClient
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import address_hex
from tkms.devnet import processes
from tkms.devnet.manifest import DevnetManifest
from tkms.devnet.processes import Service, free_port, free_port_block, stop_all
from tkms.devnet.processes import wait_service_healthy as wait_healthy

P = ParamSpec("P")

__all__ = [
    "Service",
    "free_port",
    "free_port_block",
    "running",
    "start",
    "start_healthy",
    "stop_all",
    "wait_healthy",
]


def _recorded(start: Callable[P, Service]) -> Callable[P, Service]:
    def recorded(*args: P.args, **kwargs: P.kwargs) -> Service:
        service = start(*args, **kwargs)
        reaper.record(service.process.pid)
        return service

    return recorded


start = _recorded(processes.start)
"""``python -m tkms <args>`` as the devnet starts it, recorded for tests/reaper.py."""


def start_healthy(
    args: list[str], env: Mapping[str, str], log: Path, port: int, *, timeout: float = 90.0
) -> Service:
    """``start`` then ``wait_healthy``; a service that does not get healthy (or whose wait
    is interrupted) is stopped and waited for before the error goes on unchanged."""
    service = start(args, env, log, port)
    try:
        wait_healthy(service, timeout=timeout)
    except BaseException:
        service.stop()
        raise
    return service


@contextmanager
def running(args: list[str], env: Mapping[str, str], log: Path, port: int) -> Iterator[Service]:
    service = start_healthy(args, env, log, port)
    try:
        yield service
    finally:
        service.stop()


DEVNET_UP = "Ctrl-C stops the devnet"


def start_devnet(state: Path, base_port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`tkms devnet` as `make devnet` runs it, on our own state dir and ports."""
    tkms = str(Path(sys.executable).parent / "tkms")
    args = [tkms, "devnet", "--state-dir", str(state), "--base-port", str(base_port), *extra]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=state.parent)
    reaper.record(process.pid)  # a devnet's own nodes and chain are reaped with it
    return process


def wait_printed(log: Path, process: subprocess.Popen[bytes], pattern: str = DEVNET_UP) -> str:
    """The process's output once ``pattern`` shows in it (it must not exit first)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if re.search(pattern, text):
            return text
        assert process.poll() is None, text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not printed:\n{log.read_text()}")


def check_devnet_secrets(state: Path) -> None:
    """Every secret of a devnet is a 0600 file in keys/ (0700); nothing else holds one.

    devnet.json names the key files and holds no key; the node and gateway
    directories are 0700, the gateway's SQLite files 0600.
    """

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    keys = state / "keys"
    assert mode(keys) == 0o700
    secrets = {}
    for key in keys.iterdir():
        assert mode(key) == 0o600, key
        data = key.read_bytes()
        secrets[key.name] = (
            data.decode().strip().removeprefix("0x") if key.suffix == ".key" else data.hex()
        )
    assert {"gateway-wallet.key", "user.key", "bob.key"} <= set(secrets)
    manifest_file = state / "devnet.json"
    assert mode(manifest_file) == 0o600
    manifest = DevnetManifest.load(manifest_file)
    assert manifest.gateway_key_file == (keys / "gateway-wallet.key").resolve()
    for user in manifest.users.values():
        assert user.key_file.parent == keys.resolve()
    for path in state.rglob("*"):
        if path.is_dir():
            if path.name.startswith(("node", "gateway")):
                assert mode(path) == 0o700, path
            continue
        if path.name.startswith("gateway.sqlite3"):
            assert mode(path) == 0o600, path
        if keys in path.parents:
            continue
        text = path.read_bytes().hex() + path.read_bytes().decode(errors="replace").lower()
        for name, secret in secrets.items():
            assert secret.lower() not in text, f"{path} holds the secret of keys/{name}"


def devnet_chain(state: Path) -> tuple[DevnetManifest, NoxCompute]:
    """The devnet's manifest and its NoxCompute, read through the manifest's rpcUrl."""
    manifest = DevnetManifest.load(state / "devnet.json")
    assert manifest.rpc_url is not None and manifest.nox_compute is not None
    rpc = RpcClient(manifest.rpc_url)
    return manifest, NoxCompute(rpc, parse_hex(manifest.nox_compute, length=20))


def check_devnet_chain(state: Path) -> None:
    """The devnet's chain: gateway() is the devnet gateway's signer, kmsPublicKey() its Y,
    and the demo app is deployed against this NoxCompute."""
    manifest, nox = devnet_chain(state)
    assert manifest.verifying_contract == manifest.nox_compute
    assert address_hex(nox.gateway()) == manifest.gateway_signer
    assert to_hex(nox.kms_public_key()) == manifest.public_key
    assert nox.rpc.chain_id() == manifest.chain_id
    assert manifest.app is not None
    app = DemoApp(nox.rpc, parse_hex(manifest.app, length=20))
    assert app.nox() == nox.address
