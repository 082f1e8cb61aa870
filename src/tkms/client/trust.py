"""What an SDK client trusts: the gateway's signer, the NoxCompute address, ``Y`` if known."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayTrust:
    """What the client trusts: the gateway's signer, and the KMS key ``Y`` if it knows it."""

    chain_id: int
    gateway_signer: bytes
    verifying_contract: bytes
    kms_public_key: bytes | None = None
