"""The 32-byte handle and the Solidity type table of nox-compat.md."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tkms.protocol.handle import (
    ATTR_UNIQUE,
    Handle,
    HandleError,
    SolidityType,
    TypeFamily,
    all_solidity_types,
    new_handle,
    parse_handle,
)

# The table of nox-compat.md, written out rather than derived from the code.
EXPECTED_CODES = {
    "bool": 0,
    "address": 1,
    "bytes": 2,
    "string": 3,
    **{f"uint{bits}": 3 + bits // 8 for bits in range(8, 257, 8)},
    **{f"int{bits}": 35 + bits // 8 for bits in range(8, 257, 8)},
    **{f"bytes{n}": 67 + n for n in range(1, 33)},
}


def test_type_table_is_complete_and_exact() -> None:
    assert len(EXPECTED_CODES) == 100
    for name, code in EXPECTED_CODES.items():
        kind = SolidityType.parse(name)
        assert kind.code == code, name
        assert kind.name == name
        assert SolidityType.from_code(code) == kind
    assert [t.name for t in all_solidity_types()] == sorted(
        EXPECTED_CODES, key=lambda n: EXPECTED_CODES[n]
    )


@pytest.mark.parametrize(
    ("name", "family", "size", "fixed"),
    [
        ("uint256", TypeFamily.UINT, 32, 32),
        ("int16", TypeFamily.INT, 2, 2),
        ("bytes1", TypeFamily.FIXED_BYTES, 1, 1),
        ("address", TypeFamily.ADDRESS, 0, 20),
        ("bool", TypeFamily.BOOL, 0, 1),
        ("string", TypeFamily.STRING, 0, None),
        ("bytes", TypeFamily.BYTES, 0, None),
    ],
)
def test_type_attributes(name: str, family: TypeFamily, size: int, fixed: int | None) -> None:
    kind = SolidityType.parse(name)
    assert (kind.family, kind.size, kind.fixed_length, str(kind)) == (family, size, fixed, name)


@pytest.mark.parametrize(
    "name",
    [
        "uint",
        "int",
        "uint0",
        "uint7",
        "uint264",
        "int512",
        "uint08",
        "bytes0",
        "bytes33",
        "bytes01",
        "Uint256",
        "uint256 ",
        " bool",
        "byte",
        "int256[]",
        "fixed128x18",
        "",
        "uint256\n",
    ],
)
def test_bad_type_names(name: str) -> None:
    with pytest.raises(HandleError):
        SolidityType.parse(name)


@pytest.mark.parametrize("value", [None, 256, b"uint256"])
def test_type_name_must_be_str(value: object) -> None:
    with pytest.raises(HandleError):
        SolidityType.parse(value)


@pytest.mark.parametrize("code", [-1, 100, 101, 255, 256])
def test_bad_type_codes(code: int) -> None:
    with pytest.raises(HandleError):
        SolidityType.from_code(code)


@pytest.mark.parametrize(
    ("family", "size"),
    [(TypeFamily.UINT, 0), (TypeFamily.INT, 33), (TypeFamily.BOOL, 1), (TypeFamily.STRING, 4)],
)
def test_bad_type_construction(family: TypeFamily, size: int) -> None:
    with pytest.raises(HandleError):
        SolidityType(family, size)


def test_new_handle_layout() -> None:
    raw = new_handle(11155111, "uint256")
    assert len(raw) == 32
    assert raw[0] == 0
    assert raw[1:5] == (11155111).to_bytes(4, "big") == bytes.fromhex("00aa36a7")
    assert raw[5] == 35
    assert raw[6] == ATTR_UNIQUE
    handle = parse_handle(raw)
    assert handle.random == raw[7:]
    assert handle.unique
    assert handle.to_bytes() == raw
    assert handle.hex == "0x" + raw.hex() == str(handle)


def test_new_handles_are_random() -> None:
    randoms = {new_handle(1, "bool")[7:] for _ in range(200)}
    assert len(randoms) == 200


def test_known_handle() -> None:
    text = "0x" + "00" + "00000001" + "04" + "01" + "ab" * 25
    handle = parse_handle(text, chain_id=1)
    assert handle == Handle(
        chain_id=1, solidity_type=SolidityType.parse("uint8"), attributes=1, random=b"\xab" * 25
    )
    assert parse_handle(text.upper().replace("0X", "0x")) == handle


@given(
    chain_id=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(all_solidity_types()),
)
def test_round_trip(chain_id: int, kind: SolidityType) -> None:
    raw = new_handle(chain_id, kind)
    for form in (raw, "0x" + raw.hex(), bytearray(raw)):
        handle = parse_handle(form)
        assert (handle.chain_id, handle.solidity_type, handle.to_bytes()) == (chain_id, kind, raw)


@given(st.binary(min_size=32, max_size=32))
def test_parse_any_32_bytes_is_valid_or_handle_error(raw: bytes) -> None:
    try:
        handle = parse_handle(raw)
    except HandleError:
        assert raw[0] != 0 or raw[5] > 99 or raw[6] & 0xFE
    else:
        assert handle.to_bytes() == raw


GOOD = "0x0000000001230100" + "11" * 24


@pytest.mark.parametrize(
    "value",
    [
        GOOD[2:],  # no 0x
        "0X" + GOOD[2:],
        GOOD + "00",  # 33 bytes
        GOOD[:-2],  # 31 bytes
        GOOD[:-1],  # odd length
        GOOD[:-2] + "zz",
        GOOD[:-2] + " 1",
        GOOD + "\n",
        "0x01" + GOOD[4:],  # version 1
        "0x000000000164" + GOOD[14:],  # type code 100
        "0x0000000001ff" + GOOD[14:],  # type code 255
        "0x000000000123" + "02" + GOOD[16:],  # reserved attribute bit
        "0x000000000123" + "81" + GOOD[16:],
        b"\x00" * 31,
        b"\x00" * 33,
        None,
        12,
    ],
)
def test_parse_rejects(value: object) -> None:
    assert parse_handle(GOOD).chain_id == 1
    with pytest.raises(HandleError):
        parse_handle(value)


def test_parse_checks_chain() -> None:
    with pytest.raises(HandleError, match="chain 1, not 2"):
        parse_handle(GOOD, chain_id=2)


@pytest.mark.parametrize("chain_id", [-1, 2**32])
def test_new_handle_rejects_bad_chain(chain_id: int) -> None:
    with pytest.raises(HandleError):
        new_handle(chain_id, "bool")


def test_new_handle_rejects_bad_type() -> None:
    with pytest.raises(HandleError):
        new_handle(1, "uint9")


def test_handle_error_is_value_error() -> None:
    assert issubclass(HandleError, ValueError)
