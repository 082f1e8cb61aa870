"""A real PostgreSQL server for the tests.

``TKMS_TEST_POSTGRES_URL`` names an existing server; otherwise a throwaway one
is started from the Debian binaries (``/usr/lib/postgresql/*/bin``) in a temp
dir, on a free loopback port, as the ``postgres`` user when we run as root
(the server refuses to run as root). Missing PostgreSQL is a failure, never a
skip: storage code that was not run against PostgreSQL is not tested.

The server is shared by the whole process and reference-counted, so the same
fixture imported into several modules still starts one server.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from tests import reaper

ENV_URL = "TKMS_TEST_POSTGRES_URL"
SERVER_USER = "postgres"
INSTALL_HINT = (
    f"set {ENV_URL}=postgresql://… or install the server binaries "
    "(.ci/install-postgres.sh, i.e. apt-get install postgresql)"
)


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has initdb and pg_ctl."""
    candidates = [
        p.parent
        for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (p.parent / "pg_ctl").exists() and p.parent.parent.name.isdigit()
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda p: int(p.parent.name))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TempPostgres:
    """A server started by ``start``; ``stop`` kills it and removes its files."""

    bindir: Path
    root: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self.run_as, *args], check=True, capture_output=True, text=True, timeout=timeout
        )

    @classmethod
    def start(cls) -> TempPostgres:
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable(f"no PostgreSQL server binaries found; {INSTALL_HINT}")
        run_as: list[str] = []
        root = Path(tempfile.mkdtemp(prefix="tkms-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                shutil.rmtree(root)
                raise PostgresUnavailable(
                    f"running as root and there is no {SERVER_USER!r} user to run the server"
                ) from None
            os.chown(root, user.pw_uid, user.pw_gid)
            run_as = (
                ["runuser", "-u", SERVER_USER, "--"]
                if shutil.which("runuser")
                else [
                    "setpriv",
                    f"--reuid={user.pw_uid}",
                    f"--regid={user.pw_gid}",
                    "--clear-groups",
                ]
            )
        server = cls(bindir=bindir, root=root, port=0, run_as=run_as)
        try:
            server._init_and_start()
            server._record()
        except (subprocess.SubprocessError, OSError) as exc:
            log = server.log_tail()
            server.stop()
            raise PostgresUnavailable(
                f"could not start a throwaway PostgreSQL from {bindir}: {_describe(exc)}\n{log}"
            ) from None
        return server

    def _init_and_start(self) -> None:
        data = self.root / "data"
        self._run(
            str(self.bindir / "initdb"),
            f"--pgdata={data}",
            f"--username={SERVER_USER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        # Durability buys nothing for a server deleted at the end of the run.
        options = (
            "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            f" -c full_page_writes=off -k {self.root}"
        )
        for attempt in range(3):
            self.port = _free_port()
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    f"--pgdata={data}",
                    f"--log={self.root / 'server.log'}",
                    "--wait",
                    "--timeout=30",
                    f"--options=-p {self.port} {options}",
                    "start",
                )
                return
            except subprocess.CalledProcessError:
                # Someone else may have taken the port between probe and bind.
                if attempt == 2:
                    raise

    def _record(self) -> None:
        """The postmaster (pg_ctl daemonized it) and its files, for tests/reaper.py."""
        with contextlib.suppress(OSError, ValueError, IndexError):  # unrecorded, still stopped
            pid = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
            reaper.record(pid, self.root)

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            text = (self.root / "server.log").read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if (self.root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run(
                    str(self.bindir / "pg_ctl"),
                    f"--pgdata={self.root / 'data'}",
                    "--mode=immediate",
                    "--wait",
                    "stop",
                    timeout=30,
                )
        shutil.rmtree(self.root, ignore_errors=True)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        return f"{exc.cmd[len(exc.cmd) - 1]!r} exited {exc.returncode}: {(exc.stderr or '')[-500:]}"
    return str(exc)


_lock = threading.Lock()
_server: TempPostgres | None = None
_failure: PostgresUnavailable | None = None
_users = 0


def acquire_server() -> str:
    """The base URL of the test server, starting it on first use."""
    global _server, _failure, _users
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL]
    with _lock:
        if _failure is not None:
            raise _failure
        if _server is None:
            try:
                _server = TempPostgres.start()
            except PostgresUnavailable as exc:
                _failure = exc
                raise
            atexit.register(_server.stop)
        _users += 1
        return _server.url


def release_server() -> None:
    global _server, _users
    if os.environ.get(ENV_URL):
        return
    with _lock:
        _users -= 1
        if _users == 0 and _server is not None:
            _server.stop()
            atexit.unregister(_server.stop)
            _server = None


def with_search_path(url: str, schema: str) -> str:
    """``url`` with every session starting in ``schema`` (libpq ``options``)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError("schema must be a plain lowercase identifier")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-c search_path={schema}', safe='')}"


@contextlib.contextmanager
def isolated_schema(base_url: str) -> Iterator[str]:
    """A URL whose tables live in a fresh schema, dropped afterwards."""
    schema = f"tkms_test_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(base_url, schema)
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
