"""Who may obtain the material of a handle.

The HTTP layer depends only on ``AccessControl``, the two questions the Nox
contract answers on-chain (``isViewer(bytes32,address)`` and
``isPubliclyDecryptable(bytes32)``), so an adapter calling them by ``eth_call``
can replace ``EmbeddedAcl`` without touching the gateway.

``EmbeddedAcl`` keeps the list in the record store's database. Its rules: the
owner of a record is always a viewer; the owner or an admin may grant any role;
admins are viewers; a public handle has every address as a viewer. Grants are
append-only and idempotent; there is no revoke yet, because an append-only log
has no ordering question to answer between a revoke and a concurrent read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tkms.gateway.records import InvalidRecord, RecordStore, StoredRecord, check_len


class Role(StrEnum):
    VIEWER = "viewer"
    ADMIN = "admin"
    PUBLIC = "public"


@dataclass(frozen=True, slots=True)
class Grant:
    """One ACL entry. ``grantee`` is None exactly for the public role."""

    handle: bytes
    role: Role
    grantee: bytes | None
    granted_by: bytes
    granted_at: int

    def __post_init__(self) -> None:
        check_len("handle", self.handle, 32)
        check_len("granted_by", self.granted_by, 20)
        if self.role is Role.PUBLIC:
            if self.grantee is not None:
                raise InvalidRecord("a public grant has no grantee")
        elif self.grantee is None:
            raise InvalidRecord(f"a {self.role} grant needs a grantee")
        else:
            check_len("grantee", self.grantee, 20)


class GrantStore(Protocol):
    def add_grant(self, grant: Grant) -> bool:
        """Append a grant; False if the same (handle, role, grantee) already exists."""

    def grants(self, handle: bytes) -> list[Grant]: ...


class AccessControl(Protocol):
    def is_viewer(self, handle: bytes, address: bytes) -> bool:
        """True for the owner, viewers and admins of ``handle``, and anyone if it is public."""

    def is_publicly_decryptable(self, handle: bytes) -> bool: ...


class AclError(Exception):
    """An ACL change was refused."""


class UnknownHandle(AclError, LookupError):
    """No record has this handle (HTTP 404)."""


class NotAuthorized(AclError):
    """``granted_by`` is neither the owner nor an admin of the handle (HTTP 403)."""


class InvalidGrant(AclError, ValueError):
    """The grant itself is malformed (HTTP 400)."""


class AclStore(RecordStore, GrantStore, Protocol):
    """A record store that also keeps grants (both SQL stores are)."""


@dataclass(frozen=True, slots=True)
class AclListing:
    """``viewers`` and ``admins`` are the explicit grants; the owner is a viewer regardless."""

    owner: bytes
    admins: tuple[bytes, ...]
    viewers: tuple[bytes, ...]
    public: bool


def _unix_now() -> int:
    return int(time.time())


class EmbeddedAcl:
    def __init__(self, store: AclStore, *, clock: Callable[[], int] = _unix_now) -> None:
        self._store = store
        self._clock = clock

    def _state(self, handle: bytes) -> tuple[StoredRecord, list[Grant]] | None:
        record = self._store.get(handle)
        if record is None:
            return None
        return record, self._store.grants(handle)

    def is_viewer(self, handle: bytes, address: bytes) -> bool:
        state = self._state(handle)
        if state is None:
            return False
        record, grants = state
        if address == record.owner:
            return True
        # Both viewer and admin grants name a viewer; a public grant names everyone.
        return any(g.role is Role.PUBLIC or g.grantee == address for g in grants)

    def is_publicly_decryptable(self, handle: bytes) -> bool:
        state = self._state(handle)
        return state is not None and any(g.role is Role.PUBLIC for g in state[1])

    def grant(
        self, handle: bytes, grantee: bytes | None, role: Role | str, granted_by: bytes
    ) -> bool:
        """Record a grant made by the already-authenticated ``granted_by``.

        ``grantee`` is None for the public role. Returns False when the grant
        already existed (nothing changes: grants are idempotent).
        """
        try:
            role = Role(role)
            entry = Grant(handle, role, grantee, granted_by, self._clock())
        except (ValueError, InvalidRecord) as exc:
            raise InvalidGrant(str(exc)) from None
        state = self._state(handle)
        if state is None:
            raise UnknownHandle(f"no record for handle 0x{handle.hex()}")
        record, grants = state
        # Checked before the insert and not in one transaction: without revoke an
        # admin stays an admin, so the check cannot go stale.
        if granted_by != record.owner and not any(
            g.role is Role.ADMIN and g.grantee == granted_by for g in grants
        ):
            raise NotAuthorized("only the owner or an admin of the handle may grant access")
        return self._store.add_grant(entry)

    def list(self, handle: bytes) -> AclListing | None:
        state = self._state(handle)
        if state is None:
            return None
        record, grants = state

        def named(role: Role) -> tuple[bytes, ...]:
            return tuple(dict.fromkeys(g.grantee for g in grants if g.role is role and g.grantee))

        return AclListing(
            owner=record.owner,
            admins=named(Role.ADMIN),
            viewers=named(Role.VIEWER),
            public=any(g.role is Role.PUBLIC for g in grants),
        )
