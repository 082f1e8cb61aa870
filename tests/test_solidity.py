"""The Solidity plaintext codec: exact bytes, round trips, rejections."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tkms.protocol.handle import SolidityType, TypeFamily, all_solidity_types
from tkms.protocol.solidity import (
    ValueEncodingError,
    check_encoded,
    decode_value,
    encode_value,
    parse_encoded_value,
)

UINTS = [t for t in all_solidity_types() if t.family is TypeFamily.UINT]
INTS = [t for t in all_solidity_types() if t.family is TypeFamily.INT]
FIXED = [t for t in all_solidity_types() if t.family is TypeFamily.FIXED_BYTES]


@pytest.mark.parametrize(
    ("value", "kind", "hex_"),
    [
        (1000, "uint256", "00" * 30 + "03e8"),
        (0, "uint8", "00"),
        (255, "uint8", "ff"),
        (0xABCD, "uint16", "abcd"),
        (2**256 - 1, "uint256", "ff" * 32),
        (-1, "int16", "ffff"),
        (-1, "int256", "ff" * 32),
        (-128, "int8", "80"),
        (127, "int8", "7f"),
        (-(2**255), "int256", "80" + "00" * 31),
        (300, "int24", "00012c"),
        (True, "bool", "01"),
        (False, "bool", "00"),
        ("0x" + "Ab" * 20, "address", "ab" * 20),
        (bytes(range(20)), "address", bytes(range(20)).hex()),
        ("héllo", "string", "68c3a96c6c6f"),
        ("", "string", ""),
        (b"", "bytes", ""),
        (b"\x00\xff", "bytes", "00ff"),
        ("0x00ff", "bytes", "00ff"),
        (b"\x01" * 32, "bytes32", "01" * 32),
        ("0x7f", "bytes1", "7f"),
    ],
)
def test_known_encodings(value: bool | int | str | bytes, kind: str, hex_: str) -> None:
    encoded = encode_value(value, kind)
    assert encoded.hex() == hex_
    assert parse_encoded_value("0x" + hex_, kind) == encoded
    assert check_encoded(encoded, SolidityType.parse(kind)) == encoded


def test_known_decodings() -> None:
    assert decode_value(bytes.fromhex("00" * 30 + "03e8"), "uint256") == 1000
    assert decode_value(b"\xff\xff", "int16") == -1
    assert decode_value(b"\xff\xff", "uint16") == 65535
    assert decode_value(b"\x01", "bool") is True
    assert decode_value(b"\x00", "bool") is False
    assert decode_value(b"caf\xc3\xa9", "string") == "café"
    address = bytes.fromhex("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
    assert decode_value(address, "address") == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize("kind", UINTS, ids=str)
def test_uint_bounds(kind: SolidityType) -> None:
    top = 2 ** (kind.size * 8) - 1
    assert encode_value(top, kind) == b"\xff" * kind.size
    for bad in (-1, top + 1):
        with pytest.raises(ValueEncodingError, match=f"out of range for {kind.name}"):
            encode_value(bad, kind)


@pytest.mark.parametrize("kind", INTS, ids=str)
def test_int_bounds(kind: SolidityType) -> None:
    half = 2 ** (kind.size * 8 - 1)
    assert decode_value(encode_value(-half, kind), kind) == -half
    assert decode_value(encode_value(half - 1, kind), kind) == half - 1
    for bad in (-half - 1, half):
        with pytest.raises(ValueEncodingError):
            encode_value(bad, kind)


@given(st.data())
def test_round_trip_integers(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(UINTS + INTS))
    bits = kind.size * 8
    if kind.family is TypeFamily.UINT:
        value = data.draw(st.integers(0, 2**bits - 1))
    else:
        value = data.draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    encoded = encode_value(value, kind)
    assert len(encoded) == kind.size
    assert decode_value(encoded, kind) == value
    assert parse_encoded_value("0x" + encoded.hex(), kind.name) == encoded


@given(st.data())
def test_any_bytes_of_the_right_width_decode(data: st.DataObject) -> None:
    # The Nox SDK sends the encoding itself: any N/8 bytes are a valid intN/uintN/bytesN.
    kind = data.draw(st.sampled_from(UINTS + INTS + FIXED))
    raw = data.draw(st.binary(min_size=kind.size, max_size=kind.size))
    assert parse_encoded_value("0x" + raw.hex(), kind) == raw
    assert encode_value(decode_value(raw, kind), kind) == raw


@given(st.booleans())
def test_round_trip_bool(value: bool) -> None:
    assert decode_value(encode_value(value, "bool"), "bool") is value


@given(st.binary(min_size=20, max_size=20))
def test_round_trip_address(raw: bytes) -> None:
    text = decode_value(raw, "address")
    assert isinstance(text, str)
    assert encode_value(text, "address") == raw
    assert encode_value(text.lower(), "address") == raw


@given(st.text())
def test_round_trip_string(value: str) -> None:
    assume_encodable = all(not 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if not assume_encodable:
        with pytest.raises(ValueEncodingError):
            encode_value(value, "string")
        return
    encoded = encode_value(value, "string")
    assert encoded == value.encode()
    assert decode_value(encoded, "string") == value


@given(st.binary(max_size=300))
def test_round_trip_bytes(raw: bytes) -> None:
    assert decode_value(encode_value(raw, "bytes"), "bytes") == raw
    assert encode_value("0x" + raw.hex(), "bytes") == raw


@given(st.data())
def test_round_trip_fixed_bytes(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(FIXED))
    raw = data.draw(st.binary(min_size=kind.size, max_size=kind.size))
    assert decode_value(encode_value(raw, kind), kind) == raw
    assert encode_value(bytearray(raw), kind.name) == raw


@pytest.mark.parametrize(
    ("wire", "kind"),
    [
        ("0x02", "bool"),
        ("0xff", "bool"),
        ("0x", "bool"),
        ("0x0001", "bool"),
        ("0x03e8", "uint256"),  # short: the SDK always sends the full width
        ("0x" + "00" * 33, "uint256"),
        ("0x00", "uint16"),
        ("0x000000", "uint16"),
        ("0xff", "int16"),
        ("0x" + "00" * 19, "address"),
        ("0x" + "00" * 21, "address"),
        ("0x" + "00" * 31, "bytes32"),
        ("0x", "bytes1"),
        ("0xff", "string"),  # not UTF-8
        ("0xc3", "string"),
        ("0x0", "bytes"),
        ("0xzz", "bytes"),
        ("0x00 ff", "bytes"),
    ],
)
def test_wire_rejections(wire: str, kind: str) -> None:
    with pytest.raises(ValueEncodingError):
        parse_encoded_value(wire, kind)


@pytest.mark.parametrize("wire", [None, 1, b"\x01", ["0x01"]])
def test_wire_value_must_be_str(wire: object) -> None:
    with pytest.raises(ValueEncodingError, match="hex string"):
        parse_encoded_value(wire, "bool")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1, "bool"),
        ("true", "bool"),
        (True, "uint8"),  # bool is an int in Python, never a uint here
        (1.0, "uint8"),
        ("1", "uint8"),
        (b"\x01", "uint8"),
        (b"abc", "string"),
        ("0x" + "00" * 19, "address"),
        (b"\x00" * 21, "address"),
        (b"\x00" * 31, "bytes32"),
        (b"\x00" * 2, "bytes1"),
        ("plain text", "bytes"),
        (1, "bytes"),
        ("\ud800", "string"),
    ],
)
def test_python_value_rejections(value: object, kind: str) -> None:
    with pytest.raises(ValueEncodingError):
        encode_value(value, kind)  # type: ignore[arg-type]


def test_errors_never_quote_the_value() -> None:
    secret = 123456789123456789
    with pytest.raises(ValueEncodingError) as info:
        encode_value(secret, "uint8")
    assert str(secret) not in str(info.value)
    with pytest.raises(ValueEncodingError) as info:
        parse_encoded_value("0xdeadbeefcafe", "uint16")
    assert "dead" not in str(info.value)
    with pytest.raises(ValueEncodingError) as info:
        decode_value(b"\xde\xad\xbe\xef\xff", "string")
    message = str(info.value)
    assert "\\xde" not in message and "0xde" not in message and "position" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_type_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        encode_value(1, "uint9")
    assert issubclass(ValueEncodingError, ValueError)
