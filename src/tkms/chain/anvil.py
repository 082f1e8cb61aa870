"""A local anvil chain from the project's node_modules (tests, benchmarks, the devnet).

``Anvil.start()`` runs ``node_modules/.bin/anvil`` (pinned by package-lock.json, installed
by ``make``) on a free loopback port with the given chain id, hardfork and prefunded dev
accounts (anvil's public test mnemonic: never for real funds), waits until it answers
``eth_chainId``, and ``stop()`` ends it. The process gets SIGTERM if its parent dies.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tkms.chain.errors import ChainUnavailable
from tkms.chain.rpc import RpcClient

DEFAULT_HARDFORK = "osaka"  # transient storage (EIP-1153) is in since cancun
DEV_MNEMONIC = "test test test test test test test test test test test junk"
_LISTENING = re.compile(rb"Listening on ([0-9.]+):([0-9]+)")
_PR_SET_PDEATHSIG = 1


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or does not answer."""


def find_anvil() -> Path:
    """``$TKMS_ANVIL``, else ``node_modules/.bin/anvil`` of this checkout or the cwd's."""
    override = os.environ.get("TKMS_ANVIL")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for root in (*here.parents, *Path.cwd().resolve().parents, Path.cwd().resolve()):
        candidate = root / "node_modules" / ".bin" / "anvil"
        if candidate.exists():
            return candidate
    raise AnvilError("anvil not found: run `make node` (installs node_modules from the lock)")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Anvil:
    process: subprocess.Popen[bytes]
    url: str
    chain_id: int
    private_keys: tuple[bytes, ...]
    workdir: Path
    _log: IO[bytes] = field(repr=False)
    _own_workdir: bool = field(default=True, repr=False)

    @classmethod
    def start(
        cls,
        *,
        chain_id: int = 31337,
        accounts: int = 10,
        balance_eth: int = 10_000,
        hardfork: str = DEFAULT_HARDFORK,
        host: str = "127.0.0.1",
        binary: Path | None = None,
        startup_timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
        port: int = 0,
        workdir: Path | None = None,
        state: Path | None = None,
    ) -> Anvil:
        """``port`` 0 is the kernel's pick. ``workdir`` (kept; a fresh temporary one that
        ``stop()`` removes by default) holds ``anvil.log`` and the config. ``state``: anvil's
        ``--state`` file, loaded at start when it exists and written when anvil exits."""
        binary = binary or find_anvil()
        own_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="tkms-anvil-"))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.json"
        log_path = workdir / "anvil.log"
        log = log_path.open("wb")
        args = [
            str(binary),
            "--host", host,
            "--port", str(port),
            "--chain-id", str(chain_id),
            "--hardfork", hardfork,
            "--accounts", str(accounts),
            "--balance", str(balance_eth),
            "--mnemonic", DEV_MNEMONIC,
            "--config-out", str(config),
            *(("--state", str(state)) if state is not None else ()),
            *extra_args,
        ]  # fmt: skip
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # only sets PR_SET_PDEATHSIG
        )
        try:
            url = _wait_listening(process, log_path, startup_timeout)
            _wait_chain_id(url, chain_id, startup_timeout)
            keys = tuple(bytes.fromhex(k[2:]) for k in _read_config(config)["private_keys"])
        except BaseException:
            _terminate(process)
            log.close()
            if own_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        return cls(process, url, chain_id, keys, workdir, log, own_workdir)

    def rpc(self, **kw: Any) -> RpcClient:
        return RpcClient(self.url, **kw)

    def log_text(self) -> str:
        return (self.workdir / "anvil.log").read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        _terminate(self.process)
        self._log.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Anvil:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # anvil's test methods

    def increase_time(self, seconds: int) -> None:
        with self.rpc() as rpc:
            rpc.request("evm_increaseTime", [seconds])
            rpc.request("evm_mine", [])

    def mine(self) -> None:
        with self.rpc() as rpc:
            rpc.request("evm_mine", [])


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_bytes())
        if match:
            return f"http://{match.group(1).decode()}:{match.group(2).decode()}"
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise AnvilError(f"anvil exited with {process.returncode}: {tail}")
        time.sleep(0.02)
    raise AnvilError(f"anvil did not listen within {timeout} s")


def _wait_chain_id(url: str, chain_id: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with RpcClient(url, timeout=2.0, connect_timeout=1.0) as rpc:
        while True:
            try:
                answered = rpc.chain_id()
            except ChainUnavailable:
                if time.monotonic() > deadline:
                    raise AnvilError(f"anvil at {url} does not answer eth_chainId") from None
                time.sleep(0.05)
                continue
            if answered != chain_id:
                raise AnvilError(f"anvil answers chain id {answered}, not {chain_id}")
            return


def _read_config(path: Path) -> dict[str, Any]:
    for _ in range(100):
        try:
            config: dict[str, Any] = json.loads(path.read_text())
            return config
        except (OSError, ValueError):
            time.sleep(0.02)
    raise AnvilError("anvil wrote no --config-out file")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
