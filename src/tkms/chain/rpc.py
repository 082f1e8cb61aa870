"""A small Ethereum JSON-RPC client, in a sync and an async flavour.

Both share one I/O-free codec, so they check the same things. Every request has a hard
deadline (``timeout``, the whole exchange, besides ``connect_timeout``) and a bounded
response body; anything short of a well-formed answer raises :class:`ChainUnavailable`.
A contract revert raises :class:`Reverted` with the raw revert data (``abi`` decodes it).
Neither consults proxies from the environment (an RPC URL means that host), and no
message quotes the URL (it may hold an API key).

The async client, the services' (each user-mode partial's ``isViewer``, the gateway's
reads), runs over :mod:`tkms.transport.http11`: httpx's layers cost it about 1.2-1.5 ms
of CPU per call, several times the read itself (bench/chain.py). The sync one, used at
start-up, by the CLI and by deploy scripts, stays on httpx.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from tkms.chain.errors import ChainUnavailable, ReceiptTimeout, Reverted, RpcError
from tkms.chain.rpc_wire import (
    BlockTag,
    Log,
    Receipt,
    block_tag,
    data,
    hex_data,
    hex_quantity,
    quantity,
)
from tkms.transport.http11 import (
    ConnectTimedOut,
    Http11,
    TimedOut,
    TooLarge,
    TransportFailure,
)

__all__ = [  # the wire's values are chain/rpc_wire.py's, importable from here as before
    "AsyncRpcClient",
    "BlockTag",
    "Log",
    "Receipt",
    "RpcClient",
    "block_tag",
    "data",
    "hex_data",
    "hex_quantity",
    "quantity",
]

DEFAULT_TIMEOUT = 8.0  # nox-kms's CALL_TIMEOUT
DEFAULT_CONNECT_TIMEOUT = 5.0  # nox-kms's CONNECT_TIMEOUT
DEFAULT_MAX_RESPONSE_BYTES = 4 << 20
_HEADERS = {"content-type": "application/json", "accept": "application/json"}

# --- the codec both clients share ---------------------------------------------------------


class _Codec:
    def __init__(self, url: str, max_response_bytes: int) -> None:
        self.url = url
        self.max_response_bytes = max_response_bytes
        self._ids = itertools.count(1)

    def request(self, method: str, params: Sequence[object]) -> tuple[int, bytes]:
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}
        return request_id, json.dumps(body, separators=(",", ":")).encode()

    def check_head(self, method: str, status: int, headers: Mapping[str, str]) -> None:
        if status != 200:
            raise ChainUnavailable(f"{method}: RPC answered HTTP {status}")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_response_bytes:
            raise self.too_large(method)

    def too_large(self, method: str) -> ChainUnavailable:
        return ChainUnavailable(f"{method}: RPC answer larger than {self.max_response_bytes} B")

    def add_chunk(self, method: str, chunks: list[bytes], size: int, chunk: bytes) -> int:
        size += len(chunk)
        if size > self.max_response_bytes:
            raise self.too_large(method)
        chunks.append(chunk)
        return size

    def parse(self, method: str, request_id: int, body: bytes) -> Any:
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ChainUnavailable(f"{method}: RPC answer is not JSON") from None
        if not isinstance(answer, dict) or answer.get("id") != request_id:
            raise ChainUnavailable(f"{method}: RPC answer is not this request's")
        error = answer.get("error")
        if error is not None:
            raise _rpc_error(method, error)
        if "result" not in answer:
            raise ChainUnavailable(f"{method}: RPC answer has no result")
        return answer["result"]


def _rpc_error(method: str, error: object) -> Exception:
    if not isinstance(error, dict):
        return ChainUnavailable(f"{method}: malformed JSON-RPC error")
    code = error.get("code")
    message = error.get("message")
    code = code if isinstance(code, int) else 0
    message = message if isinstance(message, str) else ""
    # geth and anvil: code 3 with the revert data; others say "execution reverted".
    if code == 3 or message.startswith("execution reverted"):
        raw = error.get("data")
        revert_data = b""
        if isinstance(raw, str) and raw.startswith("0x"):
            try:
                revert_data = bytes.fromhex(raw[2:])
            except ValueError:
                revert_data = b""
        reason = message.removeprefix("execution reverted").removeprefix(":").strip()
        return Reverted(None, data=revert_data, reason=reason or None)
    return RpcError(method, code, message)


# Sent once only: a transaction the endpoint may have taken before the connection dropped
# (sent again it would be "already known" at best). Every other method the services use reads.
_NOT_REPEATED = frozenset({"eth_sendRawTransaction", "eth_sendTransaction"})


def _credentials(url: str) -> dict[str, str]:
    """The ``Authorization: Basic`` of a URL's ``user:password@``, as httpx sends it."""
    parts = urlsplit(url)
    if parts.username is None:
        return {}
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _call_params(to: bytes, calldata: bytes, sender: bytes | None, block: BlockTag) -> list[object]:
    call: dict[str, str] = {"to": hex_data(to), "data": hex_data(calldata)}
    if sender is not None:
        call["from"] = hex_data(sender)
    return [call, block_tag(block)]


def _tx_params(tx: Mapping[str, object]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tx.items():
        if isinstance(value, bytes):
            out[key] = hex_data(value)
        elif isinstance(value, int):
            out[key] = hex_quantity(value)
        elif isinstance(value, str):
            out[key] = value
    return out


# --- sync ---------------------------------------------------------------------------------


class RpcClient:
    """Blocking JSON-RPC client (startup checks, deploy scripts, tests)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        http: httpx.Client | None = None,
    ) -> None:
        self._codec = _Codec(url, max_response_bytes)
        self.timeout = timeout
        # Proxies from the environment are not consulted: an RPC URL means that host.
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), trust_env=False
        )

    @property
    def url(self) -> str:
        return self._codec.url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, params: Sequence[object] = ()) -> Any:
        request_id, body = self._codec.request(method, params)
        deadline = time.monotonic() + self.timeout
        try:
            with self._http.stream("POST", self._codec.url, content=body, headers=_HEADERS) as r:
                self._codec.check_head(method, r.status_code, r.headers)
                chunks: list[bytes] = []
                size = 0
                for chunk in r.iter_bytes():
                    size = self._codec.add_chunk(method, chunks, size, chunk)
                    if time.monotonic() > deadline:
                        raise ChainUnavailable(f"{method}: RPC timed out after {self.timeout} s")
        except httpx.TimeoutException:
            raise ChainUnavailable(f"{method}: RPC timed out after {self.timeout} s") from None
        except httpx.HTTPError as exc:
            raise ChainUnavailable(f"{method}: RPC unreachable ({type(exc).__name__})") from None
        return self._codec.parse(method, request_id, b"".join(chunks))

    # typed helpers

    def chain_id(self) -> int:
        return quantity(self.request("eth_chainId"), "chain id")

    def block_number(self) -> int:
        return quantity(self.request("eth_blockNumber"), "block number")

    def call(
        self, to: bytes, calldata: bytes, *, sender: bytes | None = None, block: BlockTag = "latest"
    ) -> bytes:
        return data(self.request("eth_call", _call_params(to, calldata, sender, block)), "result")

    def get_code(self, address: bytes, block: BlockTag = "latest") -> bytes:
        return data(self.request("eth_getCode", [hex_data(address), block_tag(block)]), "code")

    def get_balance(self, address: bytes, block: BlockTag = "latest") -> int:
        raw = self.request("eth_getBalance", [hex_data(address), block_tag(block)])
        return quantity(raw, "balance")

    def get_transaction_count(self, address: bytes, block: BlockTag = "pending") -> int:
        raw = self.request("eth_getTransactionCount", [hex_data(address), block_tag(block)])
        return quantity(raw, "nonce")

    def estimate_gas(self, tx: Mapping[str, object]) -> int:
        return quantity(self.request("eth_estimateGas", [_tx_params(tx)]), "gas estimate")

    def gas_price(self) -> int:
        return quantity(self.request("eth_gasPrice"), "gas price")

    def max_priority_fee(self) -> int:
        return quantity(self.request("eth_maxPriorityFeePerGas"), "priority fee")

    def base_fee(self) -> int:
        block = self.request("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict):
            raise ChainUnavailable("eth_getBlockByNumber: no latest block")
        return quantity(block.get("baseFeePerGas", "0x0"), "base fee")

    def send_raw_transaction(self, raw: bytes) -> bytes:
        return data(self.request("eth_sendRawTransaction", [hex_data(raw)]), "transaction hash")

    def get_transaction_receipt(self, tx_hash: bytes) -> Receipt | None:
        raw = self.request("eth_getTransactionReceipt", [hex_data(tx_hash)])
        return None if raw is None else Receipt.parse(raw)

    def wait_for_receipt(
        self, tx_hash: bytes, *, timeout: float = 30.0, poll: float = 0.05
    ) -> Receipt:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.get_transaction_receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ReceiptTimeout(f"transaction 0x{tx_hash.hex()} not mined in {timeout} s")
            time.sleep(poll)

    def get_logs(
        self,
        *,
        address: bytes | None = None,
        topics: Sequence[bytes | None] = (),
        from_block: BlockTag = "earliest",
        to_block: BlockTag = "latest",
    ) -> list[Log]:
        raw = self.request("eth_getLogs", [_log_filter(address, topics, from_block, to_block)])
        if not isinstance(raw, list):
            raise ChainUnavailable("eth_getLogs: the answer is not a list")
        return [Log.parse(item) for item in raw]


def _log_filter(
    address: bytes | None,
    topics: Sequence[bytes | None],
    from_block: BlockTag,
    to_block: BlockTag,
) -> dict[str, object]:
    flt: dict[str, object] = {"fromBlock": block_tag(from_block), "toBlock": block_tag(to_block)}
    if address is not None:
        flt["address"] = hex_data(address)
    if topics:
        flt["topics"] = [None if t is None else hex_data(t) for t in topics]
    return flt


# --- async --------------------------------------------------------------------------------


class AsyncRpcClient:
    """The same client for the services' event loop (views and receipts), over transport/http11.py.

    Its connections are kept alive (one request each at a time); one the endpoint
    closed is not reused, and one it closes as a request goes out is asked again on
    another, within the same deadline, unless the request sends a transaction.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._codec = _Codec(url, max_response_bytes)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self._headers = _credentials(url)
        self._http = Http11(
            url,
            timeout=timeout,
            connect_timeout=self.connect_timeout,
            max_answer_bytes=max_response_bytes,
        )

    @property
    def url(self) -> str:
        return self._codec.url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncRpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def request(self, method: str, params: Sequence[object] = ()) -> Any:
        request_id, body = self._codec.request(method, params)
        try:
            answer = await self._http.request(
                "POST", "", {}, self._headers, body, idempotent=method not in _NOT_REPEATED
            )
        except ConnectTimedOut:
            raise ChainUnavailable(
                f"{method}: RPC timed out connecting after {self.connect_timeout} s"
            ) from None
        except TimedOut:
            raise ChainUnavailable(f"{method}: RPC timed out after {self.timeout} s") from None
        except TooLarge:
            raise self._codec.too_large(method) from None
        except TransportFailure as exc:  # its message names a type, never the URL
            raise ChainUnavailable(f"{method}: RPC unreachable ({exc})") from None
        self._codec.check_head(method, answer.status, answer.headers)
        return self._codec.parse(method, request_id, answer.body)

    async def chain_id(self) -> int:
        return quantity(await self.request("eth_chainId"), "chain id")

    async def call(
        self, to: bytes, calldata: bytes, *, sender: bytes | None = None, block: BlockTag = "latest"
    ) -> bytes:
        raw = await self.request("eth_call", _call_params(to, calldata, sender, block))
        return data(raw, "result")

    async def get_code(self, address: bytes, block: BlockTag = "latest") -> bytes:
        raw = await self.request("eth_getCode", [hex_data(address), block_tag(block)])
        return data(raw, "code")

    async def get_transaction_count(self, address: bytes, block: BlockTag = "pending") -> int:
        raw = await self.request("eth_getTransactionCount", [hex_data(address), block_tag(block)])
        return quantity(raw, "nonce")

    async def send_raw_transaction(self, raw: bytes) -> bytes:
        answer = await self.request("eth_sendRawTransaction", [hex_data(raw)])
        return data(answer, "transaction hash")

    async def get_transaction_receipt(self, tx_hash: bytes) -> Receipt | None:
        raw = await self.request("eth_getTransactionReceipt", [hex_data(tx_hash)])
        return None if raw is None else Receipt.parse(raw)

    async def wait_for_receipt(
        self, tx_hash: bytes, *, timeout: float = 30.0, poll: float = 0.05
    ) -> Receipt:
        deadline = time.monotonic() + timeout
        while True:
            receipt = await self.get_transaction_receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise ReceiptTimeout(f"transaction 0x{tx_hash.hex()} not mined in {timeout} s")
            await asyncio.sleep(poll)

    async def get_logs(
        self,
        *,
        address: bytes | None = None,
        topics: Sequence[bytes | None] = (),
        from_block: BlockTag = "earliest",
        to_block: BlockTag = "latest",
    ) -> list[Log]:
        flt = _log_filter(address, topics, from_block, to_block)
        raw = await self.request("eth_getLogs", [flt])
        if not isinstance(raw, list):
            raise ChainUnavailable("eth_getLogs: the answer is not a list")
        return [Log.parse(item) for item in raw]
