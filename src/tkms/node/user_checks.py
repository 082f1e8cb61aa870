"""``user`` mode: each node checks the user, not only the gateway (docs/node-authorization.md).

A compromised gateway holds the wallet every node trusts; in ``gateway`` mode
that alone reads every record. In ``user`` mode a ``/v1/delegate`` request also
carries what the gateway was given and the node checks it all by itself, after
the gateway's signature (kept as a second factor) and before any share is used:

1. ``purpose`` (absent: ``user``): ``user``, ``public`` or ``runner`` (the latter only
   with a ``RUNNER_ADDRESS`` configured for the chain, else 400 ``unsupported_purpose``).
2. ``handle`` of the request's chain (400 ``invalid_handle``), ``iv`` and
   ``ciphertextDigest`` (400 ``invalid_body``), and the binding: the handle's 25
   last bytes are those of ``(K, iv, digest)``, or ``bindingSignature`` is the
   runner's ResultBinding of them (a result's handle), or the admin registered this
   record's binding hash for the handle (an imported record, node/bindings.py) (403
   ``binding_mismatch``), so the ``K`` multiplied is the record's of this handle and no other.
3. ``public``: ``isPubliclyDecryptable(handle)`` (403 ``not_publicly_decryptable``);
   ``runner``: the runner's statement (node/runner_checks.py).
4. ``user``: the ``DataAccessAuthorization`` as the user sent it (``authorization``,
   the ``EIP712 <token>`` header value) decodes and its window holds (401, the
   gateway's codes: one implementation, :mod:`tkms.protocol.access`; its ECDSA check
   is kept for the exact token, its window checked every time:
   :mod:`tkms.protocol.access_cache`); the target key
   is exactly its ``encryptionPubKey`` (403 ``target_not_user_key``); ECDSA by
   ``userAddress`` or ERC-1271 on chain (401 ``invalid_signature``); and
   ``isViewer(handle, user)`` (403 ``access_denied``).

Every chain read goes through this node's own RPC endpoint; a read with no
trustworthy answer is 503 ``chain_unavailable``, never an allow. A *true*
``isViewer`` or ``isPubliclyDecryptable`` is kept for ``TKMS_NODE_ACL_CACHE_SECONDS``
(60 s; 0: off) by :class:`tkms.chain.acl_cache.AclCache`: NoxCompute has no revoke,
so a true answer stays true, and the read is most of a partial's CPU beyond its
cryptography; the TTL bounds how long a grant reorged away is still honoured. A
false answer is never kept, so a grant added on chain counts at the next request.
The chain head of a runner's statement is read at most once a second
(:class:`tkms.chain.head.RecentHead`); ERC-1271 is asked every time (a contract
wallet's answer can change).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import lru_cache
from typing import Any, TypeVar

from tkms.chain.acl_cache import AclCache
from tkms.chain.contract import AsyncNoxCompute
from tkms.chain.erc1271 import is_contract_async, is_valid_signature_async
from tkms.chain.errors import ChainError
from tkms.chain.head import RecentHead
from tkms.chain.rpc import AsyncRpcClient, quantity
from tkms.crypto.ecies import IV_LENGTH
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.node.audit import AuditNote
from tkms.node.bindings import BindingRegistry, RegistryError
from tkms.node.config import NodeConfig
from tkms.node.delegate_route import Delegate
from tkms.node.delegation_v1 import CheckedRequest, PartialDelegator
from tkms.node.runner_checks import RunnerPolicy, check_runner_request
from tkms.protocol.access_cache import VerifiedTokens
from tkms.protocol.binding import DIGEST_LENGTH, PREFIX_LENGTH, BindingError, record_digest
from tkms.protocol.handle import HandleError, parse_handle
from tkms.protocol.result_binding import is_record_of, parse_binding_signature
from tkms.web.errors import ApiError

log = logging.getLogger("tkms.node.user")
PURPOSES = ("user", "public", "runner")
T = TypeVar("T")


class ChainReader:
    """One linked chain's NoxCompute, read by this node's own RPC endpoint.

    True ACL answers are kept by ``acl_cache`` (None: none is kept); ERC-1271 never is."""

    def __init__(
        self,
        chain_id: int,
        rpc_url: str,
        contract: bytes,
        *,
        timeout: float,
        connect: float,
        runner: RunnerPolicy | None = None,
        bindings: BindingRegistry | None = None,
        acl_cache: AclCache | None = None,
    ) -> None:
        self.chain_id = chain_id
        self.contract = contract
        self.runner = runner  # None: purpose runner is not served on this chain
        self.bindings = bindings  # the imported records' bindings (None: no state dir)
        self._rpc = AsyncRpcClient(rpc_url, timeout=timeout, connect_timeout=connect)
        self._nox = AsyncNoxCompute(self._rpc, contract)
        self._acl = AclCache(ttl=0) if acl_cache is None else acl_cache
        self.head = RecentHead(self._read_head)

    def __repr__(self) -> str:  # never the RPC URL: it may hold an API key
        return f"ChainReader(chain={self.chain_id}, contract=0x{self.contract.hex()})"

    async def aclose(self) -> None:
        await self._rpc.aclose()

    async def _read(self, call: str, read: Awaitable[T]) -> T:
        try:
            return await read
        except ChainError as exc:
            # The type only: the exception may quote the URL.
            log.warning("chain %d: %s failed (%s)", self.chain_id, call, type(exc).__name__)
            raise ApiError(
                503, "chain_unavailable", f"cannot read chain {self.chain_id}: {call} failed"
            ) from None

    async def _read_head(self) -> int:
        """The chain's latest block (the runner's statements are bounded by it): ``head()``
        serves it for a second (:mod:`tkms.chain.head`)."""

        async def ask() -> int:
            return quantity(await self._rpc.request("eth_blockNumber"), "block number")

        return await self._read("eth_blockNumber", ask())

    async def is_viewer(self, handle: bytes, user: bytes) -> bool:
        async def read() -> bool:
            return await self._read("isViewer", self._nox.is_viewer(handle, user))

        return await self._acl.is_viewer(self.chain_id, self.contract, handle, user, read)

    async def is_publicly_decryptable(self, handle: bytes) -> bool:
        async def read() -> bool:
            return await self._read(
                "isPubliclyDecryptable", self._nox.is_publicly_decryptable(handle)
            )

        return await self._acl.is_publicly_decryptable(self.chain_id, self.contract, handle, read)

    async def contract_signed(self, account: bytes, digest: bytes, signature: bytes) -> bool:
        """ERC-1271: ``account`` has code and its ``isValidSignature`` says yes."""

        async def ask() -> bool:
            if not await is_contract_async(self._rpc, account):
                return False
            return await is_valid_signature_async(self._rpc, account, digest, signature)

        return await self._read("isValidSignature", ask())


def _hex_field(data: Mapping[str, Any], name: str, length: int) -> bytes:
    try:
        return parse_hex(data.get(name), name=name, length=length)
    except EncodingError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None


@lru_cache(maxsize=1024)
def _handle_of(text: str, chain_id: int) -> tuple[bytes, str]:
    """A handle of the chain given as text: its bytes and its lowercase hex, kept (a
    pure function of its inputs; a refusal raises, and lru_cache keeps no exception).
    Every read of a record repeats its handle."""
    handle = parse_handle(text, chain_id=chain_id).to_bytes()
    return handle, to_hex(handle)


def check_binding(
    data: Mapping[str, Any], k: bytes, chain_id: int, reader: ChainReader, note: AuditNote
) -> bytes:
    """The handle, once ``K``, ``iv`` and the digest are its record's (checks 2)."""
    value = data.get("handle")
    try:
        if isinstance(value, str):
            handle, note.handle = _handle_of(value, chain_id)
        else:  # not a handle's text: parse_handle says why
            handle = parse_handle(value, chain_id=chain_id).to_bytes()
            note.handle = to_hex(handle)
    except HandleError as exc:
        raise ApiError(400, "invalid_handle", str(exc)) from None
    iv = _hex_field(data, "iv", IV_LENGTH)
    digest = _hex_field(data, "ciphertextDigest", DIGEST_LENGTH)
    try:
        signature = parse_binding_signature(data.get("bindingSignature"))
    except EncodingError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from None
    runner = None if reader.runner is None else reader.runner.runner
    if not is_record_of(handle, k, iv, digest, signature, runner) and not _registered(
        reader, handle, k, iv, digest
    ):
        raise ApiError(403, "binding_mismatch", "K, iv and digest are not this handle's record")
    return handle


def _registered(reader: ChainReader, handle: bytes, k: bytes, iv: bytes, digest: bytes) -> bool:
    """An imported record: the admin registered this record's binding hash for the handle.

    Read only once the derived binding and the runner's signature have failed, so a
    tkms-bound record costs no database read."""
    if reader.bindings is None:
        return False
    try:
        expected = reader.bindings.record(reader.chain_id, handle)
        return expected is not None and expected == record_digest(
            handle[:PREFIX_LENGTH], k, iv, digest
        )
    except BindingError:
        return False
    except RegistryError:
        log.warning("chain %d: the binding registry cannot be read", reader.chain_id)
        raise ApiError(503, "state_unavailable", "cannot read the binding registry") from None


class UserChecks:
    """The checks of ``user`` mode for the chains in ``readers`` (the others: gateway mode)."""

    def __init__(
        self, readers: Mapping[int, ChainReader], clock: Callable[[], float] = time.time
    ) -> None:
        self.readers = dict(readers)
        self._clock = clock
        # The gateway forwards the same token with every read: its ECDSA check is kept.
        self._tokens = VerifiedTokens()

    def __repr__(self) -> str:
        return f"UserChecks(chains={sorted(self.readers)})"

    async def aclose(self) -> None:
        for reader in self.readers.values():
            await reader.aclose()

    async def check(self, checked: CheckedRequest, note: AuditNote) -> None:
        """Pass, or raise the refusal's ApiError; ``note`` learns the handle and the user."""
        reader = self.readers.get(checked.chain_id)
        if reader is None:
            return  # this chain is served in gateway mode
        data = checked.body.fields  # the body's JSON object, as the gateway's checks parsed it
        purpose = data.get("purpose", "user")
        if purpose not in PURPOSES:
            raise ApiError(400, "invalid_purpose", f"purpose must be one of {', '.join(PURPOSES)}")
        policy = reader.runner
        if purpose == "runner" and policy is None:
            raise ApiError(
                400, "unsupported_purpose", "no runner is configured at this node (RUNNER_ADDRESS)"
            )
        handle = check_binding(data, checked.k, checked.chain_id, reader, note)
        if purpose == "runner" and policy is not None:
            await check_runner_request(
                data.get("authorization"),
                chain_id=checked.chain_id,
                target=checked.body.target_pubkey,
                handles=[to_hex(handle)],
                policy=policy,
                head=reader.head,
                note=note,
            )
            return
        if purpose == "public":
            if not await reader.is_publicly_decryptable(handle):
                raise ApiError(403, "not_publicly_decryptable", "this handle is not public")
            return
        header = data.get("authorization")
        if header is None:
            raise ApiError(
                401, "missing_user_authorization", "the user's DataAccessAuthorization is required"
            )
        if not isinstance(header, str):
            raise ApiError(401, "invalid_authorization", "authorization must be a string")
        signed = self._tokens.decode(
            header, chain_id=checked.chain_id, verifying_contract=reader.contract, now=self._now()
        )
        user = signed.access.user
        note.requester = user  # the audit log's requester from here on is the user
        if checked.body.target_pubkey != signed.access.encryption_pubkey:
            raise ApiError(
                403, "target_not_user_key", "targetPubKey is not the user's encryptionPubKey"
            )
        if not signed.ecdsa_valid and not await reader.contract_signed(
            user, signed.digest, signed.signature
        ):
            raise ApiError(
                401,
                "invalid_signature",
                "authorization is not signed by userAddress (by ECDSA or ERC-1271)",
            )
        if not await reader.is_viewer(handle, user):
            raise ApiError(403, "access_denied", f"0x{user.hex()} is not a viewer of this handle")

    def _now(self) -> int:
        return int(self._clock())


def build_user_checks(config: NodeConfig, bindings: BindingRegistry | None = None) -> UserChecks:
    """A reader for each chain in ``user`` mode (a linked chain unless mode is ``gateway``)."""
    readers = {}
    for chain_id, chain in config.chains.items():
        contract = chain.contract()
        if not config.user_mode(chain_id) or chain.rpc_url is None or contract is None:
            continue
        runner = config.runner(chain_id)
        readers[chain_id] = ChainReader(
            chain_id,
            chain.rpc_url,
            contract,
            timeout=chain.call_timeout,
            connect=chain.connect_timeout,
            runner=None if runner is None else RunnerPolicy(runner, config.runner_max_block_age),
            bindings=bindings,
            acl_cache=AclCache(ttl=config.acl_cache_seconds),
        )
    return UserChecks(readers)


def user_mode_delegate(partials: PartialDelegator, checks: UserChecks) -> Delegate:
    """``/v1/delegate`` with the user's checks between the gateway's and the answer."""

    async def delegate(
        chain_id_raw: str | None,
        salt_raw: str | None,
        authorization: str | None,
        body: bytes,
        note: AuditNote | None = None,
    ) -> dict[str, Any]:
        note = note or AuditNote("v1")
        checked = partials.check(chain_id_raw, salt_raw, authorization, body, note)
        await checks.check(checked, note)
        return partials.answer(checked)

    return delegate
