"""The 32-byte handle of the Nox Handle Gateway and the Solidity type codes in it.

Layout (nox-compat.md): version ‖ chainId (uint32 BE) ‖ type code ‖ attributes ‖
25 random bytes. A handle names a secret; it reveals the chain and the type of
the plaintext, never anything about the plaintext itself.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

HANDLE_LENGTH = 32
HANDLE_VERSION = 0
RANDOM_LENGTH = 25
UINT32_MAX = 2**32 - 1

# Bit 0 is the only attribute nox defines; the other bits are reserved, and a
# handle that sets them comes from a format we do not understand.
ATTR_UNIQUE = 0x01
_KNOWN_ATTRIBUTES = ATTR_UNIQUE

_HANDLE_TEXT = re.compile(r"0x[0-9a-fA-F]{64}")
_SIZED_NAME = re.compile(r"(uint|int|bytes)([1-9][0-9]{0,2})")


class HandleError(ValueError):
    """A handle, or a Solidity type name or code, is not well-formed."""


class TypeFamily(StrEnum):
    BOOL = "bool"
    ADDRESS = "address"
    BYTES = "bytes"
    STRING = "string"
    UINT = "uint"
    INT = "int"
    FIXED_BYTES = "bytesN"


# Codes of the families that carry a size: code = base + size in bytes.
_SIZED_BASE = {TypeFamily.UINT: 3, TypeFamily.INT: 35, TypeFamily.FIXED_BYTES: 67}
_UNSIZED_CODE = {
    TypeFamily.BOOL: 0,
    TypeFamily.ADDRESS: 1,
    TypeFamily.BYTES: 2,
    TypeFamily.STRING: 3,
}
MAX_TYPE_CODE = 99


@dataclass(frozen=True, slots=True)
class SolidityType:
    """One of the plaintext types a handle can carry.

    ``size`` is the width in bytes for uintN/intN/bytesN (1..32) and 0 otherwise.
    """

    family: TypeFamily
    size: int = 0

    def __post_init__(self) -> None:
        sized = self.family in _SIZED_BASE
        if sized and not 1 <= self.size <= 32:
            raise HandleError(f"{self.family.value} size must be 1..32 bytes, got {self.size}")
        if not sized and self.size != 0:
            raise HandleError(f"{self.family.value} has no size")

    @classmethod
    def parse(cls, name: object) -> SolidityType:
        """The type of a canonical Solidity name (``uint256``, not ``uint``)."""
        if not isinstance(name, str):
            raise HandleError("solidity type must be a string")
        for family, code in _UNSIZED_CODE.items():
            if name == family.value:
                return cls.from_code(code)
        match = _SIZED_NAME.fullmatch(name)
        if match is None:
            raise HandleError(f"unsupported solidity type {name!r:.40}")
        prefix, number = match.group(1), int(match.group(2))
        if prefix == "bytes":
            if number > 32:
                raise HandleError(f"unsupported solidity type {name!r}")
            return cls(TypeFamily.FIXED_BYTES, number)
        if number % 8 or number > 256:
            raise HandleError(f"unsupported solidity type {name!r}")
        return cls(TypeFamily.UINT if prefix == "uint" else TypeFamily.INT, number // 8)

    @classmethod
    def from_code(cls, code: int) -> SolidityType:
        # Each handle parsed asks for its type (a node in user mode: every partial).
        exact = cls is SolidityType and type(code) is int
        known = _BY_CODE.get(code) if exact else None
        if known is not None:
            return known
        if not 0 <= code <= MAX_TYPE_CODE:
            raise HandleError(f"unknown type code {code}")
        for family, unsized in _UNSIZED_CODE.items():
            if code == unsized:
                found = cls(family)
                break
        else:
            # Ranges are contiguous and ordered: pick the last base below the code.
            family = max(
                (f for f, base in _SIZED_BASE.items() if code > base), key=_SIZED_BASE.__getitem__
            )
            found = cls(family, code - _SIZED_BASE[family])
        if exact:
            _BY_CODE[code] = found
        return found

    @property
    def code(self) -> int:
        if self.family in _SIZED_BASE:
            return _SIZED_BASE[self.family] + self.size
        return _UNSIZED_CODE[self.family]

    @property
    def name(self) -> str:
        if self.family is TypeFamily.FIXED_BYTES:
            return f"bytes{self.size}"
        if self.family in (TypeFamily.UINT, TypeFamily.INT):
            return f"{self.family.value}{self.size * 8}"
        return self.family.value

    @property
    def fixed_length(self) -> int | None:
        """The exact plaintext length in bytes, or None for ``bytes``/``string``."""
        if self.family in _SIZED_BASE:
            return self.size
        return {TypeFamily.BOOL: 1, TypeFamily.ADDRESS: 20}.get(self.family)

    def __str__(self) -> str:
        return self.name


_BY_CODE: dict[int, SolidityType] = {}  # at most MAX_TYPE_CODE + 1 entries, each immutable


def as_solidity_type(value: SolidityType | str) -> SolidityType:
    return value if isinstance(value, SolidityType) else SolidityType.parse(value)


def all_solidity_types() -> list[SolidityType]:
    """Every supported type, in type-code order."""
    return [SolidityType.from_code(code) for code in range(MAX_TYPE_CODE + 1)]


@dataclass(frozen=True, slots=True)
class Handle:
    chain_id: int
    solidity_type: SolidityType
    attributes: int
    random: bytes
    version: int = HANDLE_VERSION

    def __post_init__(self) -> None:
        if self.version != HANDLE_VERSION:
            raise HandleError(f"unsupported handle version {self.version}")
        if not 0 <= self.chain_id <= UINT32_MAX:
            raise HandleError("chain id must fit in uint32")
        if not 0 <= self.attributes <= 0xFF or self.attributes & ~_KNOWN_ATTRIBUTES:
            raise HandleError(f"unknown handle attributes 0x{self.attributes & 0xFF:02x}")
        if len(self.random) != RANDOM_LENGTH:
            raise HandleError(f"handle random part must be {RANDOM_LENGTH} bytes")

    @property
    def unique(self) -> bool:
        return bool(self.attributes & ATTR_UNIQUE)

    def to_bytes(self) -> bytes:
        return (
            bytes([self.version])
            + self.chain_id.to_bytes(4, "big")
            + bytes([self.solidity_type.code, self.attributes])
            + self.random
        )

    @property
    def hex(self) -> str:
        """Wire form: lowercase ``0x`` + 64 hex digits."""
        return "0x" + self.to_bytes().hex()

    def __str__(self) -> str:
        return self.hex


def new_handle(chain_id: int, solidity_type: SolidityType | str) -> bytes:
    """A fresh gateway-input handle: unique attribute set, 25 bytes from ``secrets``.

    The gateway binds its handles to their records instead
    (:func:`tkms.protocol.binding.bound_input_handle`); a random one is what
    Nox makes, and what tests use for a handle that names nothing.
    """
    return input_handle_prefix(chain_id, solidity_type) + secrets.token_bytes(RANDOM_LENGTH)


def input_handle_prefix(chain_id: int, solidity_type: SolidityType | str) -> bytes:
    """The first 7 bytes of a gateway-input handle: version, chain, type, unique attribute."""
    handle = Handle(
        chain_id=chain_id,
        solidity_type=as_solidity_type(solidity_type),
        attributes=ATTR_UNIQUE,
        random=bytes(RANDOM_LENGTH),
    )
    return handle.to_bytes()[: HANDLE_LENGTH - RANDOM_LENGTH]


def parse_handle(value: object, *, chain_id: int | None = None) -> Handle:
    """Decode a handle given as ``0x`` + 64 hex digits (any case) or as 32 bytes.

    With ``chain_id`` the handle must also belong to that chain.
    """
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if len(raw) != HANDLE_LENGTH:
            raise HandleError(f"handle must be {HANDLE_LENGTH} bytes, got {len(raw)}")
    elif isinstance(value, str):
        if _HANDLE_TEXT.fullmatch(value) is None:
            raise HandleError("handle must be 0x followed by 64 hex digits")
        raw = bytes.fromhex(value[2:])
    else:
        raise HandleError("handle must be a hex string or bytes")
    handle = Handle(
        version=raw[0],
        chain_id=int.from_bytes(raw[1:5], "big"),
        solidity_type=SolidityType.from_code(raw[5]),
        attributes=raw[6],
        random=raw[7:],
    )
    if chain_id is not None and handle.chain_id != chain_id:
        raise HandleError(f"handle belongs to chain {handle.chain_id}, not {chain_id}")
    return handle
