"""The on-chain ACL: NoxCompute's ``isViewer`` and ``isPubliclyDecryptable`` by ``eth_call``.

A gateway whose chain is linked (``RPC_URL`` and the NoxCompute address set)
asks the contract, as nox's gateway does. A *true* answer is kept for
``ACL_CACHE_SECONDS`` (60 s; 0: off) by :class:`tkms.chain.acl_cache.AclCache`:
NoxCompute has no revoke, so it stays true, and the TTL bounds how long a grant
reorged away is still honoured. A false answer is never kept, so an
``addViewer`` is effective on the next read. The chain head (a runner
statement's freshness) is read at most once a second (:mod:`tkms.chain.head`);
ERC-1271 is asked every time. A read that gets no
trustworthy answer (refused, timed out, a JSON-RPC error, an answer that does
not decode, a revert) raises :class:`ChainAclUnavailable`, a 503
``chain_unavailable``: never a 500, never a yes, and never the embedded ACL
instead (that one is a configuration choice, ``ACL=embedded``, not a fallback).

The same client answers the ERC-1271 question of :mod:`tkms.gateway.authz`:
is ``userAddress`` a contract, and does its ``isValidSignature`` accept.
"""

from __future__ import annotations

import logging

from tkms.chain.acl_cache import AclCache
from tkms.chain.contract import AsyncNoxCompute
from tkms.chain.erc1271 import is_contract_async, is_valid_signature_async
from tkms.chain.errors import ChainError, Reverted
from tkms.chain.head import RecentHead
from tkms.chain.rpc import AsyncRpcClient, quantity
from tkms.web.errors import ApiError

log = logging.getLogger("tkms.gateway.chain")


class ChainAclUnavailable(ApiError):
    """503 ``chain_unavailable``: the chain gave no answer the gateway may act on."""

    def __init__(self, chain_id: int, what: str) -> None:
        super().__init__(503, "chain_unavailable", f"cannot read chain {chain_id}: {what}")


class ChainAcl:
    """The two ACL questions, and ERC-1271, asked of one chain's NoxCompute."""

    def __init__(
        self,
        rpc_url: str,
        contract: bytes,
        chain_id: int,
        *,
        timeout: float = 8.0,
        connect_timeout: float = 5.0,
        acl_cache: AclCache | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.contract = contract
        self._rpc = AsyncRpcClient(rpc_url, timeout=timeout, connect_timeout=connect_timeout)
        self._nox = AsyncNoxCompute(self._rpc, contract)
        # None: every answer is read anew (the assembly gives the configured one)
        self._acl = AclCache(ttl=0) if acl_cache is None else acl_cache
        self.head = RecentHead(self._read_head)

    def __repr__(self) -> str:  # never the RPC URL: it may hold an API key
        return f"ChainAcl(chain={self.chain_id}, contract=0x{self.contract.hex()})"

    async def aclose(self) -> None:
        await self._rpc.aclose()

    def _unavailable(self, call: str, exc: ChainError) -> ChainAclUnavailable:
        why = f"{call} reverted" if isinstance(exc, Reverted) else f"{call} failed"
        # The type and our own text only: the exception may quote the URL.
        log.warning("chain %d: %s (%s)", self.chain_id, why, type(exc).__name__)
        return ChainAclUnavailable(self.chain_id, why)

    async def is_viewer(self, handle: bytes, address: bytes) -> bool:
        async def read() -> bool:
            try:
                return await self._nox.is_viewer(handle, address)
            except ChainError as exc:
                raise self._unavailable("isViewer", exc) from None

        return await self._acl.is_viewer(self.chain_id, self.contract, handle, address, read)

    async def is_publicly_decryptable(self, handle: bytes) -> bool:
        async def read() -> bool:
            try:
                return await self._nox.is_publicly_decryptable(handle)
            except ChainError as exc:
                raise self._unavailable("isPubliclyDecryptable", exc) from None

        return await self._acl.is_publicly_decryptable(self.chain_id, self.contract, handle, read)

    async def _read_head(self) -> int:
        """The chain's latest block number (the runner's statements are bounded by it);
        ``head()`` serves one for a second."""
        try:
            return quantity(await self._rpc.request("eth_blockNumber"), "block number")
        except ChainError as exc:
            raise self._unavailable("eth_blockNumber", exc) from None

    async def contract_signed(self, account: bytes, digest: bytes, signature: bytes) -> bool:
        """ERC-1271: ``account`` has code and its ``isValidSignature`` answers the magic value.

        False for an EOA and for any refusal (a revert included); an RPC failure is 503.
        """
        try:
            if not await is_contract_async(self._rpc, account):
                return False
            return await is_valid_signature_async(self._rpc, account, digest, signature)
        except ChainError as exc:
            raise self._unavailable("isValidSignature", exc) from None
