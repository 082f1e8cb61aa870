"""The embedded ACL, against a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.test_storage import BACKENDS, address, make_record, open_backend
from tkms.gateway.acl import (
    AccessControl,
    AclListing,
    EmbeddedAcl,
    InvalidGrant,
    NotAuthorized,
    Role,
    UnknownHandle,
)
from tkms.gateway.records import StoredRecord
from tkms.gateway.storage import SqliteRecordStore, SqlRecordStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRecordStore]:
    with open_backend(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture
def acl(store: SqlRecordStore) -> EmbeddedAcl:
    return EmbeddedAcl(store, clock=lambda: 1_700_000_000)


@pytest.fixture
def record(store: SqlRecordStore) -> StoredRecord:
    stored = make_record()
    store.put(stored)
    return stored


def test_embedded_acl_is_an_access_control(acl: EmbeddedAcl) -> None:
    checker: AccessControl = acl
    assert checker.is_viewer(b"\x00" * 32, address()) is False


def test_owner_is_always_a_viewer(acl: EmbeddedAcl, record: StoredRecord) -> None:
    assert acl.is_viewer(record.handle, record.owner)
    assert not acl.is_viewer(record.handle, address())
    assert not acl.is_viewer(record.handle, record.application)
    assert not acl.is_publicly_decryptable(record.handle)
    assert acl.list(record.handle) == AclListing(record.owner, (), (), False)


def test_unknown_handle(acl: EmbeddedAcl, record: StoredRecord) -> None:
    unknown = make_record().handle
    assert not acl.is_viewer(unknown, record.owner)
    assert not acl.is_publicly_decryptable(unknown)
    assert acl.list(unknown) is None
    with pytest.raises(UnknownHandle):
        acl.grant(unknown, address(), Role.VIEWER, record.owner)


def test_owner_grants_viewer(acl: EmbeddedAcl, record: StoredRecord) -> None:
    reader = address()
    assert acl.grant(record.handle, reader, Role.VIEWER, record.owner) is True
    assert acl.is_viewer(record.handle, reader)
    assert acl.list(record.handle) == AclListing(record.owner, (), (reader,), False)


def test_grants_are_idempotent(acl: EmbeddedAcl, record: StoredRecord) -> None:
    reader = address()
    assert acl.grant(record.handle, reader, "viewer", record.owner) is True
    assert acl.grant(record.handle, reader, "viewer", record.owner) is False
    listing = acl.list(record.handle)
    assert listing is not None and listing.viewers == (reader,)


def test_stranger_cannot_grant(acl: EmbeddedAcl, record: StoredRecord) -> None:
    stranger = address()
    for role, grantee in ((Role.VIEWER, stranger), (Role.ADMIN, stranger), (Role.PUBLIC, None)):
        with pytest.raises(NotAuthorized):
            acl.grant(record.handle, grantee, role, stranger)
    assert not acl.is_viewer(record.handle, stranger)
    assert not acl.is_publicly_decryptable(record.handle)
    assert acl.list(record.handle) == AclListing(record.owner, (), (), False)


def test_viewer_cannot_grant(acl: EmbeddedAcl, record: StoredRecord) -> None:
    viewer, friend = address(), address()
    acl.grant(record.handle, viewer, Role.VIEWER, record.owner)
    with pytest.raises(NotAuthorized):
        acl.grant(record.handle, friend, Role.VIEWER, viewer)
    with pytest.raises(NotAuthorized):
        acl.grant(record.handle, viewer, Role.ADMIN, viewer)
    assert not acl.is_viewer(record.handle, friend)


def test_admin_can_grant(acl: EmbeddedAcl, record: StoredRecord) -> None:
    admin, reader, second_admin = address(), address(), address()
    acl.grant(record.handle, admin, Role.ADMIN, record.owner)
    assert acl.is_viewer(record.handle, admin)
    assert acl.grant(record.handle, reader, Role.VIEWER, admin)
    assert acl.grant(record.handle, second_admin, Role.ADMIN, admin)
    assert acl.grant(record.handle, address(), Role.VIEWER, second_admin)
    assert acl.is_viewer(record.handle, reader)
    listing = acl.list(record.handle)
    assert listing is not None
    assert set(listing.admins) == {admin, second_admin}
    assert len(listing.viewers) == 2 and reader in listing.viewers


def test_public_flag(acl: EmbeddedAcl, record: StoredRecord) -> None:
    admin = address()
    acl.grant(record.handle, admin, Role.ADMIN, record.owner)
    assert acl.grant(record.handle, None, Role.PUBLIC, admin)
    assert acl.grant(record.handle, None, "public", record.owner) is False
    assert acl.is_publicly_decryptable(record.handle)
    assert acl.is_viewer(record.handle, address())
    assert acl.list(record.handle) == AclListing(record.owner, (admin,), (), True)


def test_grants_are_per_handle(acl: EmbeddedAcl, store: SqlRecordStore) -> None:
    first, second = make_record(), make_record()
    store.put(first)
    store.put(second)
    reader = address()
    acl.grant(first.handle, reader, Role.VIEWER, first.owner)
    acl.grant(first.handle, None, Role.PUBLIC, first.owner)
    assert not acl.is_viewer(second.handle, reader)
    assert not acl.is_publicly_decryptable(second.handle)
    with pytest.raises(NotAuthorized):
        acl.grant(second.handle, reader, Role.VIEWER, first.owner)


@pytest.mark.parametrize(
    ("grantee", "role"),
    [
        (None, Role.VIEWER),
        (None, Role.ADMIN),
        (b"\x01" * 20, Role.PUBLIC),
        (b"\x01" * 19, Role.VIEWER),
        (b"\x01" * 20, "owner"),
        (b"\x01" * 20, "VIEWER"),
    ],
    ids=["viewer-nobody", "admin-nobody", "public-someone", "short", "owner", "uppercase"],
)
def test_malformed_grants(
    acl: EmbeddedAcl, record: StoredRecord, grantee: bytes | None, role: str
) -> None:
    with pytest.raises(InvalidGrant):
        acl.grant(record.handle, grantee, role, record.owner)
    assert acl.list(record.handle) == AclListing(record.owner, (), (), False)


def test_malformed_granter(acl: EmbeddedAcl, record: StoredRecord) -> None:
    with pytest.raises(InvalidGrant):
        acl.grant(record.handle, address(), Role.VIEWER, record.owner[:19])


def test_concurrent_identical_grants(acl: EmbeddedAcl, record: StoredRecord) -> None:
    reader = address()
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(lambda _: acl.grant(record.handle, reader, "viewer", record.owner), range(6))
        )
    assert results.count(True) == 1
    listing = acl.list(record.handle)
    assert listing is not None and listing.viewers == (reader,)


def test_sqlite_grants_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    stored, admin, reader = make_record(), address(), address()
    with SqliteRecordStore(path) as first:
        first.put(stored)
        acl = EmbeddedAcl(first)
        acl.grant(stored.handle, admin, Role.ADMIN, stored.owner)
        acl.grant(stored.handle, reader, Role.VIEWER, admin)
        acl.grant(stored.handle, None, Role.PUBLIC, stored.owner)
    with SqliteRecordStore(path) as second:
        acl = EmbeddedAcl(second)
        assert acl.list(stored.handle) == AclListing(stored.owner, (admin,), (reader,), True)
        assert acl.grant(stored.handle, address(), Role.VIEWER, admin)
