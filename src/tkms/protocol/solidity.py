"""Plaintext codec of the Nox Handle Gateway.

bool is one byte 00/01; uintN/intN are N/8 bytes big-endian (two's complement);
address is 20 bytes; bytesN is n bytes; string is UTF-8; bytes is raw.

Plaintexts are the secrets this service protects: no error raised here ever
quotes the value, only the type and the lengths involved.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from tkms.crypto.encoding import EncodingError, parse_hex
from tkms.protocol.handle import SolidityType, TypeFamily, as_solidity_type

PlainValue = bool | int | str | bytes
PlainInput = PlainValue | bytearray


class ValueEncodingError(ValueError):
    """A plaintext does not fit its Solidity type."""


def _hex(value: str, what: str) -> bytes:
    try:
        return parse_hex(value, name=what)
    except EncodingError as exc:
        raise ValueEncodingError(str(exc)) from None


def check_encoded(plaintext: bytes, solidity_type: SolidityType | str) -> bytes:
    """Return ``plaintext`` unchanged if it is a valid encoding for the type."""
    kind = as_solidity_type(solidity_type)
    expected = kind.fixed_length
    if expected is not None and len(plaintext) != expected:
        raise ValueEncodingError(
            f"a {kind.name} value is {expected} bytes, got {len(plaintext)} bytes"
        )
    if kind.family is TypeFamily.BOOL and plaintext not in (b"\x00", b"\x01"):
        raise ValueEncodingError("a bool value must be 0x00 or 0x01")
    if kind.family is TypeFamily.STRING:
        _utf8(plaintext)
    return plaintext


def parse_encoded_value(value: object, solidity_type: SolidityType | str) -> bytes:
    """The ``value`` of ``POST /v0/secrets``: ``0x`` hex of the already-encoded plaintext."""
    if not isinstance(value, str):
        raise ValueEncodingError("value must be a 0x hex string")
    return check_encoded(_hex(value, "value"), solidity_type)


def encode_value(value: PlainInput, solidity_type: SolidityType | str) -> bytes:
    """Encode a Python value for the type.

    bool takes a ``bool``; uintN/intN an ``int`` in range; address a ``0x`` hex
    string or 20 bytes; bytes/bytesN ``bytes`` or a ``0x`` hex string; string a ``str``.
    """
    kind = as_solidity_type(solidity_type)
    family = kind.family
    if family is TypeFamily.BOOL:
        if not isinstance(value, bool):
            raise ValueEncodingError("a bool value must be True or False")
        return b"\x01" if value else b"\x00"
    if family in (TypeFamily.UINT, TypeFamily.INT):
        return _encode_int(value, kind)
    if family is TypeFamily.STRING:
        if not isinstance(value, str):
            raise ValueEncodingError("a string value must be a str")
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueEncodingError("string value is not encodable as UTF-8") from None
    if isinstance(value, str):
        raw = _hex(value, kind.name)
    elif isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        raise ValueEncodingError(f"a {kind.name} value must be bytes or a 0x hex string")
    return check_encoded(raw, kind)


def _encode_int(value: PlainInput, kind: SolidityType) -> bytes:
    # bool is an int subclass; True as a uint8 is almost always a caller mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueEncodingError(f"a {kind.name} value must be an int")
    bits = kind.size * 8
    signed = kind.family is TypeFamily.INT
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not low <= value <= high:
        raise ValueEncodingError(f"value out of range for {kind.name} ({low}..{high})")
    return value.to_bytes(kind.size, "big", signed=signed)


def _utf8(plaintext: bytes) -> str:
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueEncodingError("a string value must be valid UTF-8") from None


def decode_value(plaintext: bytes, solidity_type: SolidityType | str) -> PlainValue:
    """The Python value of an encoded plaintext.

    address decodes to its EIP-55 checksummed string; bytes/bytesN to ``bytes``.
    """
    kind = as_solidity_type(solidity_type)
    check_encoded(plaintext, kind)
    family = kind.family
    if family is TypeFamily.BOOL:
        return plaintext == b"\x01"
    if family in (TypeFamily.UINT, TypeFamily.INT):
        return int.from_bytes(plaintext, "big", signed=family is TypeFamily.INT)
    if family is TypeFamily.ADDRESS:
        return str(to_checksum_address(plaintext))
    if family is TypeFamily.STRING:
        return _utf8(plaintext)
    return plaintext
