"""The node's registry of migrated bindings: per chain, handle → record, write-once.

Records imported from a nox deployment have random handles; the admin registers which
record each one names, once, during the migration (``POST /v1/bindings/register``,
node/binding_routes.py), and check 5 of ``user`` mode accepts the record whose binding hash
is the one registered (node/user_checks.py).

Durability: stdlib SQLite in the state directory, WAL with ``synchronous=FULL``, so a
registration is on disk before the node answers it (a crash after the answer never loses
an entry; a crash before it leaves the whole request undone: it is one transaction, and
re-sending it is harmless). Write-once three ways: the API has no update or delete, the
primary key refuses a second row, and triggers refuse UPDATE and DELETE from any other
client. Several worker processes share the file (SQLite locks it).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tkms.protocol.binding_registration import BindingEntry

FILE_NAME = "bindings.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    chain_id INTEGER NOT NULL CHECK (chain_id BETWEEN 1 AND 4294967295),
    handle BLOB NOT NULL CHECK (length(handle) = 32),
    record BLOB NOT NULL CHECK (length(record) = 32),
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (chain_id, handle)
) STRICT;
CREATE TRIGGER IF NOT EXISTS bindings_no_update BEFORE UPDATE ON bindings
    BEGIN SELECT RAISE(ABORT, 'bindings are write-once'); END;
CREATE TRIGGER IF NOT EXISTS bindings_no_delete BEFORE DELETE ON bindings
    BEGIN SELECT RAISE(ABORT, 'bindings are write-once'); END;
"""


class RegistryError(Exception):
    """The registry's database failed (the caller answers 503, never a 500)."""


@dataclass
class Registered:
    created: int = 0
    unchanged: int = 0
    conflicted: list[bytes] = field(default_factory=list)


class BindingRegistry:
    """One connection, guarded by a lock (routes and checks share it)."""

    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # each commit fsynced
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise RegistryError(f"{path}: {exc}") from None

    def __repr__(self) -> str:
        return f"BindingRegistry({self.path})"

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> BindingRegistry:
        return cls(state_dir / FILE_NAME)

    def record(self, chain_id: int, handle: bytes) -> bytes | None:
        """The record registered for ``handle`` on this chain, or None."""
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT record FROM bindings WHERE chain_id = ? AND handle = ?",
                    (chain_id, handle),
                ).fetchone()
        except sqlite3.Error as exc:
            raise RegistryError(str(exc)) from None
        return None if row is None else bytes(row[0])

    def register(self, chain_id: int, entries: Sequence[BindingEntry], now: int) -> Registered:
        """Write every new entry in one transaction, committed (fsynced) before it returns.

        An entry already registered with the same record is ``unchanged``; with another
        record it is ``conflicted`` and the first one is kept: never overwritten.
        """
        outcome = Registered()
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for entry in entries:
                        cursor = self._conn.execute(
                            "INSERT INTO bindings (chain_id, handle, record, registered_at)"
                            " VALUES (?, ?, ?, ?) ON CONFLICT (chain_id, handle) DO NOTHING",
                            (chain_id, entry.handle, entry.record, now),
                        )
                        if cursor.rowcount == 1:
                            outcome.created += 1
                            continue
                        row = self._conn.execute(
                            "SELECT record FROM bindings WHERE chain_id = ? AND handle = ?",
                            (chain_id, entry.handle),
                        ).fetchone()
                        if row is not None and bytes(row[0]) == entry.record:
                            outcome.unchanged += 1
                        else:
                            outcome.conflicted.append(entry.handle)
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise RegistryError(str(exc)) from None
        return outcome

    def count(self, chain_id: int) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM bindings WHERE chain_id = ?", (chain_id,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
