"""A stored record, the errors of the stores, and what a record store must do.

Below both the SQL stores (``storage``) and the ACL (``acl``): each needs the
record and the errors, neither needs the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tkms.protocol.handle import HandleError, SolidityType, parse_handle


class StorageError(Exception):
    """The database failed or refused an operation."""


class StoreUnwritable(StorageError):
    """The database answers but refuses writes (read-only file, session or server)."""


class RecordExists(StorageError):
    """A record with this handle is already stored (HTTP 409)."""


class InvalidRecord(StorageError, ValueError):
    """A record or grant is malformed; nothing was written."""


class IntegrityRefused(StorageError):
    """The database refused the data by a constraint (a grant of an unknown handle)."""


def check_len(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        raise InvalidRecord(f"{name} must be {length} bytes")


@dataclass(frozen=True, slots=True, repr=False)
class StoredRecord:
    handle: bytes
    chain_id: int
    solidity_type: SolidityType
    owner: bytes
    application: bytes
    created_at: int
    ciphertext: bytes
    ephemeral_pubkey: bytes
    iv: bytes
    # keccak256(handle ‖ value as 32 bytes): set on a result the runner published
    # (gateway/compute_results.py), None on a user's input.
    value_tag: bytes | None = None
    # The runner's ResultBinding signature (protocol/result_binding.py): a published
    # result's handle comes from the chain, so this is what binds it to the record.
    binding_signature: bytes | None = None

    def __post_init__(self) -> None:
        for name, length in (("handle", 32), ("owner", 20), ("application", 20), ("iv", 12)):
            check_len(name, getattr(self, name), length)
        check_len("ephemeral_pubkey", self.ephemeral_pubkey, 33)
        if self.value_tag is not None:
            check_len("value_tag", self.value_tag, 32)
        if self.binding_signature is not None:
            check_len("binding_signature", self.binding_signature, 65)
        if not isinstance(self.ciphertext, bytes):
            raise InvalidRecord("ciphertext must be bytes")
        if self.created_at < 0 or self.created_at >= 2**63:
            raise InvalidRecord("created_at must be a non-negative 64-bit unix time")
        try:
            parsed = parse_handle(self.handle, chain_id=self.chain_id)
        except HandleError as exc:
            raise InvalidRecord(f"handle: {exc}") from None
        # The handle announces the type to every reader; it must not lie.
        if parsed.solidity_type != self.solidity_type:
            raise InvalidRecord("solidity_type does not match the handle's type code")

    def __repr__(self) -> str:
        return f"StoredRecord(handle=0x{self.handle.hex()}, type={self.solidity_type})"


class RecordStore(Protocol):
    def put(self, record: StoredRecord) -> None:
        """Store a new record; raise RecordExists if its handle is already stored."""

    def get(self, handle: bytes) -> StoredRecord | None: ...

    def close(self) -> None: ...
