"""Hex on the wire: lowercase with ``0x`` out, any case with or without ``0x`` in.

Also the one reading of a decimal integer in a string (a query value, a token
field): ASCII digits only.
"""

from __future__ import annotations

import re

# str.isdigit() is true for "²", "١٢٣" and "１２３"; int() takes the last two and
# raises on the first. The wire is ASCII: [0-9] in a str pattern is ASCII only.
_DECIMAL = re.compile(r"[0-9]+")


class EncodingError(ValueError):
    """A value on the wire is not the hex it should be."""


def to_hex(data: bytes) -> str:
    return "0x" + data.hex()


def parse_hex(value: object, *, name: str = "value", length: int | None = None) -> bytes:
    """Decode ``value`` (a str, ``0x`` optional) and check its byte length when given."""
    if not isinstance(value, str):
        raise EncodingError(f"{name} must be a hex string")
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) % 2:
        raise EncodingError(f"{name} has an odd number of hex digits")
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise EncodingError(f"{name} is not hex") from None
    # bytes.fromhex skips inner whitespace; the wire format has none.
    if len(data) * 2 != len(text):
        raise EncodingError(f"{name} is not hex")
    if length is not None and len(data) != length:
        raise EncodingError(f"{name} must be {length} bytes, got {len(data)}")
    return data


def parse_address(value: object, *, name: str = "address") -> bytes:
    """A 20-byte Ethereum address (checksum not enforced: the wire is lowercase)."""
    return parse_hex(value, name=name, length=20)


def ascii_decimal(value: object, *, max_digits: int) -> int | None:
    """The value of 1..``max_digits`` ASCII decimal digits, else None (never raises)."""
    if not isinstance(value, str) or len(value) > max_digits or not _DECIMAL.fullmatch(value):
        return None
    return int(value)
