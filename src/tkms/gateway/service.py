"""The gateway's request logic, callable without HTTP (the benchmark does).

Each method takes the raw parts of a request (query values, the Authorization
header, body bytes) and returns an :class:`Answer` or raises ``ApiError``.
Every request is for one served chain (``gateway/routing.py``: the handle's,
else ``chain_id`` or the default), whose wallet, domains, ACL and KMS side
answer it (``gateway/served_chain.py``). Reads run the checks in this order:
``chain_id`` (when given), salt, the handle (400) and its chain (400
``unknown_chain``), the user's signed authorization (401), the RSA key it
names (400), then with the embedded ACL the record (404) and the ACL (403);
on a chain, as nox v0.6,
the ACL first (``isViewer`` of NoxCompute, 403, or 503 ``chain_unavailable``)
and the record after (404), so that a stranger learns nothing of a handle's
existence — and only then is any node asked. The database is called from a
worker thread so a slow query never stalls the event loop; a record read once
is kept in memory (records are write-once: ``gateway/record_cache.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Counter

from tkms.crypto import ecies, eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.gateway.acl import AclListing, EmbeddedAcl, InvalidGrant, NotAuthorized, UnknownHandle
from tkms.gateway.admission import Admission
from tkms.gateway.authz import (
    DataAccess,
    SignedDataAccess,
    check_acl_read,
    check_grant,
    not_signed_by_user,
)
from tkms.gateway.chain_acl import ChainAcl
from tkms.gateway.exclude import check_enough_left, parse_exclude
from tkms.gateway.fanout import NotEnoughAnswers
from tkms.gateway.record_cache import RecordCache
from tkms.gateway.records import RecordExists, StorageError, StoredRecord
from tkms.gateway.routing import Chains
from tkms.gateway.served_chain import KmsSide, ServedChain, not_configured
from tkms.gateway.storage import SqlRecordStore
from tkms.gateway.wire import body_address, signed, signed_material
from tkms.protocol.access_cache import VerifiedTokens
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.delegation import user_fields
from tkms.protocol.handle import HandleError, SolidityType, parse_handle
from tkms.protocol.solidity import ValueEncodingError, parse_encoded_value
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json_object
from tkms.web.params import parse_salt

__all__ = ["Answer", "GatewayService", "KmsSide", "NotEnoughNodes", "ServedChain"]
log = logging.getLogger("tkms.gateway")
P = ParamSpec("P")
R = TypeVar("R")
ZERO_ADDRESS = bytes(20)


@dataclass
class Answer:
    body: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)  # seconds, for Server-Timing


class NotEnoughNodes(ApiError):
    """503 naming each failed node; the body also carries them for programs."""

    def __init__(self, threshold: int, valid: int, failures: dict[int, str]) -> None:
        detail = "; ".join(f"node {i}: {why}" for i, why in sorted(failures.items()))
        super().__init__(
            503, "not_enough_partials", f"need {threshold} partials, have {valid} ({detail})"
        )
        self.extra = {
            "threshold": threshold,
            "valid": valid,
            "failures": {str(i): why for i, why in sorted(failures.items())},
        }


def _not_a_viewer(user: bytes) -> ApiError:
    return ApiError(403, "access_denied", f"0x{user.hex()} is not a viewer of this handle")


class GatewayService:
    """The request logic over collaborators it is given (``assembly.build_gateway_service``)."""

    def __init__(
        self,
        *,
        chains: Chains,
        admission: Admission,
        store: SqlRecordStore,
        max_record_bytes: int,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chains = chains
        self.admission = admission  # reads that ask the nodes: at most so many at once
        self.records = RecordCache()  # write-once records, kept once read
        self.store = store  # shared by every chain: a record carries its chain id
        self._clock = clock
        # The committee is the same for every chain (a key per chain on each node).
        self.committee = next(
            (chain.kms.fanout.nodes for chain in chains if chain.kms.fanout is not None), {}
        )
        self.max_record_bytes = max_record_bytes
        self._created = Counter(
            "tkms_gateway_secrets_created_total", "Secrets stored", registry=registry
        )
        served = Counter(
            "tkms_gateway_decryptions_total", "Material served", ["version"], registry=registry
        )
        self._served = {v: served.labels(v) for v in ("v0", "v1")}  # labels() is ~10 µs
        self._grants = Counter("tkms_gateway_grants_total", "Grants recorded", registry=registry)
        # A client reuses its token for every read: its ECDSA check is kept (access_cache.py).
        self._tokens = VerifiedTokens()

    def __repr__(self) -> str:
        return f"GatewayService(chains={list(self.chains.by_id.values())})"

    async def aclose(self) -> None:
        for chain in self.chains:
            await chain.aclose()

    def _now(self) -> int:
        return int(self._clock())

    @staticmethod
    async def _db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except RecordExists:
            raise  # a refusal of the write-once rule, not an outage: the caller answers 409
        except StorageError as exc:
            # The type only: a driver's message may quote a row value or a host.
            log.warning("storage error: %s", type(exc).__name__)
            raise ApiError(503, "storage_unavailable", "the database is unavailable") from None

    # --- POST /v0/secrets ---------------------------------------------------------

    async def create_secret(
        self, chain_id_raw: str | None, salt_raw: str | None, body: bytes
    ) -> Answer:
        chain = self.chains.for_query(chain_id_raw)
        chain_id = chain.chain_id
        salt = parse_salt(salt_raw)
        data = parse_json_object(body)
        try:
            kind = SolidityType.parse(data.get("solidityType"))
        except HandleError as exc:
            # nox v0.6 answers an unknown type 422 invalid_type; the embedded mode keeps 400.
            if chain.chain_acl is not None:
                raise ApiError(422, "invalid_type", str(exc)) from None
            raise ApiError(400, "invalid_solidity_type", str(exc)) from None
        try:
            plaintext = parse_encoded_value(data.get("value"), kind)
        except ValueEncodingError as exc:
            raise ApiError(400, "invalid_value", str(exc)) from None
        if chain.chain_acl is not None and not plaintext:
            raise ApiError(400, "invalid_value", "value is empty (nox refuses it for every type)")
        if len(plaintext) > self.max_record_bytes:
            raise ApiError(
                413,
                "payload_too_large",
                f"value exceeds {self.max_record_bytes} bytes",
            )
        owner = body_address(data, "owner")
        app = body_address(data, "applicationContract")
        encrypted = ecies.encrypt(await chain.public_key(), plaintext)
        handle = bound_input_handle(chain_id, kind, encrypted)  # docs/binding.md
        return await self.store_new(chain, salt, handle, kind, owner, app, encrypted)

    async def store_new(
        self,
        chain: ServedChain,
        salt: bytes,
        handle: bytes,
        kind: SolidityType,
        owner: bytes,
        app: bytes,
        encrypted: ecies.EciesRecord,
    ) -> Answer:
        """Store a new record (write-once: 409) and answer its signed ``HandleWithProof``.

        Shared by ``POST /v0/secrets`` and ``POST /v1/secrets`` (gateway/client_encrypted.py).
        """
        chain_id = chain.chain_id
        created_at = self._now()
        record = StoredRecord(
            handle,
            chain_id,
            kind,
            owner,
            app,
            created_at,
            encrypted.ciphertext,
            encrypted.ephemeral_pubkey,
            encrypted.iv,
        )
        try:
            await self._db(self.store.put, record)
        except RecordExists:
            raise ApiError(409, "handle_exists", "this handle is already stored") from None
        proof_sig = eip712.sign(
            chain.wallet,
            eip712.nox_compute_domain(chain_id, chain.contract),
            eip712.HANDLE_PROOF,
            {"handle": handle, "owner": owner, "app": app, "createdAt": created_at},
        )
        proof = owner + app + created_at.to_bytes(32, "big") + proof_sig
        self._created.inc()
        payload = {"handle": to_hex(handle), "proof": to_hex(proof)}
        return Answer(signed(chain.wallet, chain_id, salt, eip712.HANDLE_WITH_PROOF, payload))

    # --- GET /v0|v1/secrets/{handle} ------------------------------------------------

    def _decode(self, chain: ServedChain, authorization: str | None) -> SignedDataAccess:
        """The authorization decoded and its signer recovered, in ``chain``'s domain."""
        return self._tokens.decode(
            authorization,
            chain_id=chain.chain_id,
            verifying_contract=chain.contract,
            now=self._now(),
        )

    async def _who(self, chain: ServedChain, authorization: str | None) -> SignedDataAccess:
        """The decoded authorization, in ``chain``'s domain: kept once checked
        (protocol/access_cache.py), else decoded on a worker thread (an ECDSA recovery).

        Without a chain the ECDSA signer must be ``userAddress`` (else 401); on a chain
        another signer is left to ERC-1271 (:meth:`_chain_read`).
        """
        signed = self._tokens.cached(
            authorization,
            chain_id=chain.chain_id,
            verifying_contract=chain.contract,
            now=self._now(),
        )
        if signed is None:
            signed = await asyncio.to_thread(self._decode, chain, authorization)
        if not signed.ecdsa_valid and chain.chain_acl is None:
            raise not_signed_by_user(signed)
        try:
            key = signed.access.encryption_pubkey
            rsa.load_public_key(parse_hex(key, name="encryptionPubKey"))
        except (EncodingError, rsa.RsaKeyError) as exc:
            raise ApiError(400, "invalid_encryption_pubkey", f"encryptionPubKey: {exc}") from None
        return signed

    def _embedded_read(self, chain: ServedChain, handle: bytes, user: bytes) -> StoredRecord:
        """Today's order without a chain: the record (404), then the embedded ACL (403)."""
        assert chain.access is not None
        record = self._stored(handle)
        if record is None:
            raise ApiError(404, "not_found", "no secret is stored under this handle")
        if not chain.access.is_viewer(handle, user):
            raise _not_a_viewer(user)
        return record

    async def _chain_read(
        self, chain_acl: ChainAcl, handle: bytes, signed: SignedDataAccess
    ) -> StoredRecord:
        """nox v0.6's order: ERC-1271 (401), isViewer (403), then the record (404)."""
        access = signed.access
        if not signed.ecdsa_valid and not await chain_acl.contract_signed(
            access.user, signed.digest, signed.signature
        ):
            raise ApiError(
                401,
                "invalid_signature",
                "authorization is not signed by userAddress (by ECDSA or ERC-1271)",
            )
        if not await chain_acl.is_viewer(handle, access.user):
            raise _not_a_viewer(access.user)
        record = await self.record(handle)
        if record is None:
            raise ApiError(404, "not_found", "no secret is stored under this handle")
        return record

    def _stored(self, handle: bytes) -> StoredRecord | None:
        """The store's record, from memory once read (a database worker's call)."""
        record = self.records.get(handle)
        if record is None:
            record = self.store.get(handle)
            if record is not None:
                self.records.put(record)
        return record

    async def record(self, handle: bytes) -> StoredRecord | None:
        """:meth:`_stored` without a thread when it is in memory (gateway/record_cache.py)."""
        record = self.records.get(handle)
        return record if record is not None else await self._db(self._stored, handle)

    async def _read(
        self,
        handle_raw: str,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
    ) -> tuple[ServedChain, bytes, StoredRecord, DataAccess]:
        """What both reads start with: chain, salt, the handle's chain, who asks and may they."""
        query = self.chains.query_chain(chain_id_raw)
        salt = parse_salt(salt_raw)
        chain, handle = self.chains.for_handle(handle_raw, query)
        signed = await self._who(chain, authorization)
        if chain.chain_acl is not None:
            record = await self._chain_read(chain.chain_acl, handle, signed)
        else:
            record = await self._db(self._embedded_read, chain, handle, signed.access.user)
        return chain, salt, record, signed.access

    async def secret_v0(
        self,
        handle_raw: str,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
    ) -> Answer:
        """The single node's material, once admitted (gateway/admission.py)."""
        async with self.admission.slot():
            return await self._secret_v0(handle_raw, chain_id_raw, salt_raw, authorization)

    async def secret_v1(
        self,
        handle_raw: str,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        exclude_raw: Sequence[str] = (),
    ) -> Answer:
        """Threshold material once admitted: its fan-out's deadline starts then."""
        async with self.admission.slot():
            return await self._secret_v1(
                handle_raw, chain_id_raw, salt_raw, authorization, exclude_raw
            )

    async def _secret_v0(
        self,
        handle_raw: str,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
    ) -> Answer:
        chain, salt, record, access = await self._read(
            handle_raw, chain_id_raw, salt_raw, authorization
        )
        single = chain.kms.single
        if single is None:
            raise not_configured(
                "this gateway fronts a threshold KMS: use GET /v1/secrets/{handle}"
            )
        start = time.perf_counter()
        sealed = await single.delegate(
            to_hex(record.ephemeral_pubkey), access.encryption_pubkey, salt
        )
        self._served["v0"].inc()
        payload = {
            "handle": to_hex(record.handle),
            "ciphertext": to_hex(record.ciphertext),
            "encryptedSharedSecret": sealed,
            "iv": to_hex(record.iv),
            # Not signed (not in nox's statement): the handle's binding vouches for it.
            "ephemeralPubKey": to_hex(record.ephemeral_pubkey),
        }
        binding_field(payload, record)
        body = signed(chain.wallet, chain.chain_id, salt, eip712.HANDLE_CRYPTO_MATERIAL, payload)
        return Answer(body, {"kms": time.perf_counter() - start})

    async def _secret_v1(
        self,
        handle_raw: str,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        exclude_raw: Sequence[str] = (),
    ) -> Answer:
        """Threshold material; ``exclude_raw``: the ``exclude`` query values (docs/gateway.md)."""
        # The syntax of exclude is checked first, as chain and salt are.
        exclude = parse_exclude(exclude_raw, self.committee)
        chain, salt, record, access = await self._read(
            handle_raw, chain_id_raw, salt_raw, authorization
        )
        assert authorization is not None  # _read refused a request without one
        fanout = chain.kms.fanout
        if fanout is None:
            raise not_configured("this gateway fronts a single node: use GET /v0/secrets")
        keyset = (await chain.keyset()).keyset
        check_enough_left(exclude, fanout.nodes, keyset.threshold)
        try:
            result = await fanout.gather(
                to_hex(record.ephemeral_pubkey),
                access.encryption_pubkey,
                salt,
                keyset=keyset,
                exclude=exclude,
                # What each node in user mode checks itself (docs/node-authorization.md).
                context=user_fields(
                    record.handle,
                    record.iv,
                    record.ciphertext,
                    authorization,
                    binding_signature=record.binding_signature,
                ),
            )
        except NotEnoughAnswers as exc:
            failures = {i: str(why) for i, why in exc.result.failures.items()}
            log.warning(
                "chain %d: not enough partials: %s", chain.chain_id, sorted(failures.items())
            )
            stale = any(f.other_epoch is not None for f in exc.result.failures.values())
            if chain.kms.keysets is not None and stale:
                chain.kms.keysets.invalidate()  # a reshare: the next request reads the new keyset
            raise NotEnoughNodes(exc.threshold, len(exc.result.partials), failures) from None
        self._served["v1"].inc()
        payload = {
            "handle": to_hex(record.handle),
            "ciphertext": to_hex(record.ciphertext),
            "iv": to_hex(record.iv),
            "ephemeralPubKey": to_hex(record.ephemeral_pubkey),
            "epoch": keyset.epoch,
            "threshold": keyset.threshold,
            "partials": result.partials,
        }
        binding_field(payload, record)
        if exclude:  # signed in, so that a client sees a stripped or altered exclude
            payload["exclude"] = sorted(exclude)
            statement = eip712.HANDLE_THRESHOLD_MATERIAL_EXCLUDING
            body = signed(chain.wallet, chain.chain_id, salt, statement, payload)
        else:
            body = signed_material(chain.wallet, chain.chain_id, salt, payload)
        return Answer(body, {"kms": result.seconds})

    async def keyset_body(self, chain_id_raw: str | None) -> Answer:
        chain = self.chains.for_query(chain_id_raw)
        return Answer(dict((await chain.keyset()).body))

    # --- ACL -------------------------------------------------------------------------

    def _acl_payload(self, handle: bytes, listing: AclListing) -> dict[str, Any]:
        entries = [{"role": "admin", "account": to_hex(a)} for a in listing.admins]
        entries += [{"role": "viewer", "account": to_hex(a)} for a in listing.viewers]
        if listing.public:
            entries.append({"role": "public", "account": to_hex(ZERO_ADDRESS)})
        return {"handle": to_hex(handle), "owner": to_hex(listing.owner), "entries": entries}

    @staticmethod
    def _embedded(chain: ServedChain) -> EmbeddedAcl:
        if chain.acl is None:
            raise not_configured("the ACL is on-chain: grant access there")
        return chain.acl

    def _grant(self, chain: ServedChain, data: dict[str, Any]) -> tuple[bytes, AclListing]:
        acl = self._embedded(chain)
        request = check_grant(
            data, chain_id=chain.chain_id, verifying_contract=chain.contract, now=self._now()
        )
        try:
            if acl.grant(request.handle, request.account, request.role, request.granted_by):
                self._grants.inc()
        except UnknownHandle:
            raise ApiError(404, "not_found", "no secret is stored under this handle") from None
        except NotAuthorized as exc:
            raise ApiError(403, "access_denied", str(exc)) from None
        except InvalidGrant as exc:
            raise ApiError(400, "invalid_grant", str(exc)) from None
        listing = acl.list(request.handle)
        assert listing is not None  # the record existed a moment ago and is never deleted
        return request.handle, listing

    async def grant(self, chain_id_raw: str | None, salt_raw: str | None, body: bytes) -> Answer:
        """The chain is the handle's in the payload (when it parses; check_grant says if not)."""
        query = self.chains.query_chain(chain_id_raw)
        salt = parse_salt(salt_raw)
        data = parse_json_object(body)
        chain = query or self.chains.served(self.chains.default)
        payload = data.get("payload")
        if isinstance(payload, dict) and _looks_like_handle(payload.get("handle")):
            chain, _ = self.chains.for_handle(payload["handle"], query)
        handle, listing = await self._db(self._grant, chain, data)
        answer = self._acl_payload(handle, listing)
        return Answer(signed(chain.wallet, chain.chain_id, salt, eip712.HANDLE_ACL, answer))

    async def acl_listing(
        self,
        handle_raw: str,
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
    ) -> Answer:
        """Who may read a handle, for its owner or an admin only (an ``AclRead`` statement).

        Order: chain, salt, handle and its chain (400), the signed statement (401),
        record (404), owner or admin (403): a viewer or a stranger learns nothing of the
        others.
        """
        query = self.chains.query_chain(chain_id_raw)
        salt = parse_salt(salt_raw)
        chain, handle = self.chains.for_handle(handle_raw, query)
        acl = self._embedded(chain)
        request = check_acl_read(
            authorization,
            handle,
            chain_id=chain.chain_id,
            verifying_contract=chain.contract,
            now=self._now(),
        )
        listing = await self._db(acl.list, handle)
        if listing is None:
            raise ApiError(404, "not_found", "no secret is stored under this handle")
        if request.reader != listing.owner and request.reader not in listing.admins:
            raise ApiError(
                403,
                "access_denied",
                f"0x{request.reader.hex()} is neither the owner nor an admin of this handle",
            )
        payload = self._acl_payload(handle, listing)
        return Answer(signed(chain.wallet, chain.chain_id, salt, eip712.HANDLE_ACL, payload))


def binding_field(payload: dict[str, Any], record: StoredRecord) -> None:
    """A runner result's ``bindingSignature``, outside the signed statement (docs/binding.md):
    it needs no gateway signature, the SDK checks it against ``RUNNER_ADDRESS``."""
    if record.binding_signature is not None:
        payload["bindingSignature"] = to_hex(record.binding_signature)


def _looks_like_handle(value: object) -> bool:
    """A handle the router can read the chain of (else check_grant names what is wrong)."""
    try:
        parse_handle(value)
    except HandleError:
        return False
    return True
