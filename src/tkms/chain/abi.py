"""Contract ABI: call encoding, result decoding, revert and event decoding (eth-abi).

Values cross this module as Python values with ``bytes`` for ``address`` (20 bytes),
``bytesN`` and ``bytes``; eth-abi's checksummed address strings are turned back into
bytes on the way out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError, EncodingError

from tkms.chain.errors import ChainError, ChainUnavailable, Reverted
from tkms.crypto.wallet import keccak256


class AbiError(ChainError):
    """A value does not fit its ABI type, or the ABI has no such member."""


def selector(signature: str) -> bytes:
    """The 4-byte function (or error) selector of a canonical signature."""
    return keccak256(signature.encode())[:4]


def canonical_type(param: Mapping[str, Any]) -> str:
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){typ[len('tuple') :]}"
    return typ


def _to_python(typ: str, value: Any) -> Any:
    if typ == "address" and isinstance(value, str):
        return bytes.fromhex(value[2:])
    if typ.endswith("]") and isinstance(value, tuple | list):
        inner = typ[: typ.rindex("[")]
        return tuple(_to_python(inner, v) for v in value)
    return value


def decode_values(types: Sequence[str], raw: bytes) -> tuple[Any, ...]:
    try:
        values = abi_decode(list(types), raw)
    except (DecodingError, ValueError, TypeError) as exc:
        raise ChainUnavailable(f"answer does not decode as ({','.join(types)})") from exc
    return tuple(_to_python(t, v) for t, v in zip(types, values, strict=True))


def encode_values(types: Sequence[str], values: Sequence[Any]) -> bytes:
    try:
        return abi_encode(list(types), list(values))
    except (EncodingError, ValueError, TypeError, OverflowError) as exc:
        raise AbiError(f"values do not encode as ({','.join(types)}): {exc}") from None


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    mutability: str

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    @property
    def selector(self) -> bytes:
        return selector(self.signature)

    def encode(self, *args: Any) -> bytes:
        if len(args) != len(self.inputs):
            raise AbiError(f"{self.signature} takes {len(self.inputs)} arguments")
        return self.selector + encode_values(self.inputs, args)

    def decode(self, raw: bytes) -> tuple[Any, ...]:
        return decode_values(self.outputs, raw)


@dataclass(frozen=True, slots=True)
class ErrorType:
    name: str
    inputs: tuple[str, ...]

    @property
    def selector(self) -> bytes:
        return selector(f"{self.name}({','.join(self.inputs)})")


@dataclass(frozen=True, slots=True)
class EventParam:
    name: str
    type: str
    indexed: bool


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    params: tuple[EventParam, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(p.type for p in self.params)})"

    @property
    def topic(self) -> bytes:
        return keccak256(self.signature.encode())

    def decode(self, topics: Sequence[bytes], raw: bytes) -> dict[str, Any]:
        """The event's arguments by name (an indexed dynamic value is its topic hash)."""
        if not topics or topics[0] != self.topic:
            raise AbiError(f"log is not a {self.name} event")
        indexed = [p for p in self.params if p.indexed]
        if len(topics) != 1 + len(indexed):
            raise ChainUnavailable(f"{self.name} log has {len(topics) - 1} indexed topics")
        out: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            static = param.type not in ("bytes", "string") and not param.type.endswith("]")
            out[param.name] = decode_values([param.type], topic)[0] if static else topic
        plain = [p for p in self.params if not p.indexed]
        values = decode_values([p.type for p in plain], raw)
        out.update({p.name: v for p, v in zip(plain, values, strict=True)})
        return out


_ERROR_STRING = ErrorType("Error", ("string",))
_PANIC = ErrorType("Panic", ("uint256",))


class ContractAbi:
    """The functions, events and custom errors of one contract's JSON ABI."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self.functions: dict[str, Function] = {}
        self.events: dict[str, Event] = {}
        self.constructor_inputs: tuple[str, ...] = ()
        self._errors: dict[bytes, ErrorType] = {e.selector: e for e in (_ERROR_STRING, _PANIC)}
        for item in abi:
            kind = item.get("type")
            inputs = tuple(canonical_type(p) for p in item.get("inputs", ()))
            if kind == "function":
                outputs = tuple(canonical_type(p) for p in item.get("outputs", ()))
                name = str(item["name"])
                if name in self.functions:
                    raise AbiError(f"overloaded function {name} is not supported")
                self.functions[name] = Function(
                    name, inputs, outputs, str(item.get("stateMutability", "nonpayable"))
                )
            elif kind == "event":
                params = tuple(
                    EventParam(str(p["name"]), canonical_type(p), bool(p.get("indexed")))
                    for p in item["inputs"]
                )
                self.events[str(item["name"])] = Event(str(item["name"]), params)
            elif kind == "error":
                error = ErrorType(str(item["name"]), inputs)
                self._errors[error.selector] = error
            elif kind == "constructor":
                self.constructor_inputs = inputs

    def function(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise AbiError(f"the ABI has no function {name}") from None

    def event(self, name: str) -> Event:
        try:
            return self.events[name]
        except KeyError:
            raise AbiError(f"the ABI has no event {name}") from None

    def encode_constructor(self, *args: Any) -> bytes:
        if len(args) != len(self.constructor_inputs):
            raise AbiError(f"the constructor takes {len(self.constructor_inputs)} arguments")
        return encode_values(self.constructor_inputs, args)

    def knows_error(self, data: bytes) -> bool:
        return len(data) >= 4 and data[:4] in self._errors

    def decode_revert(self, revert: Reverted) -> Reverted:
        """The revert with its error named and its arguments decoded, where the ABI knows it."""
        raw = revert.data
        error = self._errors.get(raw[:4]) if len(raw) >= 4 else None
        if error is None:
            return type(revert)(None, data=raw, reason=revert.reason)
        try:
            args = decode_values(error.inputs, raw[4:])
        except ChainUnavailable:
            return type(revert)(None, data=raw, reason=revert.reason)
        return type(revert)(error.name, args, raw)
