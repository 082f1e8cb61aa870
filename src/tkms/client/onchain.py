"""What a dApp does on chain after the gateway answers: register a handle, share it.

A new handle's owner becomes an admin of it on chain by registering it through an
application contract (the devnet's demo app: ``DemoApp.register(handle, proof, type)``,
which checks the gateway's input proof with NoxCompute and allows the caller and
itself). The owner (or an admin) then shares it with ``addViewer`` or ``allow``, or
makes it public with ``allowPublicDecryption``. Each call sends one transaction from
the user's wallet and waits for its receipt (blocking, on :mod:`tkms.chain`).

A revert is :class:`TransactionReverted` (naming NoxCompute's custom error); a chain
that cannot be reached is :class:`~tkms.client.errors.TransportError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tkms.chain.contract import DemoApp, NoxCompute, compressed_kms_public_key
from tkms.chain.errors import ChainUnavailable, Reverted
from tkms.chain.rpc import Receipt, RpcClient
from tkms.chain.tx import TxSigner
from tkms.client.errors import TransactionReverted, TransportError
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.handle import SolidityType

T = TypeVar("T")


class OnChain:
    """One wallet's transactions on one NoxCompute (and its application contract)."""

    def __init__(
        self,
        rpc_url: str,
        wallet: Wallet,
        *,
        chain_id: int,
        nox_compute: bytes,
        application: bytes | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = rpc_url
        self.rpc = RpcClient(rpc_url, timeout=timeout)
        self.signer = TxSigner(self.rpc, wallet, chain_id=chain_id)
        self.nox = NoxCompute(self.rpc, nox_compute)
        self.app = None if application is None else DemoApp(self.rpc, application)

    def _send(self, what: str, send: Callable[[], Receipt]) -> str:
        try:
            return to_hex(send().transaction_hash)
        except Reverted as exc:
            raise TransactionReverted(what, exc.error, exc.reason) from None
        except ChainUnavailable as exc:
            raise TransportError(f"cannot reach the chain at {self.url}: {exc}") from None

    def register(self, handle: bytes, proof: bytes, solidity_type: SolidityType) -> str:
        """``app.register``: the sender owns and administers the handle on chain."""
        app = self.app
        if app is None:
            raise TransportError("no application contract to register through")
        return self._send(
            "register", lambda: app.register(self.signer, handle, proof, solidity_type)
        )

    def add_viewer(self, handle: bytes, account: bytes) -> str:
        return self._send("addViewer", lambda: self.nox.add_viewer(self.signer, handle, account))

    def allow(self, handle: bytes, account: bytes) -> str:
        return self._send("allow", lambda: self.nox.allow(self.signer, handle, account))

    def allow_public_decryption(self, handle: bytes) -> str:
        return self._send(
            "allowPublicDecryption", lambda: self.nox.allow_public_decryption(self.signer, handle)
        )

    def kms_public_key(self) -> bytes | None:
        """``kmsPublicKey()`` compressed (33 bytes), or None when it is not a point."""
        try:
            return compressed_kms_public_key(self.nox.kms_public_key())
        except (ChainUnavailable, Reverted) as exc:
            raise TransportError(f"cannot read kmsPublicKey() at {self.url}: {exc}") from None

    def is_viewer(self, handle: bytes, account: bytes) -> bool:
        try:
            return self.nox.is_viewer(handle, account)
        except ChainUnavailable as exc:
            raise TransportError(f"cannot reach the chain at {self.url}: {exc}") from None

    def close(self) -> None:
        self.rpc.close()
