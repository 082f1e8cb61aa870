"""``GET /v0/public/{handle}``: public decryption by the gateway itself (nox-compat.md).

A publicly decryptable handle's value is public by definition, so the gateway
may learn it: it makes its **own** RSA-2048 key when the process starts (one
per process, kept in memory only, never logged), has the KMS delegate to that
key, decrypts, and answers ``{decryptionProof}`` signed as
``PublicDecryptionResult``, where ``decryptionProof = sig(65) ‖ plaintext`` and
``sig`` is the chain wallet's ``DecryptionProof(handle, plaintext)`` in the
NoxCompute domain: what the contract's ``validateDecryptionProof`` checks.

Checks in nox v0.6's order: salt; handle, its type and its chain (400);
``isPubliclyDecryptable`` (403: on a chain by ``eth_call``, with the embedded
ACL its ``public`` role); the record (404); only then is any node asked.

In threshold mode the gateway does what the SDK does for a user: it opens
every partial sealed to its key, checks its DLEQ proof against the verified
keyset's ``Y_i`` and combines ``t`` valid ones by Lagrange. A partial that
fails its proof is excluded and the other nodes asked again; the answer is
the right value or a 503, never a wrong value (in single-node mode, AES-GCM's
tag refuses a wrong shared secret).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.gateway.fanout import Fanout, NotEnoughAnswers
from tkms.gateway.records import StoredRecord
from tkms.gateway.routing import Chains
from tkms.gateway.served_chain import ServedChain, not_configured
from tkms.gateway.service import Answer, GatewayService, NotEnoughNodes
from tkms.gateway.wire import signed
from tkms.protocol.delegation import SealedPartial, user_fields
from tkms.protocol.handle import Handle, HandleError, SolidityType, parse_handle
from tkms.protocol.keyset import VerifiedKeyset
from tkms.protocol.partials import PartialRejected, open_partial, shared_x
from tkms.web.errors import ApiError
from tkms.web.params import parse_salt

log = logging.getLogger("tkms.gateway")
_HANDLE_TEXT = re.compile(r"0x[0-9a-fA-F]{64}")


def read_handle(chains: Chains, raw: object, what: str = "handle") -> tuple[ServedChain, Handle]:
    """The handle (400 ``invalid_handle``, or ``invalid_type`` for its type code) and its chain."""
    try:
        handle = parse_handle(raw)
    except HandleError as exc:
        raise ApiError(400, _fault(raw), f"{what}: {exc}") from None
    return chains.served(handle.chain_id), handle


def _fault(raw: object) -> str:
    """``invalid_type`` when the handle is well-formed text but its type code is unknown."""
    if isinstance(raw, str) and _HANDLE_TEXT.fullmatch(raw):
        try:
            SolidityType.from_code(bytes.fromhex(raw[2:])[5])
        except HandleError:
            return "invalid_type"
    return "invalid_handle"


def _kms_failed(why: str) -> ApiError:
    return ApiError(503, "kms_unavailable", f"the KMS {why}")


class PublicDecryption:
    """The route's logic over a :class:`GatewayService`, and the gateway's own RSA key."""

    def __init__(self, service: GatewayService, *, rsa_bits: int = 2048) -> None:
        self._service = service
        self._key = rsa.generate_private_key(rsa_bits)  # never leaves this process
        self._target = to_hex(rsa.public_key_der(self._key))

    def __repr__(self) -> str:  # never the key
        return f"PublicDecryption(chains={list(self._service.chains.by_id)})"

    async def decrypt(self, handle_raw: str, salt_raw: str | None) -> Answer:
        service = self._service
        salt = parse_salt(salt_raw)
        chain, parsed = read_handle(service.chains, handle_raw)
        handle = parsed.to_bytes()
        if chain.chain_acl is not None:
            public = await chain.chain_acl.is_publicly_decryptable(handle)
        else:
            assert chain.access is not None
            public = await service._db(chain.access.is_publicly_decryptable, handle)
        if not public:
            raise ApiError(403, "access_denied", "this handle is not publicly decryptable")
        record = await service.record(handle)
        if record is None:
            raise ApiError(404, "not_found", "no secret is stored under this handle")
        start = time.perf_counter()
        async with service.admission.slot():  # the nodes are asked: gateway/admission.py
            plaintext = await self._plaintext(chain, record, salt)
        seconds = time.perf_counter() - start
        proof = eip712.sign(
            chain.wallet,
            eip712.nox_compute_domain(chain.chain_id, chain.contract),
            eip712.DECRYPTION_PROOF,
            {"handle": handle, "decryptedResult": plaintext},
        )
        payload = {"decryptionProof": to_hex(proof + plaintext)}
        body = signed(chain.wallet, chain.chain_id, salt, eip712.PUBLIC_DECRYPTION_RESULT, payload)
        return Answer(body, {"kms": seconds})

    async def _plaintext(self, chain: ServedChain, record: StoredRecord, salt: bytes) -> bytes:
        """The record's plaintext, at the width it was stored with (its type's, for fixed types)."""
        ephemeral = to_hex(record.ephemeral_pubkey)
        if chain.kms.fanout is not None:
            x = await self._combined(chain, chain.kms.fanout, record, salt)
        elif chain.kms.single is not None:
            sealed = await chain.kms.single.delegate(ephemeral, self._target, salt)
            x = await asyncio.to_thread(self._open_single, sealed)
        else:
            raise not_configured("no KMS is configured for this chain")
        try:
            return ecies.decrypt_with_shared_x(x, record.iv, record.ciphertext)
        except ecies.EciesError:
            # A wrong shared secret (or a damaged record): refused by AES-GCM, never answered.
            log.warning("chain %d: a public decryption did not open", chain.chain_id)
            raise _kms_failed("answer does not open the record") from None

    def _open_single(self, sealed: str) -> bytes:
        try:
            x = rsa.decrypt(self._key, parse_hex(sealed))
        except (EncodingError, rsa.RsaDecryptError):
            raise _kms_failed("answer does not open with the gateway's key") from None
        if len(x) != 32:
            raise _kms_failed("answer is not a 32-byte shared secret")
        return x

    async def _combined(
        self, chain: ServedChain, fanout: Fanout, record: StoredRecord, salt: bytes
    ) -> bytes:
        """x(S) from ``t`` partials whose DLEQ proofs verify; liars are excluded and replaced."""
        keyset = (await chain.keyset()).keyset
        ephemeral = curve.parse_point(record.ephemeral_pubkey)
        valid: dict[int, curve.Point] = {}
        failures: dict[int, str] = {}
        excluded: set[int] = set()
        while len(set(fanout.nodes) - excluded) >= keyset.threshold:
            try:
                result = await fanout.gather(
                    to_hex(record.ephemeral_pubkey),
                    self._target,
                    salt,
                    keyset=keyset,
                    exclude=frozenset(excluded),
                    # What a user-mode node checks: the binding, isPubliclyDecryptable.
                    context=user_fields(
                        record.handle,
                        record.iv,
                        record.ciphertext,
                        "",
                        purpose="public",
                        binding_signature=record.binding_signature,
                    ),
                )
            except NotEnoughAnswers as exc:
                failures.update({i: str(why) for i, why in exc.result.failures.items()})
                stale = any(f.other_epoch is not None for f in exc.result.failures.values())
                if chain.kms.keysets is not None and stale:
                    chain.kms.keysets.invalidate()  # a reshare: the next request reads the new one
                # The answers it did get may complete the valid partials of an earlier round.
                await asyncio.to_thread(
                    _open_all, keyset, self._key, ephemeral, exc.result.partials, valid, failures
                )
                if len(valid) >= keyset.threshold:
                    return shared_x(keyset, valid)
                break
            liars = await asyncio.to_thread(
                _open_all, keyset, self._key, ephemeral, result.partials, valid, failures
            )
            if len(valid) >= keyset.threshold:
                return shared_x(keyset, valid)
            if liars:
                log.warning("chain %d: partials refused, asking again: %s", chain.chain_id, liars)
            excluded |= liars
            if not liars:
                break  # nothing left to exclude: asking again would get the same answers
        log.warning("chain %d: not enough valid partials: %s", chain.chain_id, sorted(failures))
        raise NotEnoughNodes(keyset.threshold, len(valid), failures)


def _open_all(
    keyset: VerifiedKeyset,
    key: rsa.RSAPrivateKey,
    ephemeral: curve.Point,
    answers: Sequence[dict[str, Any]],
    valid: dict[int, curve.Point],
    failures: dict[int, str],
) -> set[int]:
    """Open and check each new answer into ``valid``; return the nodes whose answer failed."""
    liars: set[int] = set()
    for answer in answers:
        index = int(answer["index"])
        if index in valid:
            continue
        try:
            sealed = SealedPartial(index, keyset.epoch, parse_hex(answer["encryptedPartial"]))
            valid[index] = open_partial(keyset, key, ephemeral, sealed)
        except (EncodingError, PartialRejected) as exc:
            failures[index] = str(exc)
            liars.add(index)
    return liars
