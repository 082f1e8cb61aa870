"""tkms services as processes on loopback: start, wait until healthy, stop, free ports.

The one helper of the devnet, the tests and the benchmarks. A service's
output goes to its log file; when it dies before it is healthy the error
carries the last lines of that log, so the reason is on the screen.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

TAIL_LINES = 12


class ServiceFailed(RuntimeError):
    """A service exited or never became healthy; the message ends with its last log lines."""


_HANDED_OUT: set[int] = set()
"""Ports this process has drawn: none is handed out twice, even before its service binds it."""


def free_port() -> int:
    """A port nobody listens on now, not handed out before by this process.

    Drawn below the kernel's ephemeral range, for two reasons the clean-clone CI
    met: the kernel's pick for port 0 may come back for the next call while the
    first service has not bound it yet (two nodes of one cluster got one port, and
    the second's health check reached the first), and a port of that range that
    is free now may be taken a moment later by an outgoing connection.
    """
    first, last = _below_ephemeral(1)
    for _ in range(1000):
        port = secrets.choice(range(first, last))
        if port not in _HANDED_OUT and port_free(port):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def port_free(port: int) -> bool:
    """Nobody listens on ``127.0.0.1:port`` (a port in TIME_WAIT counts as free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def busy_port(ports: Iterable[int]) -> int | None:
    """The first of ``ports`` that is taken, or None."""
    return next((port for port in ports if not port_free(port)), None)


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port_block(count: int) -> int:
    """A base port such that base .. base+count are all free now (the devnet's layout).

    Drawn below the kernel's ephemeral range: a port of that range that is free
    now may be taken a moment later by any outgoing connection's source port.
    """
    first, last = _below_ephemeral(count)
    for _ in range(200):
        base = secrets.choice(range(first, last - count))
        block = range(base, base + count + 1)
        if _HANDED_OUT.isdisjoint(block) and busy_port(block) is None:
            _HANDED_OUT.update(block)
            return base
    raise RuntimeError("no block of free ports")


def _below_ephemeral(count: int) -> tuple[int, int]:
    """The range to draw from: below the ephemeral range, or above it when that is too narrow."""
    low, high = _ephemeral_range()
    return (10000, low - 1) if low > 10000 + 4 * count else (high + 1, 65535)


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])


class Service:
    """A running service process: its URL, its ``Popen`` and its log file."""

    def __init__(
        self, url: str, process: subprocess.Popen[bytes], log: Path, name: str | None = None
    ) -> None:
        self.url = url
        self.process = process
        self.log = log
        self.name = name or url

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def failure(self, what: str) -> ServiceFailed:
        tail = log_tail(self.log)
        where = f"; last lines of {self.log}:\n{tail}" if tail else f"; its log is {self.log}"
        return ServiceFailed(f"{self.name} {what}{where}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def clean_environ() -> dict[str, str]:
    """The environment without any NOX_/TKMS_ variable: a service sees only what we give."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}


def start(
    args: list[str],
    env: Mapping[str, str],
    log: Path,
    port: int,
    *,
    clean_env: bool = True,
    append: bool = False,
    name: str | None = None,
) -> Service:
    """``python -m tkms <args>`` listening on ``port``, its output in ``log``."""
    full_env = {**(clean_environ() if clean_env else os.environ), **env}
    with log.open("ab" if append else "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "tkms", *args],
            env=full_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    return Service(f"http://127.0.0.1:{port}", process, log, name)


# A node's start is ~2 s of CPU (imports, the keystore); five of them starting at once on a
# 2-core machine that also runs a test suite took 23-30 s of wall time, so 30 s failed
# benches and devnets that were merely slow. A process that exits is reported at once.
HEALTHY_WITHIN = 90.0


def wait_service_healthy(service: Service, timeout: float = HEALTHY_WITHIN) -> None:
    """Until ``GET /health`` is 200; ServiceFailed if it exits first or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            code = service.process.returncode
            raise service.failure(f"exited with code {code} before it was healthy")
        try:
            if httpx.get(service.url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise service.failure(f"was not healthy within {timeout:.0f} s")


def stop_all(services: Iterable[Service], timeout: float = 10.0) -> None:
    """SIGTERM to every service at once, then wait for each (SIGKILL a straggler)."""
    services = list(services)
    for service in services:
        if service.alive():
            service.process.terminate()
    for service in services:
        service.stop(timeout=timeout)
