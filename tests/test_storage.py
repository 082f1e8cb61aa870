"""The record store, the same suite against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import logging
import secrets
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tkms.gateway.acl import Grant, Role
from tkms.gateway.records import InvalidRecord, RecordExists, StorageError, StoredRecord
from tkms.gateway.storage import (
    PostgresRecordStore,
    SqliteRecordStore,
    SqlRecordStore,
    describe_postgres_url,
    open_record_store,
)
from tkms.protocol.handle import SolidityType, new_handle

BACKENDS = ["sqlite", "postgres"]


@contextmanager
def open_backend(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SqlRecordStore]:
    """A fresh, empty store; PostgreSQL is only started when a test asks for it."""
    target = (
        request.getfixturevalue("postgres_url")
        if backend == "postgres"
        else str(tmp_path / "gateway.db")
    )
    store = open_record_store(target)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRecordStore]:
    with open_backend(request.param, request, tmp_path) as opened:
        yield opened


def address() -> bytes:
    return secrets.token_bytes(20)


def make_record(
    type_name: str = "uint256", chain: int = 11155111, **overrides: Any
) -> StoredRecord:
    kind = SolidityType.parse(type_name)
    fields: dict[str, Any] = {
        "handle": new_handle(chain, kind),
        "chain_id": chain,
        "solidity_type": kind,
        "owner": address(),
        "application": address(),
        "created_at": 1_700_000_000,
        "ciphertext": secrets.token_bytes(48),
        "ephemeral_pubkey": b"\x02" + secrets.token_bytes(32),
        "iv": secrets.token_bytes(12),
    }
    fields.update(overrides)
    return StoredRecord(**fields)


def test_round_trip_every_field(store: SqlRecordStore) -> None:
    for name in ("bool", "address", "bytes", "string", "uint8", "int256", "bytes32"):
        record = make_record(name, chain=2**32 - 1, created_at=2**63 - 1)
        store.put(record)
        loaded = store.get(record.handle)
        assert loaded == record
        assert loaded is not None and type(loaded.ciphertext) is bytes


def test_empty_and_large_ciphertexts(store: SqlRecordStore) -> None:
    for ciphertext in (b"", b"\x00" * 100_000):
        record = make_record(ciphertext=ciphertext, created_at=0, chain=0)
        store.put(record)
        assert store.get(record.handle) == record


def test_unknown_handle_is_none(store: SqlRecordStore) -> None:
    store.put(make_record())
    assert store.get(new_handle(11155111, "uint256")) is None
    assert store.get(b"\x00" * 32) is None


def test_existing_answers_a_batch_in_one_query(
    store: SqlRecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /v0/public/handles/status: 1,000 handles, one SELECT, the stored ones named."""
    stored = [make_record() for _ in range(300)]
    for record in stored:
        store.put(record)
    unknown = [new_handle(11155111, "uint256") for _ in range(700)]
    batch = [r.handle for r in stored] + unknown
    secrets.SystemRandom().shuffle(batch)
    queries: list[str] = []
    real = store._query

    def counted(sql: str, params: Any) -> list[tuple[Any, ...]]:
        queries.append(sql)
        return real(sql, params)

    monkeypatch.setattr(store, "_query", counted)
    assert store.existing(batch) == {r.handle for r in stored}
    assert len(queries) == 1
    assert store.existing([]) == set() and len(queries) == 1  # nothing to ask: no query
    assert store.existing(unknown[:1] * 3) == set()


def test_write_once(store: SqlRecordStore) -> None:
    record = make_record()
    store.put(record)
    other = make_record(handle=record.handle, ciphertext=b"other")
    with pytest.raises(RecordExists, match=record.handle.hex()):
        store.put(other)
    with pytest.raises(RecordExists):
        store.put(record)
    assert store.get(record.handle) == record


def test_concurrent_puts_of_one_handle(store: SqlRecordStore) -> None:
    record = make_record()
    contenders = [make_record(handle=record.handle, ciphertext=bytes([i])) for i in range(8)]
    barrier = threading.Barrier(len(contenders))

    def attempt(candidate: StoredRecord) -> StoredRecord | None:
        barrier.wait()
        try:
            store.put(candidate)
        except RecordExists:
            return None
        return candidate

    with ThreadPoolExecutor(len(contenders)) as pool:
        winners = [r for r in pool.map(attempt, contenders) if r is not None]
    assert len(winners) == 1
    assert store.get(record.handle) == winners[0]


def test_concurrent_writers(store: SqlRecordStore) -> None:
    def write_batch(_: int) -> list[StoredRecord]:
        batch = [make_record() for _ in range(15)]
        for record in batch:
            store.put(record)
            assert store.get(record.handle) == record
        return batch

    with ThreadPoolExecutor(4) as pool:
        written = [r for batch in pool.map(write_batch, range(4)) for r in batch]
    assert len({r.handle for r in written}) == 60
    for record in written:
        assert store.get(record.handle) == record


def _raw_connection(store: SqlRecordStore, request: pytest.FixtureRequest) -> Any:
    if isinstance(store, SqliteRecordStore):
        return sqlite3.connect(str(request.getfixturevalue("tmp_path") / "gateway.db"))
    return psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE gateway_records SET ciphertext = ciphertext",
        "DELETE FROM gateway_records",
        "UPDATE gateway_grants SET granted_at = 0",
        "DELETE FROM gateway_grants",
    ],
)
def test_database_refuses_update_and_delete(
    store: SqlRecordStore, request: pytest.FixtureRequest, statement: str
) -> None:
    record = make_record()
    store.put(record)
    # SQLite triggers fire per row: the grants table needs a row to refuse.
    store.add_grant(Grant(record.handle, Role.PUBLIC, None, record.owner, 1))
    conn = _raw_connection(store, request)
    try:
        with pytest.raises((sqlite3.Error, psycopg.Error), match="append-only"):
            conn.execute(statement)
    finally:
        conn.close()
    assert store.get(record.handle) == record


def test_schema_creation_is_idempotent(
    store: SqlRecordStore, request: pytest.FixtureRequest
) -> None:
    record = make_record()
    store.put(record)
    reopen: Callable[[], SqlRecordStore] = (
        (lambda: SqliteRecordStore(request.getfixturevalue("tmp_path") / "gateway.db"))
        if isinstance(store, SqliteRecordStore)
        else (lambda: PostgresRecordStore(request.getfixturevalue("postgres_url")))
    )
    with ThreadPoolExecutor(3) as pool:
        others = list(pool.map(lambda _: reopen(), range(3)))
    for other in others:
        assert other.get(record.handle) == record
        other.close()


def test_closed_store_refuses(store: SqlRecordStore) -> None:
    store.close()
    with pytest.raises(StorageError):
        store.get(b"\x00" * 32)


def test_health_probe_writes_nothing_and_a_refused_grant_is_no_outage(
    store: SqlRecordStore,
) -> None:
    assert store.health() is None
    record = make_record()
    store.put(record)
    stranger = Grant(
        new_handle(11155111, SolidityType.parse("bool")), Role.VIEWER, address(), address(), 1
    )
    with pytest.raises(StorageError):
        store.add_grant(stranger)  # no such record: the database refuses the data
    assert store.health() is None
    assert store.grants(record.handle) == [] and store.get(record.handle) == record
    store.close()
    assert store.health() == "unavailable"


def test_sqlite_files_are_created_private(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    with SqliteRecordStore(path) as store:
        store.put(make_record())
        for name in ("gateway.db", "gateway.db-wal", "gateway.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    records = [make_record(name) for name in ("bool", "string", "int16")]
    with SqliteRecordStore(path) as first:
        for record in records:
            first.put(record)
    with SqliteRecordStore(str(path)) as second:
        for record in records:
            assert second.get(record.handle) == record
        with pytest.raises(RecordExists):
            second.put(records[0])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("path", ["", ":memory:", "file::memory:?cache=shared"])
def test_sqlite_needs_a_file(path: str) -> None:
    with pytest.raises(StorageError):
        SqliteRecordStore(path)


def test_sqlite_unopenable_path_is_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        SqliteRecordStore(tmp_path / "missing-dir" / "gateway.db")


def test_open_record_store_dispatch(tmp_path: Path, postgres_url: str) -> None:
    with open_record_store(tmp_path / "x.db") as sqlite_store:
        assert isinstance(sqlite_store, SqliteRecordStore)
    with open_record_store(postgres_url) as pg_store:
        assert isinstance(pg_store, PostgresRecordStore)


def test_postgres_unreachable_is_a_storage_error_without_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket_port() as port:
        url = f"postgresql://someone:hunter2secret@127.0.0.1:{port}/db?connect_timeout=1"
        with pytest.raises(StorageError) as info:
            PostgresRecordStore(url, timeout=0.5)
    assert "hunter2secret" not in str(info.value)
    assert f"127.0.0.1:{port}/db" in str(info.value)
    assert caplog.records, "the pool is expected to log its failed attempts"
    assert "hunter2secret" not in caplog.text


@contextmanager
def socket_port() -> Iterator[int]:
    """A loopback port with nothing listening on it while the block runs."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_describe_postgres_url_hides_password() -> None:
    url = "postgresql://alice:s3cret@db.example:6543/gw?sslmode=require"
    assert describe_postgres_url(url) == "db.example:6543/gw"
    assert "s3cret" not in describe_postgres_url("host=h password=s3cret dbname=d")
    assert "s3cret" not in describe_postgres_url("postgresql://a:s3cret@[bad")


@pytest.mark.parametrize(
    "overrides",
    [
        {"owner": b"\x01" * 19},
        {"application": b"\x01" * 21},
        {"ephemeral_pubkey": b"\x02" * 32},
        {"iv": b"\x00" * 16},
        {"handle": b"\x00" * 31},
        {"handle": "0x" + "00" * 32},
        {"created_at": -1},
        {"chain_id": 1},  # the handle says 11155111
        {"solidity_type": SolidityType.parse("uint128")},  # the handle says uint256
        {"ciphertext": "not bytes"},
    ],
)
def test_invalid_records(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidRecord):
        make_record(**overrides)


def test_record_repr_is_short() -> None:
    record = make_record()
    assert record.ciphertext.hex() not in repr(record)
    assert record.handle.hex() in repr(record)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_of_an_older_gateway_gains_the_value_tag_column(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Migration 1: its records read back without a tag; new ones keep theirs."""
    from tkms.gateway import storage

    old = make_record()
    insert = (
        "INSERT INTO gateway_records (handle, chain_id, solidity_type, owner, application,"
        " created_at, ciphertext, ephemeral_pubkey, iv) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    row = (old.handle, old.chain_id, old.solidity_type.name, old.owner, old.application)
    row += (old.created_at, old.ciphertext, old.ephemeral_pubkey, old.iv)
    if backend == "sqlite":
        path = tmp_path / "gateway.db"
        conn: Any = sqlite3.connect(path, isolation_level=None)
        conn.executescript(storage._SQLITE_SCHEMA)  # the schema before migration 1
        conn.execute(insert.replace("%s", "?"), row)
        conn.close()
        target = str(path)
    else:
        target = request.getfixturevalue("postgres_url")
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(storage._POSTGRES_SCHEMA)
            conn.execute(insert, row)
    with open_record_store(target) as store:
        assert store.get(old.handle) == old and old.value_tag is None
        tagged = make_record(value_tag=secrets.token_bytes(32))
        store.put(tagged)
        assert store.get(tagged.handle) == tagged
    with open_record_store(target) as store:  # and opening it again changes nothing
        assert store.get(tagged.handle) == tagged


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_with_value_tags_gains_the_binding_signature_column(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Migration 2 over migration 1: a tagged result reads back unsigned; a signed one keeps
    its signature; a signature of another length is refused by the database itself."""
    from tkms.gateway import storage

    old = make_record(value_tag=secrets.token_bytes(32))
    insert = (
        "INSERT INTO gateway_records (handle, chain_id, solidity_type, owner, application,"
        " created_at, ciphertext, ephemeral_pubkey, iv, handle_value_tag)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )
    row = (old.handle, old.chain_id, old.solidity_type.name, old.owner, old.application)
    row += (old.created_at, old.ciphertext, old.ephemeral_pubkey, old.iv, old.value_tag)
    if backend == "sqlite":
        path = tmp_path / "gateway.db"
        conn: Any = sqlite3.connect(path, isolation_level=None)
        conn.executescript(storage._SQLITE_SCHEMA)
        conn.execute(storage._SQLITE_ADD_TAG)  # migration 1 only
        conn.execute(insert.replace("%s", "?"), row)
        conn.close()
        target = str(path)
    else:
        target = request.getfixturevalue("postgres_url")
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(storage._POSTGRES_SCHEMA)
            conn.execute(
                "ALTER TABLE gateway_records ADD COLUMN handle_value_tag BYTEA"
            )  # migration 1 only
            conn.execute(insert, row)
    with open_record_store(target) as store:
        assert store.get(old.handle) == old and old.binding_signature is None
        bound = make_record(value_tag=secrets.token_bytes(32), binding_signature=bytes(65))
        store.put(bound)
        assert store.get(bound.handle) == bound
        with pytest.raises((StorageError, sqlite3.Error, psycopg.Error)):
            store._execute(
                "INSERT INTO gateway_records (handle, chain_id, solidity_type, owner,"
                " application, created_at, ciphertext, ephemeral_pubkey, iv,"
                " binding_signature) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [secrets.token_bytes(32), *row[1:9], bytes(64)],
            )
