"""What the Nox SDK does on chain, written from nox-compat.md alone — no tkms import.

JSON-RPC over httpx, ABI by eth-abi, transactions signed by eth-account: the reads
a Nox client makes (``eth_chainId``, ``gateway()``, ``kmsPublicKey()``,
``isViewer``) and the transactions a dApp's user sends (the demo app's
``register``, NoxCompute's ``addViewer``). The selectors are spelled out (nox-compat.md
gives gateway(), kmsPublicKey() and isViewer; register and addViewer are
keccak256 of their signatures, docs/chain.md): a wrong one would revert, so the
test that uses them checks them too.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.signers.local import LocalAccount

GATEWAY = bytes.fromhex("116191b6")  # gateway() -> address
KMS_PUBLIC_KEY = bytes.fromhex("ac6c544f")  # kmsPublicKey() -> bytes
IS_VIEWER = bytes.fromhex("02d0e66e")  # isViewer(bytes32,address) -> bool
ADD_VIEWER = bytes.fromhex("10ff39ca")  # addViewer(bytes32,address)
REGISTER = bytes.fromhex("9dacfddc")  # DemoApp.register(bytes32,bytes,uint8)


def h2b(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


class RpcFailed(AssertionError):
    pass


class RawChain:
    """One JSON-RPC endpoint and one NoxCompute contract."""

    def __init__(self, rpc_url: str, nox_compute: str) -> None:
        self.url, self.nox = rpc_url, nox_compute
        self.http = httpx.Client(timeout=10, trust_env=False)
        self.ids = 0

    def call(self, method: str, params: list[Any]) -> Any:
        self.ids += 1
        body = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        answer = self.http.post(self.url, json=body).json()
        if "error" in answer:
            raise RpcFailed(f"{method}: {answer['error']}")
        assert answer["id"] == self.ids
        return answer["result"]

    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

    def eth_call(self, to: str, data: bytes) -> bytes:
        return h2b(self.call("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"]))

    # --- what the Nox SDK reads ----------------------------------------------------------

    def gateway(self) -> str:
        (address,) = decode(["address"], self.eth_call(self.nox, GATEWAY))
        return str(address)

    def kms_public_key(self) -> bytes:
        (key,) = decode(["bytes"], self.eth_call(self.nox, KMS_PUBLIC_KEY))
        return bytes(key)

    def is_viewer(self, handle: bytes, account: str) -> bool:
        data = IS_VIEWER + encode(["bytes32", "address"], [handle, account])
        (answer,) = decode(["bool"], self.eth_call(self.nox, data))
        return bool(answer)

    # --- what a dApp's user sends ----------------------------------------------------------

    def register(self, sender: LocalAccount, app: str, handle: bytes, proof: bytes) -> None:
        """The app checks the gateway's proof with NoxCompute and allows the sender."""
        args = encode(["bytes32", "bytes", "uint8"], [handle, proof, handle[5]])
        self.transact(sender, app, REGISTER + args)

    def add_viewer(self, sender: LocalAccount, handle: bytes, viewer: str) -> None:
        self.transact(
            sender, self.nox, ADD_VIEWER + encode(["bytes32", "address"], [handle, viewer])
        )

    def transact(self, sender: LocalAccount, to: str, data: bytes) -> dict[str, Any]:
        """An EIP-1559 transaction signed here; its receipt, once mined with status 1."""
        call = {"from": sender.address, "to": to, "data": "0x" + data.hex()}
        gas = int(self.call("eth_estimateGas", [call]), 16)
        base = int(self.call("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
        tip = int(self.call("eth_maxPriorityFeePerGas", []), 16)
        nonce = int(self.call("eth_getTransactionCount", [sender.address, "pending"]), 16)
        tx = {
            "type": 2,
            "chainId": self.chain_id(),
            "nonce": nonce,
            "to": h2b(to),  # bytes: eth-account refuses an address string not checksummed
            "value": 0,
            "data": data,
            "gas": gas * 12 // 10,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base + tip,
        }
        signed = Account.sign_transaction(tx, sender.key)
        tx_hash = self.call("eth_sendRawTransaction", ["0x" + bytes(signed.raw_transaction).hex()])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            receipt = self.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None:
                assert receipt["status"] == "0x1", receipt
                return dict(receipt)
            time.sleep(0.05)
        raise RpcFailed(f"no receipt for {tx_hash}")

    def close(self) -> None:
        self.http.close()
