"""The gateway's /health tells the truth about its store, over a real gateway process.

A store that turned read-only under a running gateway (every write fails) makes
``/health`` answer 503 ``degraded`` within a couple of seconds, and 200 again
once the store takes writes. The gateway's SQLite files are created 0600.

As root, ``chmod`` stops no write; SQLite's files are made immutable with
``chattr +i`` instead (the ``-shm`` is left alone: it is mapped in memory, and
an immutable mapping would crash the process rather than fail its writes). On
PostgreSQL the database is switched to read-only sessions and the gateway's
connections are cut, so that it reconnects into read-only sessions.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import NodeKeys
from tests.gatewaynet import single_node_gateway
from tests.procs import Service

HEALTHY = {"status": "ok"}


def health(gateway: Service) -> tuple[int, Any]:
    answer = httpx.get(gateway.url + "/health", timeout=5)
    return answer.status_code, answer.json()


def wait_health(gateway: Service, expected: tuple[int, Any], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while (seen := health(gateway)) != expected:
        assert time.monotonic() < deadline, f"/health says {seen}, not {expected}"
        time.sleep(0.1)


def encrypt(gateway: Service) -> httpx.Response:
    owner = "0x" + secrets.token_hex(20)
    return httpx.post(
        gateway.url + "/v0/secrets",
        params={"salt": "0x" + secrets.token_hex(32)},
        json={
            "value": "0x" + "00" * 31 + "2a",
            "solidityType": "uint256",
            "owner": owner,
            "applicationContract": owner,
        },
        timeout=30,
    )


@contextmanager
def read_only_files(*paths: Path) -> Iterator[None]:
    if os.geteuid() == 0:
        flag = subprocess.run(["chattr", "+i", str(paths[0])], capture_output=True, text=True)
        if flag.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {flag.stderr.strip()}")
        for path in paths[1:]:
            subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            for path in paths:
                subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        modes = {path: stat.S_IMODE(path.stat().st_mode) for path in paths}
        for path in paths:
            path.chmod(0o400)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)


def test_sqlite_files_are_private_and_a_read_only_store_is_reported(
    v0_node: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    with single_node_gateway(v0_node, node_keys, tmp_path) as gateway:
        assert health(gateway) == (200, HEALTHY)
        assert encrypt(gateway).status_code == 200
        db = tmp_path / "gateway-state" / "gateway.sqlite3"
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700

        with read_only_files(db, db.with_name(db.name + "-wal")):
            degraded = (503, {"status": "degraded", "checks": {"store": "read-only"}})
            wait_health(gateway, degraded)
            refused = encrypt(gateway)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "storage_unavailable"
            code, body = health(gateway)
            assert code == 503 and body["status"] == "degraded"
        # Writable again: a write that succeeds clears the failure at once.
        assert encrypt(gateway).status_code == 200
        wait_health(gateway, (200, HEALTHY))
        assert "Traceback" not in gateway.output()


@contextmanager
def own_database(server: str) -> Iterator[tuple[str, str]]:
    name = f"tkms_health_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        base, _, _ = server.partition("?")
        yield name, base.rsplit("/", 1)[0] + "/" + name  # a URL: the gateway's form
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def set_read_only(server: str, name: str, read_only: bool) -> None:
    """New sessions of ``name`` are read-only (or not); the open ones are cut."""
    with psycopg.connect(server, autocommit=True) as conn:
        if read_only:
            conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        else:
            conn.execute(f"ALTER DATABASE {name} RESET default_transaction_read_only")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )


def test_postgres_turned_read_only_is_reported(
    v0_node: Service, node_keys: NodeKeys, postgres_server: str, tmp_path: Path
) -> None:
    with (
        own_database(postgres_server) as (name, url),
        single_node_gateway(v0_node, node_keys, tmp_path, TKMS_GATEWAY_DATABASE_URL=url) as gw,
    ):
        assert health(gw) == (200, HEALTHY)
        assert encrypt(gw).status_code == 200
        assert not (tmp_path / "gateway-state" / "gateway.sqlite3").exists()  # PostgreSQL it is

        set_read_only(postgres_server, name, True)
        wait_health(gw, (503, {"status": "degraded", "checks": {"store": "read-only"}}))
        refused = encrypt(gw)
        assert refused.status_code == 503 and refused.json()["error"] == "storage_unavailable"

        set_read_only(postgres_server, name, False)
        wait_health(gw, (200, HEALTHY))
        assert encrypt(gw).status_code == 200
        assert "Traceback" not in gw.output()
