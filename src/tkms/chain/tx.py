"""Signing and sending transactions with eth-account (EIP-1559, type 2).

Blocking: deploys, the devnet and tests send transactions; the services only read.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_utils.address import to_checksum_address

from tkms.chain.errors import TransactionFailed
from tkms.chain.rpc import Receipt, RpcClient, hex_data
from tkms.crypto.wallet import Wallet


@dataclass(frozen=True, slots=True)
class Sent:
    receipt: Receipt

    @property
    def transaction_hash(self) -> bytes:
        return self.receipt.transaction_hash


class TxSigner:
    """An account that signs and sends transactions through one RPC client.

    Each ``send`` estimates the gas (a revert shows there, with its reason), signs with
    the pending nonce, sends, and waits for the receipt; status 0 raises TransactionFailed.
    """

    def __init__(
        self,
        rpc: RpcClient,
        private_key: bytes | Wallet,
        *,
        chain_id: int | None = None,
        receipt_timeout: float = 30.0,
    ) -> None:
        key = private_key.private_key_bytes() if isinstance(private_key, Wallet) else private_key
        self._account = Account.from_key(key)
        self.address: bytes = bytes.fromhex(self._account.address[2:])
        self.rpc = rpc
        self._chain_id = chain_id
        self.receipt_timeout = receipt_timeout

    def __repr__(self) -> str:
        return f"TxSigner(address={hex_data(self.address)})"

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    def send(
        self, to: bytes | None, data: bytes, *, value: int = 0, gas: int | None = None
    ) -> Receipt:
        call: dict[str, object] = {"from": self.address, "data": data, "value": value}
        if to is not None:
            call["to"] = to
        if gas is None:
            gas = self.rpc.estimate_gas(call) * 6 // 5 + 10_000
        tip = self.rpc.max_priority_fee()
        tx: dict[str, object] = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self.rpc.get_transaction_count(self.address, "pending"),
            "gas": gas,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * self.rpc.base_fee() + tip,
            "value": value,
            "data": data,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        signed = self._account.sign_transaction(tx)
        tx_hash = self.rpc.send_raw_transaction(bytes(signed.raw_transaction))
        receipt = self.rpc.wait_for_receipt(tx_hash, timeout=self.receipt_timeout)
        if not receipt.succeeded:
            raise TransactionFailed(None, reason=f"transaction {hex_data(tx_hash)} reverted")
        return receipt
