"""``POST /v1/delegate/batch`` (docs/batch-delegation.md): many partials in one request.

The same checks as ``/v1/delegate`` in the same order (chain, share held,
salt, ``Authorization: Bearer``, body, the gateway's signature, then each
ephemeral key and the target key), with one signature over the whole list
(``BatchDelegateAuthorization``), and one answer signed once
(``PartialBatchDelegateResponseProof``). Each partial is computed as
``/v1/delegate`` computes it (the share's prover, then RSA-OAEP). A batch is
1 to ``MAX_DELEGATION_BATCH`` keys: an empty one is 400, a longer one 413
``batch_too_large`` (before the signature is checked: the list is what costs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import FastAPI, Request
from prometheus_client import Counter
from starlette.responses import Response

from tkms.crypto import curve, eip712, rsa
from tkms.crypto.delegation_digests import batch_answer_digest, batch_request_digest
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import SignatureError, recover_address
from tkms.metric_labels import Children
from tkms.node.audit import AuditNote, Decisions
from tkms.node.delegate_route import PlainRoute, Ready
from tkms.node.delegation_v1 import PartialDelegator, ShareHolding
from tkms.node.request_checks import (
    chain_of_request,
    parse_bearer,
    parse_ephemeral_raw,
    parse_target_raw,
)
from tkms.protocol.batch_delegation import BATCH_PATH
from tkms.web import openapi
from tkms.web.common import json_response, require_json
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json_object
from tkms.web.params import parse_salt


def _parse_body(body: bytes, max_batch: int) -> tuple[list[str], str]:
    data = parse_json_object(body)
    keys, target = data.get("ephemeralPubKeys"), data.get("targetPubKey")
    if not isinstance(keys, list) or not all(isinstance(k, str) and k.isascii() for k in keys):
        raise ApiError(400, "invalid_body", "ephemeralPubKeys must be a list of ASCII hex strings")
    if not keys:
        raise ApiError(400, "invalid_body", "ephemeralPubKeys is empty")
    if len(keys) > max_batch:
        raise ApiError(413, "batch_too_large", f"more than {max_batch} ephemeral keys")
    if not isinstance(target, str) or not target.isascii():
        raise ApiError(400, "invalid_body", "targetPubKey must be an ASCII hex string")
    return keys, target


@dataclass(frozen=True)
class CheckedBatch:
    """A batch whose gateway-mode checks passed: what :func:`answer_batch` needs."""

    chain_id: int
    salt: bytes
    held: ShareHolding
    keys: list[str]  # the ephemeral keys as sent (the audit log fingerprints them)
    target_text: str
    points: list[curve.Point]
    target: rsa.RSAPublicKey
    # Their bytes, decoded once by the checks: the audit entry of each key fingerprints them.
    raw_keys: list[bytes]
    target_raw: bytes

    def key_notes(self, note: AuditNote) -> list[AuditNote]:
        """One audit note per key: the batch's, with that key as sent and its bytes."""
        return [
            dataclasses.replace(note, ephemeral_pubkey=k, ephemeral_raw=raw)
            for k, raw in zip(self.keys, self.raw_keys, strict=True)
        ]


class BatchCheck(Protocol):
    """``user`` mode's checks of a batch (node/runner_batch.py): None if the chain is served
    in gateway mode, else one audit note per key (its handle); raises ApiError."""

    def __call__(
        self, checked: CheckedBatch, body: bytes, note: AuditNote
    ) -> Awaitable[list[AuditNote] | None]: ...


class KeyRefusals(ApiError):
    """A batch refused with a reason per key: each is its own audit entry (docs/audit.md)."""

    def __init__(self, status: int, code: str, message: str, refusals: list[tuple[AuditNote, str]]):
        super().__init__(status, code, message)
        self.refusals = refusals


def delegate_batch(
    partials: PartialDelegator,
    max_batch: int,
    chain_id_raw: str | None,
    salt_raw: str | None,
    authorization: str | None,
    body: bytes,
    note: AuditNote | None = None,
    served_keys: list[str] | None = None,
) -> dict[str, Any]:
    """The batch answer (gateway mode); ``served_keys`` receives the ephemeral keys served."""
    checked = check_batch(partials, max_batch, chain_id_raw, salt_raw, authorization, body, note)
    if served_keys is not None:
        served_keys.extend(checked.keys)
    return answer_batch(partials, checked)


def check_batch(
    partials: PartialDelegator,
    max_batch: int,
    chain_id_raw: str | None,
    salt_raw: str | None,
    authorization: str | None,
    body: bytes,
    note: AuditNote | None = None,
) -> CheckedBatch:
    """Every check of gateway mode; ``note`` is filled in as the checks pass."""
    note = note or AuditNote("v1-batch")
    chain_id = chain_of_request(chain_id_raw, partials.gateways)
    note.chain_id = chain_id
    held = partials.holding(chain_id)
    note.epoch = held.epoch
    salt = parse_salt(salt_raw)
    signature = parse_bearer(authorization)
    keys, target_text = _parse_body(body, max_batch)
    note.target_pubkey = target_text
    try:
        signer = recover_address(batch_request_digest(chain_id, keys, target_text), signature)
    except (SignatureError, eip712.Eip712Error):
        raise ApiError(401, "invalid_signature", "authorization signature is invalid") from None
    note.requester = signer
    if signer != partials.gateways[chain_id]:
        raise ApiError(401, "unauthorized_signer", "authorization is not signed by the gateway")
    parsed = [parse_ephemeral_raw(k) for k in keys]
    note.target_raw, target = parse_target_raw(target_text)
    raw_keys, points = [raw for raw, _ in parsed], [point for _, point in parsed]
    return CheckedBatch(
        chain_id, salt, held, keys, target_text, points, target, raw_keys, note.target_raw
    )


def answer_batch(partials: PartialDelegator, checked: CheckedBatch) -> dict[str, Any]:
    held = checked.held
    sealed = []
    for point in checked.points:
        s_enc, proof = held.prover.partial(point)
        sealed.append(to_hex(rsa.encrypt(checked.target, s_enc + proof)))
    digest = batch_answer_digest(checked.chain_id, checked.salt, held.index, held.epoch, sealed)
    signature_out = partials.wallet.sign_digest(digest)
    return {
        "index": held.index,
        "epoch": held.epoch,
        "encryptedPartials": sealed,
        "proof": to_hex(signature_out),
    }


def add_batch_route(
    app: FastAPI,
    partials: PartialDelegator,
    delegations: Children[Counter],
    decisions: Decisions,
    max_batch: int,
    ready: Ready | None = None,
    user_check: BatchCheck | None = None,
) -> None:
    """Counted in ``tkms_node_delegations_total`` by partial, version ``v1-batch``.

    The audit log (docs/audit.md) gets one ``served`` entry per partial, each with
    its K's fingerprint (and in user mode its handle), or, refused, one entry per key
    with its reason once the keys are known (user mode), else one for the whole batch.
    """

    async def delegate_v1_batch(request: Request) -> Response:
        query = request.query_params
        note = AuditNote("v1-batch")
        served: list[AuditNote] = []
        try:
            require_json(request)
            if ready is not None:
                await ready(query.get("chain_id"))
            body = await request.body()
            checked = check_batch(
                partials,
                max_batch,
                query.get("chain_id"),
                query.get("salt"),
                request.headers.get("authorization"),
                body,
                note,
            )
            per_key = None if user_check is None else await user_check(checked, body, note)
            if per_key is None:
                per_key = checked.key_notes(note)
            answer = answer_batch(partials, checked)
            served = per_key
        except KeyRefusals as exc:
            for key_note, reason in exc.refusals:
                decisions.record(key_note, "refused", reason)
            raise
        except ApiError as exc:
            decisions.record(note, "refused", exc.code)
            raise
        except Exception:
            decisions.record(note, "refused", "internal_error")
            raise
        for key_note in served:
            decisions.record(key_note, "served", None)
        chain = str(chain_of_request(query.get("chain_id"), partials.gateways))
        delegations(chain, "v1-batch").inc(len(answer["encryptedPartials"]))
        return json_response(answer)

    spec = openapi.operation(
        query=("chain_id", "salt"),
        authorization=True,
        body=openapi.fields(ephemeralPubKeys="array", targetPubKey=openapi.HEX),
    )
    app.router.add_api_route(
        BATCH_PATH,
        delegate_v1_batch,
        methods=["POST"],
        route_class_override=PlainRoute,
        openapi_extra=spec,
    )
