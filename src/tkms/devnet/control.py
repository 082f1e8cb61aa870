"""A running devnet: the lock that makes it the only one on its state directory, and
requests to stop or restart one of its processes (``tkms devnet stop-node|restart-node``)
or to reshare its key to another committee (``tkms devnet reshare``).

The devnet holds an exclusive ``flock`` on ``state/devnet.lock`` (its pid
inside) for as long as it runs; the kernel drops it when the process dies, so
a stale lock never blocks. A request is a file ``state/control/<id>.request``
that the devnet picks up within half a second and answers with
``<id>.done``: ``{"ok": bool, "message": str}``.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tkms.envconfig import ConfigError

LOCK_FILE = "devnet.lock"
CONTROL_DIR = "control"
ACTIONS = ("stop", "restart", "reshare")


class DevnetLock:
    """Held while a devnet runs on ``state_dir``; a second one is refused in one line."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.fd: int | None = None

    def __enter__(self) -> DevnetLock:
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"a devnet is already running on {self.state_dir}/ (pid {pid}): "
                "stop it (Ctrl-C in its shell) or give another --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock; the file stays (no unlink race)
            self.fd = None


def running_pid(state_dir: Path) -> int | None:
    """The pid of the devnet running on ``state_dir``, or None if none runs."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None


@dataclass(frozen=True)
class Request:
    path: Path
    action: str
    target: str


def pending_requests(state_dir: Path) -> list[Request]:
    """Requests not answered yet, oldest first (the devnet's side)."""
    directory = state_dir / CONTROL_DIR
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.glob("*.request"), key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(path.read_text())
            found.append(Request(path, str(data["action"]), str(data["target"])))
        except (OSError, ValueError, KeyError, TypeError):
            answer(Request(path, "", ""), False, "unreadable request")
    return found


def answer(request: Request, ok: bool, message: str) -> None:
    done = request.path.with_suffix(".done")
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ok": ok, "message": message}))
    tmp.replace(done)
    request.path.unlink(missing_ok=True)


def send(state_dir: Path, action: str, target: str, timeout: float = 120.0) -> str:
    """Ask the devnet on ``state_dir`` to stop or restart ``target``; its answer, or
    ConfigError (no devnet runs there, it refused, or it did not answer in time)."""
    if running_pid(state_dir) is None:
        raise ConfigError(f"no devnet is running on {state_dir}/ (start it with `tkms devnet`)")
    directory = state_dir / CONTROL_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    name = secrets.token_hex(8)
    tmp = directory / f"{name}.tmp"
    tmp.write_text(json.dumps({"action": action, "target": target}))
    tmp.replace(directory / f"{name}.request")
    done = directory / f"{name}.done"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done.exists():
            reply = json.loads(done.read_text())
            done.unlink()
            if not reply["ok"]:
                raise ConfigError(str(reply["message"]))
            return str(reply["message"])
        if running_pid(state_dir) is None:
            raise ConfigError(f"the devnet on {state_dir}/ stopped before it answered")
        time.sleep(0.1)
    raise ConfigError(f"the devnet on {state_dir}/ did not answer within {timeout:.0f} s")
