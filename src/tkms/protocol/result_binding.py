"""The runner's signature over a result's binding (docs/binding.md, "Results published by
a runner").

A result handle comes from the chain: its 25 last bytes are not a hash of the record, so
:func:`tkms.protocol.binding.is_bound` cannot vouch for it. The runner, who encrypted the
result, signs instead ``ResultBinding(bytes32 handle, bytes32 record)`` where ``record``
is the very hash a bound handle is cut from (``record_digest`` of the handle's prefix,
``K``, ``iv`` and the ciphertext's digest), in the runner's domain ``Handle Gateway``/
``1``/chainId. Whoever knows ``RUNNER_ADDRESS`` (a node, the SDK, the gateway) checks it
with no trust in whoever served the record. Pure: no I/O.
"""

from __future__ import annotations

from tkms.crypto import eip712
from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import SignatureError, Wallet
from tkms.protocol.binding import PREFIX_LENGTH, BindingError, is_bound, record_digest
from tkms.protocol.handle import HANDLE_LENGTH

SIGNATURE_LENGTH = 65


def _message(handle: bytes, ephemeral_pubkey: bytes, iv: bytes, digest: bytes) -> dict[str, bytes]:
    if len(handle) != HANDLE_LENGTH:
        raise BindingError(f"handle must be {HANDLE_LENGTH} bytes")
    record = record_digest(handle[:PREFIX_LENGTH], ephemeral_pubkey, iv, digest)
    return {"handle": handle, "record": record}


def _chain_id(handle: bytes) -> int:
    return int.from_bytes(handle[1:5], "big")  # version ‖ chainId u32 BE ‖ … (nox-compat.md)


def sign_result_binding(
    runner: Wallet, handle: bytes, ephemeral_pubkey: bytes, iv: bytes, digest: bytes
) -> bytes:
    """The runner's 65-byte signature binding ``handle`` to this record."""
    message = _message(handle, ephemeral_pubkey, iv, digest)
    domain = eip712.gateway_domain(_chain_id(handle))
    return eip712.sign(runner, domain, eip712.RESULT_BINDING, message)


def result_binding_signer(
    handle: bytes, ephemeral_pubkey: bytes, iv: bytes, digest: bytes, signature: bytes
) -> bytes | None:
    """Who signed this record's binding to ``handle`` (None: not a signature of it)."""
    try:
        message = _message(handle, ephemeral_pubkey, iv, digest)
        domain = eip712.gateway_domain(_chain_id(handle))
        return eip712.recover(domain, eip712.RESULT_BINDING, message, signature)
    except (BindingError, SignatureError, eip712.Eip712Error, ValueError):
        return None


def parse_binding_signature(value: object) -> bytes | None:
    """A wire ``bindingSignature``: absent (None) or 65 bytes of hex; EncodingError if not."""
    if value is None:
        return None
    return parse_hex(value, name="bindingSignature", length=SIGNATURE_LENGTH)


def is_record_of(
    handle: bytes,
    ephemeral_pubkey: bytes,
    iv: bytes,
    digest: bytes,
    signature: bytes | None,
    runner: bytes | None,
) -> bool:
    """Whether this record is the one ``handle`` names: a tkms-bound handle, or a result
    whose binding ``runner`` signed. ``==`` suffices: nothing compared is secret."""
    if is_bound(handle, ephemeral_pubkey, iv, digest):
        return True
    if signature is None or runner is None:
        return False
    return result_binding_signer(handle, ephemeral_pubkey, iv, digest, signature) == runner
