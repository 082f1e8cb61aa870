"""The compute runner's SDK: :class:`Runner` (sync) and :class:`AsyncRunner` (docs/runner.md).

A runner is a client whose wallet is the gateway's ``RUNNER_ADDRESS``. It
fetches a computation's operands (threshold mode: every node signature and
DLEQ proof checked, partials combined here; single-node mode: the sealed
shared secret opened here) and publishes results, each encrypted here with
ECIES to ``Y`` and tagged with ``keccak256(handle ‖ value)``. With a chain
(``rpc_url`` and ``nox_compute``), ``Y`` is the chain's ``kmsPublicKey()``
(checked against a configured ``kms_public_key``) and a statement's
``blockNumber`` defaults to the chain's head.

    with Runner.from_devnet(key_file="devnet-state/keys/runner.key") as runner:
        a, b = runner.operands([h1, h2])
        report = runner.publish([(result_handle, a.value + b.value)])
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tkms.chain.contract import compressed_kms_public_key
from tkms.chain.errors import ChainError
from tkms.client.errors import InvalidInput, TransportError, UntrustedResponse
from tkms.client.runner_core import Operand, PublishReport, RunContext, RunnerCore
from tkms.client.sdk import AsyncClient, Client, _Base
from tkms.crypto.encoding import EncodingError, parse_address
from tkms.protocol.solidity import PlainInput

__all__ = ["AsyncRunner", "Operand", "PublishReport", "Runner"]
ZERO_TX = "0x" + "00" * 32
Results = Sequence[tuple[str, PlainInput]]


class _RunnerChain:
    """The chain reads of a runner: its head and ``kmsPublicKey()`` (blocking calls)."""

    def __init__(self, client: _Base) -> None:
        self.client = client

    def head(self) -> int:
        try:
            return self.client._chain_client().rpc.block_number()
        except ChainError as exc:
            raise TransportError(f"cannot read the chain head: {exc}") from None

    def kms_key(self, keyset_y: bytes | None) -> bytes:
        trusted = self.client.core.trust.kms_public_key
        if self.client.on_chain:
            try:
                raw = self.client._chain_client().nox.kms_public_key()
            except ChainError as exc:
                raise TransportError(f"cannot read kmsPublicKey(): {exc}") from None
            key = compressed_kms_public_key(raw)
            if key is None or (trusted is not None and key != trusted):
                raise UntrustedResponse("the chain's kmsPublicKey() is not the trusted key")
            return key
        key = trusted or keyset_y
        if key is None:
            raise InvalidInput("no KMS key to encrypt results to: give kms_public_key or a chain")
        return key

    def context(
        self, block_number: int | None, transaction_hash: str, caller: str | bytes | None
    ) -> RunContext:
        if block_number is None:
            if not self.client.on_chain:
                raise InvalidInput("block_number is required without a chain (rpc_url)")
            block_number = self.head()
        if isinstance(caller, str):
            try:
                caller = parse_address(caller, name="caller")
            except EncodingError as exc:
                raise InvalidInput(str(exc)) from None
        return RunContext(block_number, transaction_hash, caller or bytes(20))


class Runner(Client):
    """The synchronous runner: ``operands`` then ``publish``."""

    def __init__(
        self, gateway_url: str, wallet: Any, *, sign_results: bool = True, **kw: Any
    ) -> None:
        super().__init__(gateway_url, wallet, **kw)
        # sign_results=False publishes as the Nox runner does: unbound results.
        self.runner = RunnerCore(self.core, sign_results=sign_results)
        self._reads = _RunnerChain(self)

    def operands(
        self,
        handles: Sequence[str],
        *,
        block_number: int | None = None,
        transaction_hash: str = ZERO_TX,
        caller: str | bytes | None = None,
    ) -> list[Operand]:
        run = self._reads.context(block_number, transaction_hash, caller)
        return self._run(self.runner.operands_flow(handles, run))

    def publish(
        self,
        results: Results,
        *,
        block_number: int | None = None,
        transaction_hash: str = ZERO_TX,
        caller: str | bytes | None = None,
    ) -> PublishReport:
        run = self._reads.context(block_number, transaction_hash, caller)
        keyset = self._run(self.core.keyset_flow())
        key = self._reads.kms_key(None if keyset is None else keyset.public_key_bytes)
        return self._run(self.runner.publish_flow(results, key, run))


class AsyncRunner(AsyncClient):
    """The asyncio runner: the same operations as :class:`Runner`, awaited."""

    def __init__(
        self, gateway_url: str, wallet: Any, *, sign_results: bool = True, **kw: Any
    ) -> None:
        super().__init__(gateway_url, wallet, **kw)
        # sign_results=False publishes as the Nox runner does: unbound results.
        self.runner = RunnerCore(self.core, sign_results=sign_results)
        self._reads = _RunnerChain(self)

    async def operands(
        self,
        handles: Sequence[str],
        *,
        block_number: int | None = None,
        transaction_hash: str = ZERO_TX,
        caller: str | bytes | None = None,
    ) -> list[Operand]:
        run = await asyncio.to_thread(self._reads.context, block_number, transaction_hash, caller)
        return await self._run(self.runner.operands_flow(handles, run))

    async def publish(
        self,
        results: Results,
        *,
        block_number: int | None = None,
        transaction_hash: str = ZERO_TX,
        caller: str | bytes | None = None,
    ) -> PublishReport:
        run = await asyncio.to_thread(self._reads.context, block_number, transaction_hash, caller)
        keyset = await self._run(self.core.keyset_flow())
        y = None if keyset is None else keyset.public_key_bytes
        key = await asyncio.to_thread(self._reads.kms_key, y)
        return await self._run(self.runner.publish_flow(results, key, run))
