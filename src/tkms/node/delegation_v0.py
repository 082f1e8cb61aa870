"""The v0 delegation of nox-kms, as a function of the request's raw parts.

``Delegator.delegate_v0`` is the node's whole code path minus HTTP: the
route hands it the query values, the Authorization header and the body bytes,
it runs the shared checks of :mod:`tkms.node.request_checks` in the order
nox-compat.md fixes, and answers ``x·K`` sealed. The benchmark calls it directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tkms.crypto import curve, rsa
from tkms.crypto.delegation_digests import v0_answer_digest
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.audit import AuditNote
from tkms.node.request_checks import (
    chain_of_request,
    check_authorization,
    parse_bearer,
    parse_delegate_body,
    parse_ephemeral_raw,
    parse_target_raw,
)
from tkms.web.params import parse_salt


@dataclass(frozen=True, slots=True)
class ChainKey:
    """One chain's KMS key and the gateway allowed to ask for delegations."""

    secret: bytes
    gateway: bytes

    def __repr__(self) -> str:
        return f"ChainKey(gateway=0x{self.gateway.hex()})"


class Delegator:
    """Answers v0 delegations with the whole per-chain key (single-node mode)."""

    def __init__(self, wallet: Wallet, chains: Mapping[int, ChainKey]) -> None:
        self.wallet = wallet
        self.chains = dict(chains)

    def __repr__(self) -> str:
        return f"Delegator(signer=0x{self.wallet.address.hex()}, chains={sorted(self.chains)})"

    def delegate_v0(
        self,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        body: bytes,
        note: AuditNote | None = None,
    ) -> dict[str, str]:
        note = note or AuditNote("v0")
        chain_id = note.chain_id = chain_of_request(chain_id_raw, self.chains)
        salt = parse_salt(salt_raw)
        signature = parse_bearer(authorization)
        request = parse_delegate_body(body)
        # What the audit log fingerprints (docs/audit.md): public values, as sent.
        note.ephemeral_pubkey = request.ephemeral_pubkey
        note.target_pubkey = request.target_pubkey
        key = self.chains[chain_id]
        check_authorization(chain_id, request, signature, key.gateway, note)
        note.ephemeral_raw, ephemeral = parse_ephemeral_raw(request.ephemeral_pubkey)
        note.target_raw, target = parse_target_raw(request.target_pubkey)
        shared_x = curve.mul_secret_x(ephemeral, int.from_bytes(key.secret, "big"))
        sealed = to_hex(rsa.encrypt(target, shared_x))
        proof = self.wallet.sign_digest(v0_answer_digest(chain_id, salt, sealed))
        return {"encryptedSharedSecret": sealed, "proof": to_hex(proof)}
