"""The values of Ethereum JSON-RPC answers, checked (chain/rpc.py's clients share them).

A value that is not what the method returns (a malformed QUANTITY or DATA, a log
or receipt missing a field) is :class:`ChainUnavailable`: never read as an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tkms.chain.errors import ChainUnavailable

BlockTag = str | int


def quantity(value: object, what: str = "quantity") -> int:
    """A JSON-RPC QUANTITY (``0x``-prefixed hex, no leading zeros required)."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise ChainUnavailable(f"malformed {what} in the RPC answer")
    try:
        return int(value, 16)
    except ValueError:
        raise ChainUnavailable(f"malformed {what} in the RPC answer") from None


def data(value: object, what: str = "data") -> bytes:
    """A JSON-RPC DATA value (``0x`` + an even number of hex digits)."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainUnavailable(f"malformed {what} in the RPC answer")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise ChainUnavailable(f"malformed {what} in the RPC answer") from None


def hex_data(raw: bytes) -> str:
    return "0x" + raw.hex()


def hex_quantity(value: int) -> str:
    return hex(value)


def block_tag(block: BlockTag) -> str:
    return hex(block) if isinstance(block, int) else block


@dataclass(frozen=True, slots=True)
class Log:
    address: bytes
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    transaction_hash: bytes
    log_index: int

    @classmethod
    def parse(cls, raw: object) -> Log:
        if not isinstance(raw, Mapping):
            raise ChainUnavailable("malformed log in the RPC answer")
        try:
            topics = raw["topics"]
            if not isinstance(topics, list):
                raise ChainUnavailable("malformed log topics in the RPC answer")
            return cls(
                address=data(raw["address"], "log address"),
                topics=tuple(data(t, "log topic") for t in topics),
                data=data(raw["data"], "log data"),
                block_number=quantity(raw["blockNumber"], "log block"),
                transaction_hash=data(raw["transactionHash"], "log transaction"),
                log_index=quantity(raw["logIndex"], "log index"),
            )
        except KeyError:
            raise ChainUnavailable("log misses a field in the RPC answer") from None


@dataclass(frozen=True, slots=True)
class Receipt:
    transaction_hash: bytes
    status: int
    block_number: int
    gas_used: int
    contract_address: bytes | None
    logs: tuple[Log, ...]

    @property
    def succeeded(self) -> bool:
        return self.status == 1

    @classmethod
    def parse(cls, raw: object) -> Receipt:
        if not isinstance(raw, Mapping):
            raise ChainUnavailable("malformed receipt in the RPC answer")
        try:
            logs = raw["logs"]
            if not isinstance(logs, list):
                raise ChainUnavailable("malformed receipt logs in the RPC answer")
            contract = raw.get("contractAddress")
            return cls(
                transaction_hash=data(raw["transactionHash"], "receipt transaction"),
                status=quantity(raw["status"], "receipt status"),
                block_number=quantity(raw["blockNumber"], "receipt block"),
                gas_used=quantity(raw["gasUsed"], "receipt gas"),
                contract_address=None if contract is None else data(contract, "contract address"),
                logs=tuple(Log.parse(log) for log in logs),
            )
        except KeyError:
            raise ChainUnavailable("receipt misses a field in the RPC answer") from None
