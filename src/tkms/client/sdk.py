"""``tkms.client.Client`` and ``AsyncClient``: encrypt, grant, decrypt through a gateway.

    with Client.from_devnet() as alice:
        secret = alice.encrypt(1000, "uint256")
        alice.grant(secret, bob_address)
    with Client.from_devnet(key_file="devnet-state/keys/bob.key") as bob:
        assert bob.decrypt(secret) == 1000

Both classes drive the same flows (:mod:`tkms.client.gateway_core`), so they
check the same signatures and raise the same typed errors (every one a
:class:`~tkms.client.errors.TkmsError`). A compute runner is a user like any
other: it makes a client with its own wallet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self, TypeVar

import httpx

from tkms.client.errors import InvalidInput, TransportError
from tkms.client.gateway_core import Flow, GatewayCore, HttpRequest, HttpResponse
from tkms.client.gateway_open import Acl, Encrypted
from tkms.client.trust import GatewayTrust
from tkms.crypto.encoding import EncodingError, parse_address, parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet.manifest import DEFAULT_PATH, DevnetManifest, ManifestError
from tkms.dkg.keyset import VerifiedKeyset
from tkms.keyfiles import read_hex
from tkms.protocol.handle import SolidityType
from tkms.protocol.solidity import PlainInput, PlainValue

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
    path: str | Path = DEFAULT_DEVNET, key_file: str | Path | None = None
) -> dict[str, Any]:
    """Constructor arguments from a devnet's ``devnet.json`` (and a user key file)."""
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
    }


class _Base:
    @classmethod
    def from_devnet(
        cls, path: str | Path = DEFAULT_DEVNET, *, key_file: str | Path | None = None, **kw: Any
    ) -> Self:
        """A client of the devnet described by ``devnet.json``, as its dev user by default."""
        return cls(**{**devnet_settings(path, key_file), **kw})

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
    ) -> None:
        trust = GatewayTrust(
            chain_id,
            _bytes(gateway_signer, "gateway_signer", 20),
            _bytes(verifying_contract, "verifying_contract", 20),
            None if kms_public_key is None else _bytes(kms_public_key, "kms_public_key", 33),
        )
        app = bytes(20) if application is None else _bytes(application, "application", 20)
        self.url = gateway_url.rstrip("/")
        self.core = GatewayCore(
            wallet,
            trust,
            application=app,
            rsa_bits=rsa_bits,
            authorization_ttl=authorization_ttl,
        )

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

    def _response(self, response: httpx.Response) -> HttpResponse:
        try:
            data = response.json()
        except ValueError:
            data = None
        return HttpResponse(response.status_code, data, response.headers)


def _transport(exc: httpx.HTTPError, url: str) -> TransportError:
    return TransportError(f"cannot reach the gateway at {url}: {type(exc).__name__}")


# A kept-alive connection the server closed just as we reused it fails so, before
# any answer: a GET (every read is one) is safe to send once more.
_DROPPED = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


def _retryable(request: HttpRequest, exc: httpx.HTTPError, attempt: int) -> bool:
    return request.method == "GET" and attempt == 0 and isinstance(exc, _DROPPED)


class Client(_Base):
    """The synchronous SDK (one ``httpx.Client``, safe to share between threads)."""

    def __init__(self, gateway_url: str, wallet: Wallet, *, timeout: float = 10.0, **kw: Any):
        super().__init__(gateway_url, wallet, **kw)
        self._http = httpx.Client(timeout=timeout)

    def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(self._send(request))
        except StopIteration as done:
            result: T = done.value
            return result

    def _send(self, request: HttpRequest) -> HttpResponse:
        for attempt in range(2):
            try:
                response = self._http.request(
                    request.method,
                    self.url + request.path,
                    params=request.params,
                    headers=request.headers,
                    json=request.json,
                )
            except httpx.HTTPError as exc:
                if _retryable(request, exc, attempt):
                    continue
                raise _transport(exc, self.url) from None
            return self._response(response)
        raise AssertionError("unreachable")

    def encrypt(
        self,
        value: PlainInput,
        solidity_type: SolidityType | str,
        *,
        application: str | bytes | None = None,
    ) -> Encrypted:
        """Store ``value`` as a new handle owned by this client's wallet."""
        app = None if application is None else _bytes(application, "application", 20)
        return self._run(self.core.encrypt_flow(value, solidity_type, app))

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

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio SDK: the same operations as :class:`Client`, awaited."""

    def __init__(self, gateway_url: str, wallet: Wallet, *, timeout: float = 10.0, **kw: Any):
        super().__init__(gateway_url, wallet, **kw)
        self._http = httpx.AsyncClient(timeout=timeout)

    async def _run(self, flow: Flow[T]) -> T:
        try:
            request = next(flow)
            while True:
                request = flow.send(await self._send(request))
        except StopIteration as done:
            result: T = done.value
            return result

    async def _send(self, request: HttpRequest) -> HttpResponse:
        for attempt in range(2):
            try:
                response = await self._http.request(
                    request.method,
                    self.url + request.path,
                    params=request.params,
                    headers=request.headers,
                    json=request.json,
                )
            except httpx.HTTPError as exc:
                if _retryable(request, exc, attempt):
                    continue
                raise _transport(exc, self.url) from None
            return self._response(response)
        raise AssertionError("unreachable")

    async def encrypt(
        self,
        value: PlainInput,
        solidity_type: SolidityType | str,
        *,
        application: str | bytes | None = None,
    ) -> Encrypted:
        app = None if application is None else _bytes(application, "application", 20)
        return await self._run(self.core.encrypt_flow(value, solidity_type, app))

    async def decrypt(self, handle: str | Encrypted) -> PlainValue:
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

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
