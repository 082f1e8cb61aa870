"""Running tkms services as real processes on loopback for tests."""

from __future__ import annotations

import os
import re
import signal
import socket
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
