"""The runner's routes: ``GET /v0|v1/compute/operands`` and ``POST /v0/compute/results``.

nox-compat.md "The runner" and docs/runner.md. The runner is trusted (no ACL
check): its statement must be signed by ``RUNNER_ADDRESS``. Checks, in order:
salt (400); the statement decodes and is signed (401), by the runner (401);
its chain is served (400 ``unknown_chain``); on a linked chain its
``blockNumber`` is fresh (401 ``stale_authorization``); then the operands or
results themselves (400), and only then the database and the KMS.

Operands: every record must exist (400 ``operands``, as nox); the KMS then
re-seals each record's shared secret to the statement's ``rsaPublicKey``, all
in parallel. A KMS failure is 503 ``operands`` (nox answers 500; tkms never
answers a 500). In threshold mode ``/v1/compute/operands`` answers each
record with its sealed partials instead (``compute_threshold.py``).

Results are stored as the runner encrypted them (``publicKey`` = K,
``nonce`` = iv), with no owner and no application (zero addresses), their
``handleValueTag`` and, when the runner sent it, its ``bindingSignature`` (the
runner's ResultBinding over the record, checked against ``RUNNER_ADDRESS``: 400
``invalid_binding_signature`` if it is not; docs/binding.md); the store is
write-once, so a second publication of a handle is "unchanged" (same tag) or
"conflicted" (another tag, never overwritten). A record is committed before the
answer is sent, so it reads at once through ``GET /v0|v1/secrets`` by whoever
the chain says may view it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tkms.crypto import curve, eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.gateway.records import InvalidRecord, RecordExists, StoredRecord
from tkms.gateway.served_chain import ServedChain, not_configured
from tkms.gateway.service import Answer, GatewayService
from tkms.gateway.wire import signed
from tkms.protocol.binding import ciphertext_digest
from tkms.protocol.handle import HandleError, parse_handle
from tkms.protocol.result_binding import parse_binding_signature, result_binding_signer
from tkms.protocol.runner_statement import (
    RunnerStatement,
    check_fresh,
    check_runner,
    decode_operand_access,
    decode_result_publishing,
)
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json
from tkms.web.params import parse_salt

NO_ADDRESS = bytes(20)
GCM_TAG = 16


def _bad(message: str) -> ApiError:
    return ApiError(400, "operands", message)


@dataclass(frozen=True)
class RunnerPolicy:
    runner: bytes | None  # RUNNER_ADDRESS; None: the routes answer 501
    max_handles: int  # operands per statement, results per request
    max_block_age: int  # blocks between a statement's blockNumber and the chain head


class Compute:
    """The runner's requests, over the gateway's service (its chains, store and KMS side)."""

    def __init__(self, service: GatewayService, policy: RunnerPolicy) -> None:
        self.service = service
        self.policy = policy

    async def _chain(self, statement: RunnerStatement) -> ServedChain:
        check_runner(statement, self.policy.runner)
        chain = self.service.chains.served(statement.chain_id)
        if chain.chain_acl is not None:
            check_fresh(statement, await chain.chain_acl.head(), self.policy.max_block_age)
        return chain

    # --- operands ----------------------------------------------------------------

    async def statement_records(
        self, salt_raw: str | None, authorization: str | None
    ) -> tuple[ServedChain, bytes, RunnerStatement, list[StoredRecord]]:
        """What both operand routes start with: the checked statement and its records."""
        salt = parse_salt(salt_raw)
        statement = decode_operand_access(authorization)
        chain = await self._chain(statement)
        if not statement.operands:
            raise _bad("the statement names no operand")
        if len(statement.operands) > self.policy.max_handles:
            raise ApiError(400, "batch_too_large", f"more than {self.policy.max_handles} operands")
        try:
            handles = [
                parse_handle(h, chain_id=chain.chain_id).to_bytes() for h in statement.operands
            ]
        except HandleError as exc:
            raise ApiError(400, "invalid_handle", f"operand: {exc}") from None
        try:
            rsa.load_public_key(parse_hex(statement.rsa_public_key, name="rsaPublicKey"))
        except (EncodingError, rsa.RsaKeyError) as exc:
            raise ApiError(400, "invalid_rsa_public_key", f"rsaPublicKey: {exc}") from None
        records = await self.service._db(_records, self.service, handles)
        missing = [to_hex(h) for h, r in zip(handles, records, strict=True) if r is None]
        if missing:
            raise _bad(f"no record for operand {missing[0]} ({len(missing)} missing)")
        return chain, salt, statement, [r for r in records if r is not None]

    async def operands_v0(self, salt_raw: str | None, authorization: str | None) -> Answer:
        chain, salt, statement, records = await self.statement_records(salt_raw, authorization)
        single = chain.kms.single
        if single is None:
            raise not_configured(
                "this gateway fronts a threshold KMS: use GET /v1/compute/operands"
            )
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            sealed = await asyncio.gather(
                *(
                    single.delegate(to_hex(r.ephemeral_pubkey), statement.rsa_public_key, salt)
                    for r in records
                )
            )
        except ApiError as exc:  # the node's refusal or outage, already without detail
            raise ApiError(503, "operands", exc.message) from None
        operands = [
            {
                "handle": to_hex(r.handle),
                "ciphertext": to_hex(r.ciphertext),
                "encryptedSharedSecret": s,
                "iv": to_hex(r.iv),
            }
            for r, s in zip(records, sealed, strict=True)
        ]
        body = signed(
            chain.wallet, chain.chain_id, salt, eip712.COMPUTE_OPERANDS, {"operands": operands}
        )
        return Answer(body, {"kms": loop.time() - start})

    # --- results -----------------------------------------------------------------

    async def results(self, salt_raw: str | None, authorization: str | None, body: bytes) -> Answer:
        salt = parse_salt(salt_raw)
        statement = decode_result_publishing(authorization)
        chain = await self._chain(statement)
        created_at = self.service._now()
        records = [
            _result_record(
                item, chain.chain_id, created_at, self.service.max_record_bytes, statement.signer
            )
            for item in self._result_list(body)
        ]
        counts = await self.service._db(_publish, self.service, records)
        message = f"{counts[0]} created, {counts[1]} unchanged, {counts[2]} conflicted"
        report = {"message": message}
        return Answer(
            signed(chain.wallet, chain.chain_id, salt, eip712.RESULT_PUBLISHING_REPORT, report)
        )

    def _result_list(self, body: bytes) -> list[Any]:
        items = parse_json(body)
        if not isinstance(items, list) or not items:
            raise ApiError(400, "invalid_body", "body must be a non-empty JSON array of results")
        if len(items) > self.policy.max_handles:
            raise ApiError(400, "batch_too_large", f"more than {self.policy.max_handles} results")
        return items


def _records(service: GatewayService, handles: list[bytes]) -> list[StoredRecord | None]:
    return [service.store.get(h) for h in handles]


def _field(item: dict[str, Any], name: str, length: int | None = None) -> bytes:
    try:
        return parse_hex(item.get(name), name=name, length=length)
    except EncodingError as exc:
        raise ApiError(400, "invalid_body", f"result: {exc}") from None


def _binding_signature(
    item: dict[str, Any], handle: bytes, key: bytes, iv: bytes, ciphertext: bytes, runner: bytes
) -> bytes | None:
    """The runner's ResultBinding of this result, if it sent one (the Nox runner does not)."""
    try:
        signature = parse_binding_signature(item.get("bindingSignature"))
    except EncodingError as exc:
        raise ApiError(400, "invalid_body", f"result: {exc}") from None
    if signature is None:
        return None
    signer = result_binding_signer(handle, key, iv, ciphertext_digest(ciphertext), signature)
    if signer != runner:
        raise ApiError(
            400,
            "invalid_binding_signature",
            "result: bindingSignature is not the runner's signature of this record",
        )
    return signature


def _result_record(
    item: Any, chain_id: int, created_at: int, max_bytes: int, runner: bytes
) -> StoredRecord:
    if not isinstance(item, dict):
        raise ApiError(400, "invalid_body", "each result is a JSON object")
    try:
        handle = parse_handle(item.get("handle"), chain_id=chain_id)
    except HandleError as exc:
        raise ApiError(400, "invalid_handle", f"result: {exc}") from None
    tag = _field(item, "handleValueTag", 32)
    ciphertext = _field(item, "ciphertext")
    if not GCM_TAG <= len(ciphertext) <= max_bytes + GCM_TAG:
        raise ApiError(400, "invalid_body", "result: ciphertext has an impossible length")
    key = _field(item, "publicKey", 33)
    try:
        curve.parse_point(key)
    except ValueError:
        raise ApiError(400, "invalid_body", "result: publicKey is not a curve point") from None
    iv = _field(item, "nonce", 12)
    raw = handle.to_bytes()
    signature = _binding_signature(item, raw, key, iv, ciphertext, runner)
    try:
        return StoredRecord(
            raw, chain_id, handle.solidity_type, NO_ADDRESS, NO_ADDRESS,
            created_at, ciphertext, key, iv, tag, signature,
        )  # fmt: skip
    except InvalidRecord as exc:  # every field was checked above: a refusal, never a 500
        raise ApiError(400, "invalid_body", f"result: {exc}") from None


def _publish(service: GatewayService, records: list[StoredRecord]) -> tuple[int, int, int]:
    """(created, unchanged, conflicted): write-once, so an existing handle is only compared."""
    created = unchanged = conflicted = 0
    for record in records:
        try:
            service.store.put(record)
            created += 1
            continue
        except RecordExists:
            pass
        existing = service.store.get(record.handle)
        if existing is not None and existing.value_tag == record.value_tag:
            unchanged += 1
        else:
            conflicted += 1
    return created, unchanged, conflicted
