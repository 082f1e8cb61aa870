"""A real anvil chain with tkms's contracts deployed, for the chain tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from tkms.chain import proofs
from tkms.chain.anvil import Anvil
from tkms.chain.contract import DemoApp, NoxCompute, deploy_demo_app, deploy_nox_compute
from tkms.chain.rpc import RpcClient
from tkms.chain.tx import TxSigner
from tkms.crypto import curve
from tkms.crypto.wallet import Wallet
from tkms.protocol.handle import SolidityType, as_solidity_type

CHAIN_ID = 421614
FOREIGN_CHAIN_ID = 11155111


def make_handle(
    chain_id: int = CHAIN_ID, solidity_type: SolidityType | str = "uint256", attributes: int = 1
) -> bytes:
    """version 0 ‖ chainId (uint32 BE) ‖ type code ‖ attributes ‖ 25 random bytes."""
    code = as_solidity_type(solidity_type).code
    return (
        bytes([0])
        + chain_id.to_bytes(4, "big")
        + bytes([code, attributes])
        + secrets.token_bytes(25)
    )


@dataclass
class ChainNet:
    anvil: Anvil
    rpc: RpcClient
    admin: TxSigner
    upgrader: TxSigner
    alice: TxSigner
    bob: TxSigner
    carol: TxSigner
    stranger: TxSigner
    gateway: Wallet
    kms_public_key: bytes
    nox: NoxCompute
    app: DemoApp
    other_app: DemoApp

    def signer(self, index: int) -> TxSigner:
        return TxSigner(self.rpc, self.anvil.private_keys[index], chain_id=CHAIN_ID)

    def timestamp(self) -> int:
        block = self.rpc.request("eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)

    def input(
        self,
        owner: bytes,
        app: bytes | None = None,
        *,
        solidity_type: SolidityType | str = "uint256",
        chain_id: int = CHAIN_ID,
        attributes: int = 1,
        created_at: int | None = None,
        gateway: Wallet | None = None,
    ) -> tuple[bytes, bytes]:
        """A new handle and the gateway's 137-byte proof for (owner, app)."""
        handle = make_handle(chain_id, solidity_type, attributes)
        proof = proofs.input_proof(
            gateway or self.gateway,
            CHAIN_ID,
            self.nox.address,
            handle,
            owner,
            self.app.address if app is None else app,
            self.timestamp() if created_at is None else created_at,
        )
        return handle, proof

    def registered(self, owner: TxSigner, solidity_type: str = "uint256") -> bytes:
        """A handle registered through the demo app: owner and app are its admins."""
        handle, proof = self.input(owner.address, solidity_type=solidity_type)
        self.app.register(owner, handle, proof, solidity_type)
        return handle


def start_chain() -> ChainNet:
    """anvil with NoxCompute and two demo apps; anvil is stopped if a deployment fails."""
    anvil = Anvil.start(chain_id=CHAIN_ID, accounts=8)
    try:
        return _deployed(anvil)
    except BaseException:
        anvil.stop()
        raise


def _deployed(anvil: Anvil) -> ChainNet:
    rpc = anvil.rpc()
    signers = [TxSigner(rpc, key, chain_id=CHAIN_ID) for key in anvil.private_keys]
    admin, upgrader, alice, bob, carol, stranger = signers[:6]
    gateway = Wallet.generate()
    kms_public_key = curve.encode_point(curve.base_mul(curve.random_scalar()))
    nox = deploy_nox_compute(
        admin,
        admin=admin.address,
        upgrader=upgrader.address,
        kms_public_key=kms_public_key,
        gateway=gateway.address,
    )
    app = deploy_demo_app(admin, nox.address)
    other_app = deploy_demo_app(admin, nox.address)
    return ChainNet(
        anvil, rpc, admin, upgrader, alice, bob, carol, stranger, gateway, kms_public_key,
        nox, app, other_app,
    )  # fmt: skip
