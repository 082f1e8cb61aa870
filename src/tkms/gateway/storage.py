"""Write-once store of the gateway's records and ACL grants (SQLite or PostgreSQL).

A handle is written once: the API has no update and no delete, the primary key
makes the database itself refuse a second write, and triggers refuse UPDATE and
DELETE from any other client too. Grants are append-only for the same reason:
an audit trail that cannot be rewritten (there is no revoke yet).

``health()`` says whether the store takes writes, for the gateway's
``/health``: a write statement that inserts nothing, rolled back (it needs the
write lock of SQLite, or a writable PostgreSQL session), and the outcome of the
last real write (a full disk or an I/O error only shows there).

The record, the errors and the store protocol are ``records``'s; a grant and
its role are the ACL's (``acl``): this module only maps them to SQL.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from tkms.gateway.acl import Grant, Role
from tkms.gateway.records import (
    IntegrityRefused,
    InvalidRecord,
    RecordExists,
    StorageError,
    StoredRecord,
    StoreUnwritable,
)
from tkms.protocol.handle import HandleError, SolidityType

_POSTGRES_PREFIXES = ("postgresql://", "postgres://")


_INSERT_RECORD = """
INSERT INTO gateway_records (handle, chain_id, solidity_type, owner, application, created_at,
                             ciphertext, ephemeral_pubkey, iv, handle_value_tag,
                             binding_signature)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (handle) DO NOTHING
"""
_SELECT_RECORD = """
SELECT handle, chain_id, solidity_type, owner, application, created_at,
       ciphertext, ephemeral_pubkey, iv, handle_value_tag, binding_signature
FROM gateway_records WHERE handle = %s
"""
# The public grant stores an empty grantee so that the primary key still dedupes it.
_INSERT_GRANT = (
    "INSERT INTO gateway_grants (handle, role, grantee, granted_by, granted_at)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (handle, role, grantee) DO NOTHING"
)
_SELECT_GRANTS = (
    "SELECT handle, role, grantee, granted_by, granted_at FROM gateway_grants"
    " WHERE handle = %s ORDER BY granted_at, role, grantee"
)


# Takes the write lock and passes the write checks of the database; inserts nothing.
_WRITE_PROBE = (
    "INSERT INTO gateway_grants (handle, role, grantee, granted_by, granted_at)"
    " SELECT handle, role, grantee, granted_by, granted_at FROM gateway_grants WHERE 1 = 0"
)


class SqlRecordStore(ABC):
    """The SQL shared by both back ends; subclasses only move rows."""

    WRITE_FAILURE_SHOWN = 10.0
    """Seconds a failed write keeps ``health()`` degraded while the probe passes."""
    _last_write_failure: float | None = None

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """Run one statement in its own transaction; return the row count."""

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _probe_write(self) -> None:
        """Run ``_WRITE_PROBE`` in a transaction and roll it back; StorageError if refused."""

    @abstractmethod
    def close(self) -> None: ...

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        try:
            count = self._execute(sql, params)
        except (IntegrityRefused, StoreUnwritable):
            raise  # the data was refused, or the probe sees it too: nothing to remember
        except StorageError:
            self._last_write_failure = time.monotonic()
            raise
        self._last_write_failure = None
        return count

    def health(self) -> str | None:
        """None if the store takes writes, else a short public reason (no driver text).

        The probe answers for now; a write that failed in the last few seconds is
        reported too (a full disk shows only there), then ages out, so that a store
        no one writes to any more (a load balancer took it out) is not held
        degraded forever.
        """
        try:
            self._probe_write()
        except StoreUnwritable:
            return "read-only"
        except StorageError:
            return "unavailable"
        failed_at = self._last_write_failure
        if failed_at is not None and time.monotonic() - failed_at < self.WRITE_FAILURE_SHOWN:
            return "write failed"
        return None

    def put(self, record: StoredRecord) -> None:
        r = record
        params = [r.handle, r.chain_id, r.solidity_type.name, r.owner, r.application]
        params += [r.created_at, r.ciphertext, r.ephemeral_pubkey, r.iv, r.value_tag]
        params.append(r.binding_signature)
        if self._write(_INSERT_RECORD, params) == 0:
            raise RecordExists(f"handle 0x{record.handle.hex()} already exists")

    def get(self, handle: bytes) -> StoredRecord | None:
        rows = self._query(_SELECT_RECORD, (bytes(handle),))
        if not rows:
            return None
        handle_, chain_id, type_name, *blobs = rows[0]
        try:
            kind = SolidityType.parse(type_name)
        except HandleError:
            raise InvalidRecord("stored solidity_type is unknown") from None
        return StoredRecord(handle_, chain_id, kind, *blobs)

    def existing(self, handles: Sequence[bytes]) -> set[bytes]:
        """Which of ``handles`` have a record: one SELECT, whatever the batch size."""
        if not handles:
            return set()
        # Only placeholders are joined in (one per handle; the values travel as parameters).
        # MAX_HANDLES_CEILING keeps their number under SQLite's 32,766 and PostgreSQL's 65,535.
        marks = ",".join(["%s"] * len(handles))
        sql = f"SELECT handle FROM gateway_records WHERE handle IN ({marks})"  # noqa: S608
        return {bytes(row[0]) for row in self._query(sql, [bytes(h) for h in handles])}

    def add_grant(self, grant: Grant) -> bool:
        grantee = grant.grantee or b""
        params = (grant.handle, grant.role.value, grantee, grant.granted_by, grant.granted_at)
        return self._write(_INSERT_GRANT, params) > 0

    def grants(self, handle: bytes) -> list[Grant]:
        return [
            Grant(h, Role(role), grantee or None, by, at)
            for h, role, grantee, by, at in self._query(_SELECT_GRANTS, (bytes(handle),))
        ]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


_APPEND_ONLY_MESSAGE = "gateway tables are append-only"

_SQLITE_TRIGGERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table}"
    f" BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END;"
    "\n"
    for table in ("gateway_records", "gateway_grants")
    for op in ("update", "delete")
)

_SQLITE_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS gateway_records (
    handle BLOB NOT NULL PRIMARY KEY CHECK (length(handle) = 32),
    chain_id INTEGER NOT NULL CHECK (chain_id BETWEEN 0 AND 4294967295),
    solidity_type TEXT NOT NULL,
    owner BLOB NOT NULL CHECK (length(owner) = 20),
    application BLOB NOT NULL CHECK (length(application) = 20),
    created_at INTEGER NOT NULL CHECK (created_at >= 0),
    ciphertext BLOB NOT NULL,
    ephemeral_pubkey BLOB NOT NULL CHECK (length(ephemeral_pubkey) = 33),
    iv BLOB NOT NULL CHECK (length(iv) = 12)
) STRICT;
CREATE TABLE IF NOT EXISTS gateway_grants (
    handle BLOB NOT NULL REFERENCES gateway_records (handle),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'admin', 'public')),
    grantee BLOB NOT NULL CHECK (length(grantee) = CASE role WHEN 'public' THEN 0 ELSE 20 END),
    granted_by BLOB NOT NULL CHECK (length(granted_by) = 20),
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (handle, role, grantee)
) STRICT;
{_SQLITE_TRIGGERS}
COMMIT;
"""
# Migration 1 (the runner's results): the value tag of a published result, NULL on an input.
_TAG_COLUMN = "handle_value_tag"
_SQLITE_ADD_TAG = (
    f"ALTER TABLE gateway_records ADD COLUMN {_TAG_COLUMN} BLOB"
    f" CHECK ({_TAG_COLUMN} IS NULL OR length({_TAG_COLUMN}) = 32)"
)
# Migration 2 (bound runner results): the runner's ResultBinding signature, NULL otherwise
# (a user's input, or a result of a runner that does not sign: the Nox runner's).
_BINDING_COLUMN = "binding_signature"
_SQLITE_ADD_BINDING = (
    f"ALTER TABLE gateway_records ADD COLUMN {_BINDING_COLUMN} BLOB"
    f" CHECK ({_BINDING_COLUMN} IS NULL OR length({_BINDING_COLUMN}) = 65)"
)


class SqliteRecordStore(SqlRecordStore):
    """One SQLite file in WAL mode; each thread borrows its own connection.

    Connections are pooled rather than shared so readers never wait on each
    other; writers serialise in SQLite itself (busy timeout, not errors).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self._path = os.fspath(path)
        if self._path in ("", ":memory:") or self._path.startswith("file:"):
            # Each pooled connection would see its own private database.
            raise StorageError("SqliteRecordStore needs a file path")
        self._timeout = timeout
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        _create_private(self._path)
        with self._connection() as conn:
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise StorageError("SQLite refused WAL mode")
            conn.executescript(_SQLITE_SCHEMA)
            _sqlite_migrate(conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        # FULL: an answered POST must survive a power cut, WAL or not.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StorageError("record store is closed")
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                raise _sqlite_error(exc) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.rollback()
            raise _sqlite_error(exc) from None
        finally:
            with self._lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.put(conn)

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        with self._connection() as conn:
            return conn.execute(sql.replace("%s", "?"), params).rowcount

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()

    def _probe_write(self) -> None:
        # A fresh connection: a pooled one keeps the file open for writing after the
        # file turned read-only. mode=rw never creates a missing file.
        if self._closed:
            raise StorageError("record store is closed")
        uri = Path(self._path).absolute().as_uri() + "?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=1.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from None
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_WRITE_PROBE)
            conn.rollback()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from None
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            while True:
                try:
                    self._idle.get_nowait().close()
                except queue.Empty:
                    break


def _sqlite_migrate(conn: sqlite3.Connection) -> None:
    """Add the columns a database made by an older gateway lacks (under the write lock)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(gateway_records)")}
        if _TAG_COLUMN not in columns:
            conn.execute(_SQLITE_ADD_TAG)
        if _BINDING_COLUMN not in columns:
            conn.execute(_SQLITE_ADD_BINDING)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _create_private(path: str) -> None:
    """Create the database file 0600 before SQLite does (its -wal and -shm copy its mode)."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing database keeps the mode its operator gave it
    except OSError as exc:
        raise StorageError(f"SQLite: cannot create {path}: {exc.strerror}") from None


def _sqlite_error(exc: sqlite3.Error) -> StorageError:
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityRefused(f"SQLite: {exc}")
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY:
        return StoreUnwritable(f"SQLite: {exc}")
    return StorageError(f"SQLite: {exc}")


_POSTGRES_SCHEMA = f"""
SELECT pg_advisory_xact_lock(7308447215405377107);
CREATE TABLE IF NOT EXISTS gateway_records (
    handle BYTEA PRIMARY KEY CHECK (octet_length(handle) = 32),
    chain_id BIGINT NOT NULL CHECK (chain_id BETWEEN 0 AND 4294967295),
    solidity_type TEXT NOT NULL,
    owner BYTEA NOT NULL CHECK (octet_length(owner) = 20),
    application BYTEA NOT NULL CHECK (octet_length(application) = 20),
    created_at BIGINT NOT NULL CHECK (created_at >= 0),
    ciphertext BYTEA NOT NULL,
    ephemeral_pubkey BYTEA NOT NULL CHECK (octet_length(ephemeral_pubkey) = 33),
    iv BYTEA NOT NULL CHECK (octet_length(iv) = 12)
);
CREATE TABLE IF NOT EXISTS gateway_grants (
    handle BYTEA NOT NULL REFERENCES gateway_records (handle),
    role TEXT NOT NULL CHECK (role IN ('viewer', 'admin', 'public')),
    grantee BYTEA NOT NULL
        CHECK (octet_length(grantee) = CASE role WHEN 'public' THEN 0 ELSE 20 END),
    granted_by BYTEA NOT NULL CHECK (octet_length(granted_by) = 20),
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (handle, role, grantee)
);
CREATE OR REPLACE FUNCTION gateway_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}'; END $$;
CREATE OR REPLACE TRIGGER gateway_records_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON gateway_records
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only();
CREATE OR REPLACE TRIGGER gateway_grants_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON gateway_grants
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_append_only();
"""


# Migrations 1 and 2, as for SQLite (the advisory lock of the schema step is still held).
_POSTGRES_ADD_TAG = f"""
ALTER TABLE gateway_records ADD COLUMN IF NOT EXISTS {_TAG_COLUMN} BYTEA
    CHECK ({_TAG_COLUMN} IS NULL OR octet_length({_TAG_COLUMN}) = 32);
ALTER TABLE gateway_records ADD COLUMN IF NOT EXISTS {_BINDING_COLUMN} BYTEA
    CHECK ({_BINDING_COLUMN} IS NULL OR octet_length({_BINDING_COLUMN}) = 65);
"""


def describe_postgres_url(url: str) -> str:
    """``host:port/dbname`` of a connection string, never its password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "<unparsable PostgreSQL URL>"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class PostgresRecordStore(SqlRecordStore):
    """PostgreSQL through a psycopg connection pool.

    Needs server 14 or later (CREATE OR REPLACE TRIGGER keeps the schema step idempotent).
    """

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 10.0
    ) -> None:
        self._where = describe_postgres_url(url)
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True},
            check=ConnectionPool.check_connection,
            name="tkms-gateway",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(_POSTGRES_SCHEMA + _POSTGRES_ADD_TAG)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise StorageError(
                f"cannot open PostgreSQL at {self._where}: {_pg_message(exc)}"
            ) from None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.IntegrityError as exc:
            raise IntegrityRefused(f"PostgreSQL: {_pg_message(exc)}") from None
        except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege) as exc:
            raise StoreUnwritable(f"PostgreSQL: {_pg_message(exc)}") from None
        except (PoolTimeout, psycopg.Error) as exc:
            raise StorageError(f"PostgreSQL: {_pg_message(exc)}") from None

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        with self._errors(), self._pool.connection() as conn:
            return conn.execute(sql, params).rowcount

    def _probe_write(self) -> None:
        # A short wait: a server that is down must not hold /health for the pool's timeout.
        with (
            self._errors(),
            self._pool.connection(timeout=2.0) as conn,
            conn.transaction(force_rollback=True),
        ):
            conn.execute(_WRITE_PROBE)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._errors(), self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"PostgresRecordStore({self._where!r})"


def _pg_message(exc: Exception) -> str:
    # The primary message only: DETAIL lines may quote row values.
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def open_record_store(target: str | os.PathLike[str]) -> SqlRecordStore:
    """PostgreSQL for a ``postgresql://`` URL, otherwise an SQLite file at that path."""
    if isinstance(target, str) and target.startswith(_POSTGRES_PREFIXES):
        return PostgresRecordStore(target)
    return SqliteRecordStore(target)
