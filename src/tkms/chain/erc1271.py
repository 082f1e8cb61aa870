"""ERC-1271: a contract account's ``isValidSignature(bytes32 hash, bytes signature)``.

The gateway falls back to it when a user's ECDSA signature does not recover to
``userAddress`` and that address has code. A revert, or any answer but the magic
value, is a definite "not valid"; an RPC failure is ``ChainUnavailable``, never a yes.
"""

from __future__ import annotations

from tkms.chain.abi import encode_values, selector
from tkms.chain.errors import Reverted
from tkms.chain.rpc import AsyncRpcClient, RpcClient

MAGIC_VALUE = bytes.fromhex("1626ba7e")
IS_VALID_SIGNATURE = selector("isValidSignature(bytes32,bytes)")
_MAGIC_WORD = MAGIC_VALUE + bytes(28)  # bytes4 in an ABI word is left-aligned


def _calldata(digest: bytes, signature: bytes) -> bytes:
    if len(digest) != 32:
        raise ValueError("a digest is 32 bytes")
    return IS_VALID_SIGNATURE + encode_values(("bytes32", "bytes"), (digest, signature))


def _is_magic(answer: bytes) -> bool:
    return len(answer) >= 32 and answer[:32] == _MAGIC_WORD


def is_contract(rpc: RpcClient, address: bytes) -> bool:
    """Whether ``address`` has code (a contract, or an EIP-7702 delegated account)."""
    return len(rpc.get_code(address)) > 0


def is_valid_signature(rpc: RpcClient, contract: bytes, digest: bytes, signature: bytes) -> bool:
    try:
        answer = rpc.call(contract, _calldata(digest, signature))
    except Reverted:
        return False
    return _is_magic(answer)


async def is_contract_async(rpc: AsyncRpcClient, address: bytes) -> bool:
    return len(await rpc.get_code(address)) > 0


async def is_valid_signature_async(
    rpc: AsyncRpcClient, contract: bytes, digest: bytes, signature: bytes
) -> bool:
    try:
        answer = await rpc.call(contract, _calldata(digest, signature))
    except Reverted:
        return False
    return _is_magic(answer)
