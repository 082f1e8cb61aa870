"""The gateway's two on-chain proofs, as NoxCompute checks them (nox-compat.md).

- Input proof (``POST /v0/secrets``), 137 bytes: ``owner (20) ‖ app (20) ‖ createdAt
  (uint256 BE) ‖ sig (65)``, ``sig`` = the gateway's EIP-712 signature of
  ``HandleProof(bytes32 handle,address owner,address app,uint256 createdAt)``.
- Decryption proof (``GET /v0/public/{handle}``): ``sig (65) ‖ plaintext``, ``sig`` =
  the gateway's signature of ``DecryptionProof(bytes32 handle,bytes decryptedResult)``.

Both in the domain ``{name: "NoxCompute", version: "1", chainId, verifyingContract}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tkms.crypto import eip712
from tkms.crypto.wallet import Wallet, recover_address

INPUT_PROOF_LENGTH = 137
INPUT_PROOF_VALIDITY = 3600  # seconds after createdAt (NoxCompute.INPUT_PROOF_VALIDITY)
SIGNATURE_LENGTH = 65

DECRYPTION_PROOF = eip712.DECRYPTION_PROOF


class ProofError(ValueError):
    """A proof is not of its layout."""


@dataclass(frozen=True, slots=True)
class InputProof:
    owner: bytes
    app: bytes
    created_at: int
    signature: bytes

    def to_bytes(self) -> bytes:
        return self.owner + self.app + self.created_at.to_bytes(32, "big") + self.signature

    @classmethod
    def parse(cls, raw: bytes) -> InputProof:
        if len(raw) != INPUT_PROOF_LENGTH:
            raise ProofError(f"an input proof is {INPUT_PROOF_LENGTH} bytes, got {len(raw)}")
        return cls(raw[:20], raw[20:40], int.from_bytes(raw[40:72], "big"), raw[72:])

    def signer(self, chain_id: int, nox_compute: bytes, handle: bytes) -> bytes:
        digest = handle_proof_digest(
            chain_id, nox_compute, handle, self.owner, self.app, self.created_at
        )
        return recover_address(digest, self.signature)


def handle_proof_digest(
    chain_id: int, nox_compute: bytes, handle: bytes, owner: bytes, app: bytes, created_at: int
) -> bytes:
    message = {"handle": handle, "owner": owner, "app": app, "createdAt": created_at}
    return eip712.digest(
        eip712.nox_compute_domain(chain_id, nox_compute), eip712.HANDLE_PROOF, message
    )


def input_proof(
    gateway: Wallet,
    chain_id: int,
    nox_compute: bytes,
    handle: bytes,
    owner: bytes,
    app: bytes,
    created_at: int,
) -> bytes:
    """The 137-byte proof the gateway returns with a new handle."""
    digest = handle_proof_digest(chain_id, nox_compute, handle, owner, app, created_at)
    return InputProof(owner, app, created_at, gateway.sign_digest(digest)).to_bytes()


def decryption_proof_digest(
    chain_id: int, nox_compute: bytes, handle: bytes, plaintext: bytes
) -> bytes:
    message = {"handle": handle, "decryptedResult": plaintext}
    return eip712.digest(
        eip712.nox_compute_domain(chain_id, nox_compute), DECRYPTION_PROOF, message
    )


def decryption_proof(
    gateway: Wallet, chain_id: int, nox_compute: bytes, handle: bytes, plaintext: bytes
) -> bytes:
    """``sig ‖ plaintext``: what validateDecryptionProof takes."""
    digest = decryption_proof_digest(chain_id, nox_compute, handle, plaintext)
    return gateway.sign_digest(digest) + plaintext


def split_decryption_proof(raw: bytes) -> tuple[bytes, bytes]:
    """(signature, plaintext) of a decryption proof."""
    if len(raw) < SIGNATURE_LENGTH:
        raise ProofError("a decryption proof starts with a 65-byte signature")
    return raw[:SIGNATURE_LENGTH], raw[SIGNATURE_LENGTH:]
