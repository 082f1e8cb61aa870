"""The v1 partial delegation (protocol.md §3.2): ``x_i·K`` with a DLEQ proof, sealed.

Same request, same authorization and same order of checks as v0; the answer
is ``RSA-OAEP(enc(S_i) ‖ c ‖ z)`` and the node's EIP-712
``PartialDelegateResponseProof`` over ``(index, epoch, encryptedPartial)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from tkms.crypto import curve, dleq, rsa
from tkms.crypto.delegation_digests import partial_answer_digest
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.audit import AuditNote
from tkms.node.request_checks import (
    DelegateBody,
    chain_of_request,
    check_authorization,
    parse_bearer,
    parse_delegate_body,
    parse_ephemeral_raw,
    parse_target_raw,
)
from tkms.web.errors import ApiError
from tkms.web.params import parse_salt

REQUESTED_EPOCH: ContextVar[int | None] = ContextVar("tkms_requested_epoch", default=None)
"""The epoch a delegation names (``?epoch=``, set by the route): None for the current one."""


@dataclass(frozen=True)
class ShareHolding:
    """A chain's share as the hot path wants it: prover ready, keyset body cached."""

    index: int
    epoch: int
    prover: dleq.Prover
    keyset: Mapping[str, Any]


@dataclass(frozen=True)
class CheckedRequest:
    """A request whose gateway-mode checks passed: what :meth:`PartialDelegator.answer` needs."""

    chain_id: int
    salt: bytes
    held: ShareHolding
    body: DelegateBody
    ephemeral: curve.Point
    target: rsa.RSAPublicKey
    k: bytes  # K's 33 bytes, as sent (user mode binds them to the handle)


class PartialDelegator:
    """Answers v1 delegations; ``holdings`` fills in as ceremonies complete."""

    def __init__(self, wallet: Wallet, gateways: Mapping[int, bytes]) -> None:
        self.wallet = wallet
        self.gateways = dict(gateways)
        self.holdings: dict[int, ShareHolding] = {}
        # Older epochs' shares kept after a reshare's switch, until destroyed (node/keystore.py).
        self.previous: dict[int, dict[int, ShareHolding]] = {}

    def __repr__(self) -> str:
        return f"PartialDelegator(chains={sorted(self.gateways)}, ready={sorted(self.holdings)})"

    def holding(self, chain_id: int) -> ShareHolding:
        """The share of the epoch the request names, else the current one."""
        held = self.holdings.get(chain_id)
        wanted = REQUESTED_EPOCH.get()
        if wanted is not None and (held is None or held.epoch != wanted):
            older = self.previous.get(chain_id, {}).get(wanted)
            if older is not None:
                return older  # a request of the old epoch during the switch
            if held is None:
                raise ApiError(
                    409, "stale_epoch", f"this node holds no share of epoch {wanted} any more"
                )
            return held  # answered at its own epoch: the caller sees the switch
        if held is None:
            raise ApiError(
                503, "dkg_incomplete", f"no completed key generation for chain {chain_id} yet"
            )
        return held

    def keyset(self, chain_id_raw: str | None) -> Mapping[str, Any]:
        chain_id = chain_of_request(chain_id_raw, self.gateways)
        held = self.holdings.get(chain_id)
        if held is None and self.previous.get(chain_id):
            raise ApiError(410, "left_committee", "this node has left the chain's committee")
        return self.holding(chain_id).keyset

    def delegate_v1(
        self,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        body: bytes,
        note: AuditNote | None = None,
    ) -> dict[str, Any]:
        return self.answer(self.check(chain_id_raw, salt_raw, authorization, body, note))

    def check(
        self,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        body: bytes,
        note: AuditNote | None = None,
    ) -> CheckedRequest:
        """Every check of ``gateway`` mode; in ``user`` mode the user's come after
        (node/user_checks.py), before :meth:`answer` computes anything."""
        note = note or AuditNote("v1")
        chain_id = note.chain_id = chain_of_request(chain_id_raw, self.gateways)
        held = self.holding(chain_id)
        note.epoch = held.epoch
        salt = parse_salt(salt_raw)
        signature = parse_bearer(authorization)
        request = parse_delegate_body(body)
        # What the audit log fingerprints (docs/audit.md): public values, as sent.
        note.ephemeral_pubkey = request.ephemeral_pubkey
        note.target_pubkey = request.target_pubkey
        check_authorization(chain_id, request, signature, self.gateways[chain_id], note)
        note.ephemeral_raw, ephemeral = parse_ephemeral_raw(request.ephemeral_pubkey)
        note.target_raw, target = parse_target_raw(request.target_pubkey)
        return CheckedRequest(chain_id, salt, held, request, ephemeral, target, note.ephemeral_raw)

    def answer(self, checked: CheckedRequest) -> dict[str, Any]:
        held = checked.held
        s_enc, proof = held.prover.partial(checked.ephemeral)
        sealed = to_hex(rsa.encrypt(checked.target, s_enc + proof))
        digest = partial_answer_digest(
            checked.chain_id, checked.salt, held.index, held.epoch, sealed
        )
        signature_out = self.wallet.sign_digest(digest)
        return {
            "index": held.index,
            "epoch": held.epoch,
            "encryptedPartial": sealed,
            "proof": to_hex(signature_out),
        }
