"""Typed access to tkms's contracts: NoxCompute (the on-chain ACL), DemoApp, ContractWallet.

``NoxCompute`` reads and sends with the blocking client; ``AsyncNoxCompute`` has the
reads a service makes per request (``is_viewer``, ``is_publicly_decryptable``, …) on
the async client. Both only encode here and decode there (``abi``), so a result that
does not decode, or a call to an address without code, is ``ChainUnavailable``, never a
``False``. A revert raises ``Reverted`` with the contract's custom error decoded.
Addresses are 20 ``bytes``, handles 32 ``bytes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from coincurve import PublicKey

from tkms.chain.abi import AbiError, ContractAbi, Function, selector
from tkms.chain.artifacts import NAMES, Artifact, load
from tkms.chain.errors import ChainUnavailable, Reverted
from tkms.chain.rpc import AsyncRpcClient, BlockTag, Log, Receipt, RpcClient
from tkms.chain.tx import TxSigner
from tkms.crypto import curve
from tkms.protocol.handle import SolidityType, as_solidity_type


def type_code(handle_type: SolidityType | str | int) -> int:
    """The handle type code (byte 5) of a Solidity type, its name, or the code itself."""
    if isinstance(handle_type, int):
        return handle_type
    return as_solidity_type(handle_type).code


class Contract:
    """One deployed contract of an artifact, reached through a blocking client."""

    artifact_name = ""

    def __init__(self, rpc: RpcClient, address: bytes, artifact: Artifact | None = None) -> None:
        if len(address) != 20:
            raise ValueError("a contract address is 20 bytes")
        self.rpc = rpc
        self.address = address
        self.artifact = artifact or load(self.artifact_name)
        self.abi: ContractAbi = self.artifact.abi

    def __repr__(self) -> str:
        return f"{type(self).__name__}(0x{self.address.hex()})"

    def call(
        self, name: str, *args: Any, sender: bytes | None = None, block: BlockTag = "latest"
    ) -> tuple[Any, ...]:
        function = self.abi.function(name)
        try:
            raw = self.rpc.call(self.address, function.encode(*args), sender=sender, block=block)
        except Reverted as revert:
            raise decode_revert(self.abi, revert) from None
        return _decode(function, raw)

    def call1(self, name: str, *args: Any, **kw: Any) -> Any:
        return self.call(name, *args, **kw)[0]

    def transact(self, signer: TxSigner, name: str, *args: Any, value: int = 0) -> Receipt:
        data = self.abi.function(name).encode(*args)
        try:
            return signer.send(self.address, data, value=value)
        except Reverted as revert:
            raise decode_revert(self.abi, revert) from None

    def events(self, source: Receipt | Iterable[Log], name: str) -> list[dict[str, Any]]:
        """The ``name`` events this contract emitted in a receipt (or a list of logs)."""
        event = self.abi.event(name)
        logs = source.logs if isinstance(source, Receipt) else source
        return [
            event.decode(log.topics, log.data)
            for log in logs
            if log.address == self.address and log.topics and log.topics[0] == event.topic
        ]

    def logs(self, name: str, *, from_block: BlockTag = "earliest") -> list[dict[str, Any]]:
        event = self.abi.event(name)
        found = self.rpc.get_logs(address=self.address, topics=[event.topic], from_block=from_block)
        return self.events(found, name)


def decode_revert(abi: ContractAbi, revert: Reverted) -> Reverted:
    """A revert decoded by ``abi``, or by another of our contracts' ABIs when it bubbled up
    from a nested call (DemoApp passes NoxCompute's errors on)."""
    if not abi.knows_error(revert.data):
        for name in NAMES:
            other = load(name).abi
            if other.knows_error(revert.data):
                return other.decode_revert(revert)
    return abi.decode_revert(revert)


def _decode(function: Function, raw: bytes) -> tuple[Any, ...]:
    if not raw and function.outputs:
        raise ChainUnavailable(f"{function.name}: empty answer (no contract at the address?)")
    return function.decode(raw)


def decode_kms_public_key(raw: bytes) -> curve.Point:
    """``kmsPublicKey()`` as a point: compressed SEC1 (what Nox stores) or uncompressed."""
    if not (len(raw) == 33 and raw[0] in (2, 3)) and not (len(raw) == 65 and raw[0] == 4):
        raise curve.CurveError(f"{len(raw)} bytes, not a SEC1 point")
    try:
        return PublicKey(raw)
    except Exception:
        raise curve.CurveError("not a point on secp256k1") from None


def compressed_kms_public_key(raw: bytes) -> bytes | None:
    """``kmsPublicKey()`` in the keyset's form (33 bytes), or None if it is no point."""
    try:
        return curve.encode_point(decode_kms_public_key(raw))
    except curve.CurveError:
        return None


class NoxCompute(Contract):
    artifact_name = "NoxCompute"

    # views

    def gateway(self) -> bytes:
        return bytes(self.call1("gateway"))

    def kms_public_key(self) -> bytes:
        return bytes(self.call1("kmsPublicKey"))

    def admin(self) -> bytes:
        return bytes(self.call1("admin"))

    def upgrader(self) -> bytes:
        return bytes(self.call1("upgrader"))

    def domain_separator(self) -> bytes:
        return bytes(self.call1("domainSeparator"))

    def is_allowed(self, handle: bytes, account: bytes) -> bool:
        return bool(self.call1("isAllowed", handle, account))

    def is_viewer(self, handle: bytes, account: bytes) -> bool:
        return bool(self.call1("isViewer", handle, account))

    def is_publicly_decryptable(self, handle: bytes) -> bool:
        return bool(self.call1("isPubliclyDecryptable", handle))

    def validate_decryption_proof(self, handle: bytes, proof: bytes) -> bytes:
        """The plaintext of a gateway-signed public decryption; Reverted when the proof fails."""
        return bytes(self.call1("validateDecryptionProof", handle, proof))

    # transactions

    def set_gateway(self, signer: TxSigner, gateway: bytes) -> Receipt:
        return self.transact(signer, "setGateway", gateway)

    def set_kms_public_key(self, signer: TxSigner, key: bytes) -> Receipt:
        return self.transact(signer, "setKmsPublicKey", key)

    def set_admin(self, signer: TxSigner, admin: bytes) -> Receipt:
        return self.transact(signer, "setAdmin", admin)

    def set_upgrader(self, signer: TxSigner, upgrader: bytes) -> Receipt:
        return self.transact(signer, "setUpgrader", upgrader)

    def validate_input_proof(
        self,
        signer: TxSigner,
        handle: bytes,
        owner: bytes,
        proof: bytes,
        handle_type: SolidityType | str | int,
    ) -> Receipt:
        return self.transact(
            signer, "validateInputProof", handle, owner, proof, type_code(handle_type)
        )

    def allow(self, signer: TxSigner, handle: bytes, account: bytes) -> Receipt:
        return self.transact(signer, "allow", handle, account)

    def add_viewer(self, signer: TxSigner, handle: bytes, viewer: bytes) -> Receipt:
        return self.transact(signer, "addViewer", handle, viewer)

    def allow_public_decryption(self, signer: TxSigner, handle: bytes) -> Receipt:
        return self.transact(signer, "allowPublicDecryption", handle)

    def allow_transient(self, signer: TxSigner, handle: bytes, account: bytes) -> Receipt:
        return self.transact(signer, "allowTransient", handle, account)

    def disallow_transient(self, signer: TxSigner, handle: bytes, account: bytes) -> Receipt:
        return self.transact(signer, "disallowTransient", handle, account)


IS_VIEWER = selector("isViewer(bytes32,address)")


class AsyncNoxCompute:
    """NoxCompute's reads on the async client (what the gateway asks per request)."""

    def __init__(self, rpc: AsyncRpcClient, address: bytes) -> None:
        if len(address) != 20:
            raise ValueError("a contract address is 20 bytes")
        self.rpc = rpc
        self.address = address
        self.abi = load(NoxCompute.artifact_name).abi

    async def _call1(self, name: str, *args: Any) -> Any:
        function = self.abi.function(name)
        try:
            raw = await self.rpc.call(self.address, function.encode(*args))
        except Reverted as revert:
            raise decode_revert(self.abi, revert) from None
        return _decode(function, raw)[0]

    async def gateway(self) -> bytes:
        return bytes(await self._call1("gateway"))

    async def kms_public_key(self) -> bytes:
        return bytes(await self._call1("kmsPublicKey"))

    async def is_allowed(self, handle: bytes, account: bytes) -> bool:
        return bool(await self._call1("isAllowed", handle, account))

    async def is_viewer(self, handle: bytes, account: bytes) -> bool:
        """``isViewer(bytes32,address)``, encoded and decoded by hand: it is on every read's
        path at the gateway and every partial's at a user-mode node, and eth-abi's generic
        coder costs a third of the call's CPU. The answer must be exactly one ABI bool."""
        if len(handle) != 32 or len(account) != 20:
            raise AbiError("isViewer takes a 32-byte handle and a 20-byte address")
        try:
            word = await self.rpc.call(self.address, IS_VIEWER + handle + bytes(12) + account)
        except Reverted as revert:
            raise decode_revert(self.abi, revert) from None
        if len(word) != 32 or word[:31] != bytes(31) or word[31] > 1:
            raise ChainUnavailable("answer does not decode as (bool)")
        return word[31] == 1

    async def is_publicly_decryptable(self, handle: bytes) -> bool:
        return bool(await self._call1("isPubliclyDecryptable", handle))

    async def validate_decryption_proof(self, handle: bytes, proof: bytes) -> bytes:
        return bytes(await self._call1("validateDecryptionProof", handle, proof))


class DemoApp(Contract):
    artifact_name = "DemoApp"

    def nox(self) -> bytes:
        return bytes(self.call1("nox"))

    def register(
        self,
        signer: TxSigner,
        handle: bytes,
        proof: bytes,
        handle_type: SolidityType | str | int,
    ) -> Receipt:
        """validateInputProof for the caller, then allow the caller and the app."""
        return self.transact(signer, "register", handle, proof, type_code(handle_type))

    def handles_of(self, owner: bytes) -> list[bytes]:
        return [bytes(h) for h in self.call1("handlesOf", owner)]

    def last_transient_check(self) -> bool:
        return bool(self.call1("lastTransientCheck"))


class ContractWallet(Contract):
    artifact_name = "ContractWallet"

    def owner(self) -> bytes:
        return bytes(self.call1("owner"))

    def execute(self, signer: TxSigner, target: bytes, data: bytes, *, value: int = 0) -> Receipt:
        """The owner makes the wallet call ``target`` with ``data``."""
        return self.transact(signer, "execute", target, value, data)


# --- deploy -----------------------------------------------------------------------------


def deploy(signer: TxSigner, artifact: Artifact, *args: Any) -> bytes:
    """Deploys ``artifact`` with constructor ``args``; returns the new contract's address."""
    abi = artifact.abi
    try:
        receipt = signer.send(None, artifact.bytecode + abi.encode_constructor(*args))
    except Reverted as revert:
        raise decode_revert(abi, revert) from None
    if receipt.contract_address is None:
        raise ChainUnavailable("deploy receipt has no contract address")
    return receipt.contract_address


def deploy_nox_compute(
    signer: TxSigner, *, admin: bytes, upgrader: bytes, kms_public_key: bytes, gateway: bytes
) -> NoxCompute:
    """NoxCompute with Nox's initialize(admin, upgrader, kmsPublicKey, gateway) arguments."""
    address = deploy(signer, load("NoxCompute"), admin, upgrader, kms_public_key, gateway)
    return NoxCompute(signer.rpc, address)


def deploy_demo_app(signer: TxSigner, nox_compute: bytes) -> DemoApp:
    return DemoApp(signer.rpc, deploy(signer, load("DemoApp"), nox_compute))


def deploy_contract_wallet(signer: TxSigner, owner: bytes) -> ContractWallet:
    return ContractWallet(signer.rpc, deploy(signer, load("ContractWallet"), owner))
