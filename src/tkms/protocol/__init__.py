"""Wire formats shared with Nox: the 32-byte handle and the Solidity plaintext codec."""

from tkms.protocol.handle import (
    Handle,
    HandleError,
    SolidityType,
    TypeFamily,
    all_solidity_types,
    new_handle,
    parse_handle,
)
from tkms.protocol.solidity import (
    ValueEncodingError,
    check_encoded,
    decode_value,
    encode_value,
    parse_encoded_value,
)

__all__ = [
    "Handle",
    "HandleError",
    "SolidityType",
    "TypeFamily",
    "ValueEncodingError",
    "all_solidity_types",
    "check_encoded",
    "decode_value",
    "encode_value",
    "new_handle",
    "parse_encoded_value",
    "parse_handle",
]
