"""Strict JSON reading and the canonical byte transcript that DKG signatures cover.

Messages cross an untrusted relay, so every reader here refuses anything
outside the exact shape (unknown keys, bools for ints, unsorted or duplicate
lists) with :class:`DkgMessageError` and nothing else. The transcript is
length-prefixed and starts with a fixed domain tag, so no two distinct
messages — of any kind, in any session — encode to the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from tkms.crypto import curve
from tkms.crypto.encoding import EncodingError, parse_hex
from tkms.dkg.errors import DkgMessageError

T = TypeVar("T")

MESSAGE_DOMAIN = b"tkms-dkg-message:v1"
MAX_INDEX = 0xFFFF
MAX_LIST = 4096
"""No committee in sight is larger; bounds the work a hostile message can ask for."""


def expect_object(data: object, keys: set[str], what: str) -> Mapping[str, object]:
    # Fast path first: a deal holds n of these and every node reads n deals.
    if type(data) is dict and data.keys() == keys:
        return data
    if not isinstance(data, Mapping):
        raise DkgMessageError(f"{what} must be a JSON object")
    if not all(isinstance(k, str) for k in data):
        raise DkgMessageError(f"{what} has a non-string key")
    present = set(data)
    if present != keys:
        problems = []
        if keys - present:
            problems.append(f"missing {sorted(keys - present)}")
        if present - keys:
            # Hostile key names stay out of error text (and so out of logs).
            problems.append(f"{len(present - keys)} unknown key(s)")
        detail = ", ".join(problems)
        raise DkgMessageError(f"{what}: {detail}")
    return data


def get_int(obj: Mapping[str, object], key: str, *, low: int, high: int) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DkgMessageError(f"{key} must be an integer in [{low}, {high}]")
    return value


def get_index(obj: Mapping[str, object], key: str) -> int:
    return get_int(obj, key, low=1, high=MAX_INDEX)


def exact_hex(value: object, length: int) -> bytes | None:
    """``length`` bytes of hex (``0x`` optional), or None; the hot path of message parsing."""
    if type(value) is not str:
        return None
    if value[:2] in ("0x", "0X"):
        value = value[2:]
    if len(value) != 2 * length:
        return None
    try:
        data = bytes.fromhex(value)
    except ValueError:
        return None
    # fromhex skips whitespace, which then shows as a short result.
    return data if len(data) == length else None


def get_hex(obj: Mapping[str, object], key: str, length: int | None = None) -> bytes:
    if length is not None:
        data = exact_hex(obj[key], length)
        if data is not None:
            return data
    try:
        return parse_hex(obj[key], name=key, length=length)
    except EncodingError as exc:
        raise DkgMessageError(str(exc)) from None


def get_point(obj: Mapping[str, object], key: str) -> curve.Point:
    return to_point(get_hex(obj, key, 33), key)


def to_point(data: bytes, what: str) -> curve.Point:
    try:
        return curve.parse_point(data)
    except curve.CurveError:
        raise DkgMessageError(f"{what} is not a compressed secp256k1 point") from None


def get_scalar(obj: Mapping[str, object], key: str) -> int:
    try:
        return curve.parse_scalar(get_hex(obj, key, 32))
    except curve.CurveError:
        raise DkgMessageError(f"{key} must be a scalar in [1, n-1]") from None


def get_list(
    obj: Mapping[str, object], key: str, item: Callable[[object], T], *, max_len: int = MAX_LIST
) -> tuple[T, ...]:
    value = obj[key]
    if not isinstance(value, list):
        raise DkgMessageError(f"{key} must be a list")
    if len(value) > max_len:
        raise DkgMessageError(f"{key} has more than {max_len} items")
    return tuple(item(v) for v in value)


def check_ascending(values: Sequence[int], what: str) -> None:
    """Canonical lists are strictly ascending: one encoding per set, no duplicates."""
    if any(a >= b for a, b in itertools.pairwise(values)):
        raise DkgMessageError(f"{what} must be strictly ascending without duplicates")


def index_item(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INDEX:
        raise DkgMessageError(f"an index is an integer in [1, {MAX_INDEX}]")
    return value


def point_hex_item(value: object) -> bytes:
    try:
        return parse_hex(value, name="point", length=33)
    except EncodingError as exc:
        raise DkgMessageError(str(exc)) from None


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class Transcript:
    """Canonical, length-prefixed bytes of a message, hashed for signing."""

    __slots__ = ("_parts",)

    def __init__(self, kind: str, session_id: bytes, sender: int) -> None:
        self._parts: list[bytes] = [MESSAGE_DOMAIN]
        self.blob(kind.encode())
        self.blob(session_id)
        self.u16(sender)

    def u16(self, value: int) -> Transcript:
        self._parts.append(value.to_bytes(2, "big"))
        return self

    def u32(self, value: int) -> Transcript:
        self._parts.append(value.to_bytes(4, "big"))
        return self

    def blob(self, data: bytes) -> Transcript:
        self._parts += (len(data).to_bytes(4, "big"), data)
        return self

    def raw(self, framed: bytes) -> Transcript:
        """Bytes already framed with :func:`frame` and fixed-width integers."""
        self._parts.append(framed)
        return self

    def digest(self) -> bytes:
        return hashlib.sha256(b"".join(self._parts)).digest()
