"""Running tkms services as real processes on loopback for tests."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(count: int) -> int:
    """A base port such that base+1 .. base+count are free now (devnet's layout)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for port in range(base + 1, base + count + 1):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports")


class Service:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_healthy(service: Service, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"service exited early:\n{service.output()}")
        try:
            if httpx.get(service.url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"service not healthy in {timeout} s:\n{service.output()}")


def start(
    args: list[str], env: Mapping[str, str], log: Path, port: int, *, clean_env: bool = True
) -> Service:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    full_env = {**(base if clean_env else os.environ), **env}
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tkms", *args], env=full_env, stdout=handle, stderr=subprocess.STDOUT
    )
    return Service(f"http://127.0.0.1:{port}", process, log)


@contextmanager
def running(args: list[str], env: Mapping[str, str], log: Path, port: int) -> Iterator[Service]:
    service = start(args, env, log, port)
    try:
        wait_healthy(service)
        yield service
    finally:
        service.stop()


DEVNET_UP = "Ctrl-C stops the devnet"


def start_devnet(state: Path, base_port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`tkms devnet` as `make devnet` runs it, on our own state dir and ports."""
    tkms = str(Path(sys.executable).parent / "tkms")
    args = [tkms, "devnet", "--state-dir", str(state), "--base-port", str(base_port), *extra]
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=state.parent)


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
    manifest = json.loads(manifest_file.read_text())
    assert Path(manifest["gatewayKeyFile"]) == (keys / "gateway-wallet.key").resolve()
    for user in manifest["users"].values():
        assert Path(user["keyFile"]).parent == keys.resolve()
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
