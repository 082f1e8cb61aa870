"""What an SDK client trusts: the gateway's signer, the NoxCompute address, ``Y`` if known."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayTrust:
    """What the client trusts: the gateway's signer, and the KMS key ``Y`` if it knows it.

    ``require_binding``: every record opened must be bound to its handle
    (docs/binding.md). True against tkms; False only for records whose
    handles are not bound (a Nox gateway's, a runner's results): the client
    then trusts the gateway's signature alone, as the Nox SDK does.

    ``runner``: the ``RUNNER_ADDRESS`` the client trusts. A runner's result handle comes
    from the chain, so its record is bound by the runner's ResultBinding signature
    instead (protocol/result_binding.py); with ``runner`` unset such a record is
    unbound (refused while ``require_binding``).
    """

    chain_id: int
    gateway_signer: bytes
    verifying_contract: bytes
    kms_public_key: bytes | None = None
    require_binding: bool = True
    runner: bytes | None = None
