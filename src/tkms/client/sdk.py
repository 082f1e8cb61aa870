"""``tkms.client.Client`` and ``AsyncClient``: encrypt, grant, decrypt through a gateway.

    with Client.from_devnet() as alice:
        secret = alice.encrypt(1000, "uint256")
        alice.register_on_chain(secret)  # the devnet's gateway reads the chain's ACL
        alice.grant_on_chain(secret, bob_address)  # (grant(): a gateway's embedded ACL)
    with Client.from_devnet(key_file="devnet-state/keys/bob.key") as bob:
        assert bob.decrypt(secret) == 1000

Both classes drive the same flows (:mod:`tkms.client.gateway_core`), so they
check the same signatures and raise the same typed errors (every one a
:class:`~tkms.client.errors.TkmsError`). A compute runner is a user like any
other: it makes a client with its own wallet.

Given a chain (``rpc_url``, ``nox_compute`` and, to register, ``application``;
``from_devnet`` reads them from ``devnet.json``), a client also does what a dApp
does on chain (:mod:`tkms.client.onchain`): ``register_on_chain`` registers a new
handle through the application so that its owner is an admin, ``grant_on_chain``
sends ``addViewer`` (or ``allow`` for an admin), ``make_public_on_chain`` sends
``allowPublicDecryption``; each waits for the receipt and returns the transaction
hash. ``encrypt``/``grant``/``make_public`` talk to the gateway only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any, Self, TypeVar

from tkms.client.errors import InvalidInput, TransportError
from tkms.client.gateway_core import Flow, GatewayCore, HttpRequest, HttpResponse
from tkms.client.gateway_open import Acl, Encrypted
from tkms.client.onchain import OnChain
from tkms.client.trust import GatewayTrust
from tkms.crypto.encoding import EncodingError, parse_address, parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet.manifest import DEFAULT_PATH, DevnetManifest, ManifestError
from tkms.keyfiles import read_hex
from tkms.protocol.handle import SolidityType
from tkms.protocol.keyset import VerifiedKeyset
from tkms.protocol.solidity import PlainInput, PlainValue
from tkms.transport.exchange import Answer, TransportFailure
from tkms.transport.http11 import Http11
from tkms.transport.http11_sync import Http11Sync

T = TypeVar("T")
DEFAULT_DEVNET = DEFAULT_PATH
ROLES = ("viewer", "admin")


def _bytes(value: str | bytes, name: str, length: int) -> bytes:
    if isinstance(value, bytes):
        if len(value) != length:
            raise InvalidInput(f"{name} must be {length} bytes")
        return value
    try:
        return parse_hex(value, name=name, length=length)
    except EncodingError as exc:
        raise InvalidInput(str(exc)) from None


def devnet_settings(
    path: str | Path = DEFAULT_DEVNET,
    key_file: str | Path | None = None,
    *,
    keep_material: bool = False,
) -> dict[str, Any]:
    """Constructor arguments from a devnet's ``devnet.json`` (and a user key file).

    ``keep_material``: keep the decryption material beside the key file
    (``<key>.material``, 0600), so that each CLI call does not make an RSA key.
    """
    try:
        manifest = DevnetManifest.load(path)
    except ManifestError as exc:
        raise InvalidInput(str(exc)) from None
    if manifest.gateway_url is None or manifest.verifying_contract is None:
        raise InvalidInput(f"{path}: the devnet has no gateway")
    key_path = Path(key_file) if key_file is not None else manifest.user("user").key_file
    try:
        wallet = Wallet(read_hex(key_path))
    except FileNotFoundError:
        raise InvalidInput(f"key file {key_path}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"key file {key_path}: cannot read it: {exc.strerror}") from None
    except ValueError:
        raise InvalidInput(f"key file {key_path}: not a hex wallet key") from None
    return {
        "gateway_url": manifest.gateway_url,
        "wallet": wallet,
        "chain_id": manifest.chain_id,
        "gateway_signer": str(manifest.gateway_signer),
        "verifying_contract": manifest.verifying_contract,
        "kms_public_key": manifest.public_key,
        "application": manifest.app,
        "rpc_url": manifest.rpc_url,
        "nox_compute": manifest.nox_compute,
        "material_file": key_path.with_name(key_path.name + ".material") if keep_material else None,
        # The devnet's runner binds the results it publishes (docs/binding.md).
        "runner_address": None if manifest.runner is None else manifest.runner.address,
    }


class _Base:
    @classmethod
    def from_devnet(
        cls,
        path: str | Path = DEFAULT_DEVNET,
        *,
        key_file: str | Path | None = None,
        keep_material: bool = False,
        **kw: Any,
    ) -> Self:
        """A client of the devnet described by ``devnet.json``, as its dev user by default."""
        return cls(**{**devnet_settings(path, key_file, keep_material=keep_material), **kw})

    def __init__(
        self,
        gateway_url: str,
        wallet: Wallet,
        *,
        chain_id: int,
        gateway_signer: str | bytes,
        verifying_contract: str | bytes,
        kms_public_key: str | bytes | None = None,
        application: str | bytes | None = None,
        rsa_bits: int = 2048,
        authorization_ttl: int = 3600,
        rpc_url: str | None = None,
        nox_compute: str | bytes | None = None,
        require_binding: bool = True,
        runner_address: str | bytes | None = None,
        material_file: str | Path | None = None,
    ) -> None:
        """``material_file``: where to keep the RSA key and its signed authorization
        (0600), reused across processes until the authorization runs out
        (client/material.py); without it they live as long as the client."""
        trust = GatewayTrust(
            chain_id,
            _bytes(gateway_signer, "gateway_signer", 20),
            _bytes(verifying_contract, "verifying_contract", 20),
            None if kms_public_key is None else _bytes(kms_public_key, "kms_public_key", 33),
            require_binding=require_binding,
            runner=None if runner_address is None else _bytes(runner_address, "runner_address", 20),
        )
        app = bytes(20) if application is None else _bytes(application, "application", 20)
        self.url = gateway_url.rstrip("/")
        self.core = GatewayCore(
            wallet,
            trust,
            application=app,
            rsa_bits=rsa_bits,
            authorization_ttl=authorization_ttl,
            material_file=None if material_file is None else Path(material_file),
        )
        self.rpc_url = rpc_url
        self.nox_compute = None if nox_compute is None else _bytes(nox_compute, "nox_compute", 20)
        self._chain: OnChain | None = None

    @property
    def on_chain(self) -> bool:
        """True when this client has a chain to send transactions to."""
        return self.rpc_url is not None and self.nox_compute is not None

    def _chain_client(self) -> OnChain:
        if self.rpc_url is None or self.nox_compute is None:
            raise InvalidInput("no chain: give rpc_url and nox_compute")
        if self._chain is None:
            app = self.core.application
            self._chain = OnChain(
                self.rpc_url,
                self.core.wallet,
                chain_id=self.core.trust.chain_id,
                nox_compute=self.nox_compute,
                application=None if app == bytes(20) else app,
            )
        return self._chain

    def _encryption_key(self) -> bytes | None:
        """The ``Y`` a new value is encrypted to by the client itself (POST /v1/secrets):
        ``kmsPublicKey()`` read from the chain, else the trusted key; None: neither, and
        the gateway encrypts (POST /v0/secrets)."""
        if self.on_chain:
            return self._chain_client().kms_public_key()
        return self.core.trust.kms_public_key

    def _register(self, secret: Encrypted) -> str:
        proof = _bytes(secret.proof, "proof", 137)
        return self._chain_client().register(
            _bytes(secret.handle, "handle", 32), proof, secret.solidity_type
        )

    def _grant_tx(self, handle: str | Encrypted, account: str | bytes, role: str) -> str:
        chain, who = self._chain_client(), self._grantee(account, role)
        raw = _bytes(str(handle), "handle", 32)
        return chain.add_viewer(raw, who) if role == "viewer" else chain.allow(raw, who)

    def _public_tx(self, handle: str | Encrypted) -> str:
        return self._chain_client().allow_public_decryption(_bytes(str(handle), "handle", 32))

    def _is_viewer(self, handle: str | Encrypted, account: str | bytes) -> bool:
        who = self._grantee(account, "viewer")
        return self._chain_client().is_viewer(_bytes(str(handle), "handle", 32), who)

    def _close_chain(self) -> None:
        if self._chain is not None:
            self._chain.close()
            self._chain = None

    @property
    def address(self) -> str:
        return to_hex(self.core.wallet.address)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, address={self.address})"

    @staticmethod
    def _grantee(account: str | bytes, role: str) -> bytes:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {ROLES} (make_public for everyone)")
        if isinstance(account, str):
            try:
                return parse_address(account, name="account")
            except EncodingError as exc:
                raise InvalidInput(str(exc)) from None
        return _bytes(account, "account", 20)

    def _failed(self, exc: TransportFailure) -> TransportError:
        return TransportError(f"cannot reach the gateway at {self.url}: {exc}")


def _json_body(request: HttpRequest) -> bytes | None:
    """The body httpx's ``json=`` sent (compact, UTF-8), which the gateway was tested with."""
    if request.json is None:
        return None
    return json.dumps(
        request.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode()


def _response(answer: Answer) -> HttpResponse:
    try:
        data = json.loads(answer.body)
    except ValueError:
        data = None
    return HttpResponse(answer.status, data, answer.headers)


class Client(_Base):
    """The synchronous SDK (safe to share between threads: each request takes its own
    kept-alive connection)."""

    def __init__(
        self,
        gateway_url: str,
        wallet: Wallet,
        *,
        timeout: float = 10.0,
        prefetch_keyset: bool = True,
        **kw: Any,
    ):
        """``prefetch_keyset``: fetch and check the committee's keyset on a background
        thread from now, as the RSA key is made, so that a first call does not wait for
        it (issue 13); a failure there is the first call's to report, which asks again.
        Its connection is kept for the first call."""
        super().__init__(gateway_url, wallet, **kw)
        # Our blocking HTTP/1.1 transport, not httpx.Client: a fraction of its CPU a request
        # (bench/sdk_transport.py)
        self._http = Http11Sync(self.url, timeout=timeout)
        self.core.busy_budget = timeout
        self._closed = False
        self._prefetching: threading.Thread | None = None
        if prefetch_keyset:
            self._prefetching = threading.Thread(
                target=self._prefetch, name="tkms-keyset", daemon=True
            )
            self._prefetching.start()

    def _prefetch(self) -> None:
        try:
            with contextlib.suppress(Exception):  # the first call fetches it again, and says why
                if not self._closed:
                    self._run(self.core.keyset_flow())
        finally:
            if self._closed:  # close() came first: the connection brought back is not kept
                self._http.close()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once the work begun at the client's creation is done (its RSA key and
        signed authorization, the keyset), within ``timeout`` seconds; whether it
        succeeded is the first call's to say (it does again what failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.core.wait_ready(timeout):
            return False
        if self._prefetching is not None:
            self._prefetching.join(
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            return not self._prefetching.is_alive()
        return True

    def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                if request.delay:  # a busy gateway's Retry-After (gateway_core.retry_after)
                    time.sleep(request.delay)
                request = flow.send(self._send(request))
        except StopIteration as done:
            result: T = done.value
            return result

    def _send(self, request: HttpRequest) -> HttpResponse:
        try:  # a GET dropped as it went out is sent again by the transport itself
            answer = self._http.request(
                request.method, request.path, request.params, request.headers, _json_body(request)
            )
        except TransportFailure as exc:
            raise self._failed(exc) from None
        return _response(answer)

    def encrypt(
        self,
        value: PlainInput,
        solidity_type: SolidityType | str,
        *,
        application: str | bytes | None = None,
    ) -> Encrypted:
        """Store ``value`` as a new handle owned by this client's wallet."""
        app = None if application is None else _bytes(application, "application", 20)
        key = self._encryption_key()
        return self._run(self.core.encrypt_flow(value, solidity_type, app, key))

    def decrypt(self, handle: str | Encrypted) -> PlainValue:
        """The typed value of a handle this wallet may read."""
        return self._run(self.core.decrypt_flow(handle))

    def grant(self, handle: str | Encrypted, account: str | bytes, role: str = "viewer") -> Acl:
        """Let ``account`` read the handle (signed by this wallet: its owner or an admin)."""
        return self._run(self.core.grant_flow(handle, self._grantee(account, role), role))

    def make_public(self, handle: str | Encrypted) -> Acl:
        return self._run(self.core.grant_flow(handle, bytes(20), "public"))

    def acl(self, handle: str | Encrypted) -> Acl:
        return self._run(self.core.acl_flow(handle))

    def keyset(self) -> VerifiedKeyset | None:
        """The committee's checked keyset (None when the gateway fronts a single node)."""
        return self._run(self.core.keyset_flow())

    def register_on_chain(self, secret: Encrypted) -> str:
        """Register a handle ``encrypt`` made through the application (its owner becomes an
        admin on chain); waits for the receipt, returns the transaction hash."""
        return self._register(secret)

    def grant_on_chain(
        self, handle: str | Encrypted, account: str | bytes, role: str = "viewer"
    ) -> str:
        """``addViewer`` (or ``allow`` for an admin) from this wallet; waits for the receipt."""
        return self._grant_tx(handle, account, role)

    def make_public_on_chain(self, handle: str | Encrypted) -> str:
        """``allowPublicDecryption`` from this wallet; waits for the receipt."""
        return self._public_tx(handle)

    def is_viewer_on_chain(self, handle: str | Encrypted, account: str | bytes) -> bool:
        """NoxCompute's ``isViewer(handle, account)``."""
        return self._is_viewer(handle, account)

    def close(self) -> None:
        """Close the connections and stop the background work begun at creation."""
        self._closed = True
        self.core.close()
        self._http.close()
        self._close_chain()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio SDK: the same operations as :class:`Client`, awaited."""

    def __init__(
        self,
        gateway_url: str,
        wallet: Wallet,
        *,
        timeout: float = 10.0,
        prefetch_keyset: bool = True,
        **kw: Any,
    ):
        """``prefetch_keyset``: as :class:`Client`'s, as a task of the running event loop
        (none when the client is made outside one). A call that needs the RSA key while
        the background still makes it waits for it without blocking the event loop."""
        super().__init__(gateway_url, wallet, **kw)
        # Our HTTP/1.1 transport, not httpx: a fifth to an eighth of its CPU per request
        # (transport/http11.py).
        self._http = Http11(self.url, timeout=timeout)
        self.core.busy_budget = timeout
        self._prefetching: asyncio.Task[None] | None = None
        if prefetch_keyset:
            with contextlib.suppress(RuntimeError):  # no running loop: the first call fetches
                self._prefetching = asyncio.get_running_loop().create_task(self._prefetch())

    async def _prefetch(self) -> None:
        with contextlib.suppress(Exception):  # the first call fetches it again, and says why
            await self._run(self.core.keyset_flow())

    async def _material_made(self) -> None:
        """Until the background's first material is made, without blocking the event loop
        (the flow's own wait for it would: a first call while the key is being made)."""
        if self.core.wait_ready(0):
            return
        loop = asyncio.get_running_loop()
        made: asyncio.Future[None] = loop.create_future()

        def done() -> None:  # on the event loop
            if not made.done():
                made.set_result(None)

        self.core.when_ready(lambda: loop.call_soon_threadsafe(done))
        await made

    async def wait_ready(self) -> None:
        """Until the work begun at the client's creation is done (its RSA key and signed
        authorization, the keyset); whether it succeeded is the first call's to say."""
        await self._material_made()
        if self._prefetching is not None:
            await asyncio.wait([self._prefetching])  # its outcome is not raised here

    async def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                if request.delay:  # a busy gateway's Retry-After (gateway_core.retry_after)
                    await asyncio.sleep(request.delay)
                request = flow.send(await self._send(request))
        except StopIteration as done:
            result: T = done.value
            return result

    async def _send(self, request: HttpRequest) -> HttpResponse:
        try:  # a GET dropped as it went out is sent again by the transport itself
            answer = await self._http.request(
                request.method, request.path, request.params, request.headers, _json_body(request)
            )
        except TransportFailure as exc:
            raise self._failed(exc) from None
        return _response(answer)

    async def encrypt(
        self,
        value: PlainInput,
        solidity_type: SolidityType | str,
        *,
        application: str | bytes | None = None,
    ) -> Encrypted:
        app = None if application is None else _bytes(application, "application", 20)
        # The chain read blocks: in a worker thread, as the transactions are.
        key = (
            await asyncio.to_thread(self._encryption_key)
            if self.on_chain
            else self.core.trust.kms_public_key
        )
        return await self._run(self.core.encrypt_flow(value, solidity_type, app, key))

    async def decrypt(self, handle: str | Encrypted) -> PlainValue:
        await self._material_made()
        return await self._run(self.core.decrypt_flow(handle))

    async def grant(
        self, handle: str | Encrypted, account: str | bytes, role: str = "viewer"
    ) -> Acl:
        return await self._run(self.core.grant_flow(handle, self._grantee(account, role), role))

    async def make_public(self, handle: str | Encrypted) -> Acl:
        return await self._run(self.core.grant_flow(handle, bytes(20), "public"))

    async def acl(self, handle: str | Encrypted) -> Acl:
        return await self._run(self.core.acl_flow(handle))

    async def keyset(self) -> VerifiedKeyset | None:
        return await self._run(self.core.keyset_flow())

    # The chain client is blocking: its transactions run in a worker thread.

    async def register_on_chain(self, secret: Encrypted) -> str:
        return await asyncio.to_thread(self._register, secret)

    async def grant_on_chain(
        self, handle: str | Encrypted, account: str | bytes, role: str = "viewer"
    ) -> str:
        return await asyncio.to_thread(self._grant_tx, handle, account, role)

    async def make_public_on_chain(self, handle: str | Encrypted) -> str:
        return await asyncio.to_thread(self._public_tx, handle)

    async def is_viewer_on_chain(self, handle: str | Encrypted, account: str | bytes) -> bool:
        return await asyncio.to_thread(self._is_viewer, handle, account)

    async def aclose(self) -> None:
        """Close the connections and stop the background work begun at creation."""
        self.core.close()
        if self._prefetching is not None and not self._prefetching.done():
            self._prefetching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prefetching
        await self._http.aclose()
        self._close_chain()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
