"""Query parameters every service reads the same way: ``chain_id`` and ``salt``."""

from __future__ import annotations

from tkms.crypto.encoding import EncodingError, ascii_decimal, parse_hex
from tkms.web.errors import ApiError

ZERO_SALT = bytes(32)


def parse_chain_id(raw: str) -> int:
    chain_id = ascii_decimal(raw, max_digits=10)
    if chain_id is None or chain_id >= 2**32:
        raise ApiError(400, "invalid_chain_id", "chain_id must be a decimal u32")
    return chain_id


def parse_salt(raw: str | None) -> bytes:
    """The request's salt (32 bytes), zero when absent."""
    if raw is None:
        return ZERO_SALT
    try:
        return parse_hex(raw, name="salt", length=32)
    except EncodingError as exc:
        raise ApiError(400, "invalid_salt", str(exc)) from None
