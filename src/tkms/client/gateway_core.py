"""The SDK's logic without I/O: each operation is a generator of HTTP requests.

A flow yields :class:`HttpRequest` and is sent back :class:`HttpResponse`;
:mod:`tkms.client.sdk` drives the same flows over a blocking or an asyncio
HTTP/1.1 transport (:mod:`tkms.transport`), so both variants check exactly the same things:

- every answer is ``{payload, signature}`` signed by the gateway the client
  trusts, under the salt the client drew for that very request;
- a new handle's 137-byte proof is the gateway's ``HandleProof`` for our owner;
- threshold material: each partial's node signature against the keyset signer
  (defence in depth: the gateway checked it too), then its DLEQ proof, then
  Lagrange combination (protocol.md §3.4); the keyset is checked against the
  trusted ``Y``.

The RSA key and the signed ``DataAccessAuthorization`` are reused while valid,
as the Nox SDK does; the first key is made in the background from the client's
creation, and may be kept in a file across processes (:mod:`tkms.client.material`).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Collection, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tkms.client.errors import (
    InvalidInput,
    NotEnoughPartials,
    TransportError,
    UntrustedResponse,
    service_error,
    untrusted,
)
from tkms.client.gateway_open import (
    Acl,
    Encrypted,
    check_created,
    decrypt_threshold,
    open_single,
    open_threshold_round,
    parse_acl,
)
from tkms.client.material import (
    CLOCK_SKEW,
    DecryptionMaterial,
    KeyMaker,
    load_material,
    save_material,
    sign_material,
)
from tkms.client.trust import GatewayTrust
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.handle import (
    Handle,
    HandleError,
    SolidityType,
    as_solidity_type,
    parse_handle,
)
from tkms.protocol.keyset import VerifiedKeyset, verify_keyset
from tkms.protocol.solidity import (
    PlainInput,
    PlainValue,
    ValueEncodingError,
    decode_value,
    encode_value,
)

T = TypeVar("T")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    delay: float = 0.0  # seconds the driver waits before sending it (a 503's Retry-After)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    data: Any  # parsed JSON, or None when the body is not JSON
    headers: Mapping[str, str] = field(default_factory=dict)


Flow = Generator[HttpRequest, HttpResponse, T]

# A busy gateway's 503 + Retry-After (docs/gateway.md §9) is honoured at most this
# many times per read, and only while the waits stay within the client's timeout.
MAX_BUSY_RETRIES = 8


def retry_after(response: HttpResponse, waited: float, budget: float) -> float | None:
    """Seconds to wait before asking again, for a 503 with ``Retry-After`` (delta-seconds)
    that still fits ``budget`` after ``waited``; None: answer the response as it is."""
    if response.status != 503:
        return None
    value = response.headers.get("retry-after", "")
    if not (value.isascii() and value.isdigit() and len(value) <= 4):
        return None  # absent, an HTTP-date or nonsense: not a wait we can bound
    seconds = float(int(value))
    return seconds if waited + seconds <= budget else None


def _salt() -> tuple[bytes, dict[str, str]]:
    salt = secrets.token_bytes(32)
    return salt, {"salt": to_hex(salt)}


class GatewayCore:
    def __init__(
        self,
        wallet: Wallet,
        trust: GatewayTrust,
        *,
        application: bytes = bytes(20),
        rsa_bits: int = 2048,
        authorization_ttl: int = 3600,
        clock: Callable[[], float] = time.time,
        material_file: Path | None = None,
    ) -> None:
        if not 60 <= authorization_ttl <= 3600:
            raise InvalidInput("authorization_ttl must be 60..3600 seconds")
        self.wallet = wallet
        self.trust = trust
        self.application = application
        self.rsa_bits = rsa_bits
        self.ttl = authorization_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._material: DecryptionMaterial | None = None
        self._material_file = material_file
        if material_file is not None:
            self._material = load_material(material_file, wallet, self._domain(), self._now())
        # The first key and its signed authorization (kept in the file, if any), made while
        # the caller gets ready (none needed if the file had them). Last: its thread calls
        # _signed at once, which reads what is set above.
        self._keys = KeyMaker(rsa_bits, self._prepare) if self._material is None else None
        self._keyset: VerifiedKeyset | None = None
        self._mode: str | None = None  # "v1" (threshold) or "v0" (single node)
        self.last_timings: dict[str, float] = {}
        self.last_rounds = 0  # requests the last threshold decryption took (docs/gateway.md)
        self.busy_budget = 10.0  # seconds of Retry-After waits per read: the client's timeout

    def _now(self) -> int:
        return int(self._clock())

    def _params(self) -> tuple[bytes, dict[str, str]]:
        salt, params = _salt()
        params["chain_id"] = str(self.trust.chain_id)
        return salt, params

    # --- decryption material -------------------------------------------------------------

    def material(self, *, renew: bool = False) -> tuple[DecryptionMaterial, bool]:
        """The cached material, or fresh material (True) when none is usable."""
        with self._lock:
            now = self._now()
            if not renew and self._material is not None and self._material.usable(now):
                return self._material, False
            self._material = self._new_material(now)
            return self._material, True

    def _domain(self) -> eip712.Domain:
        return eip712.gateway_domain(
            self.trust.chain_id, verifying_contract=self.trust.verifying_contract
        )

    def _new_material(self, now: int) -> DecryptionMaterial:
        if self._keys is not None:
            (key, ready), self._keys = self._keys.take(), None
            if ready is not None and ready.usable(now):
                return ready  # signed (and kept) in the background, never sent yet
        else:
            key = rsa.generate_private_key(self.rsa_bits)
        return self._signed(key, now)

    def _prepare(self, key: rsa.RSAPrivateKey) -> DecryptionMaterial:
        """The key maker's step after the key (on its thread): what a first call would do."""
        return self._signed(key, self._now())

    def _signed(self, key: rsa.RSAPrivateKey, now: int) -> DecryptionMaterial:
        material = sign_material(self.wallet, self._domain(), key, now, self.ttl)
        if self._material_file is not None:
            save_material(self._material_file, material)
        return material

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once the first material is made (by the background, or a call)."""
        keys = self._keys
        return keys is None or keys.wait(timeout)

    def when_ready(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once :meth:`wait_ready` would be True (maybe on another thread)."""
        keys = self._keys
        if keys is None:
            callback()
        else:
            keys.when_done(callback)

    def close(self) -> None:
        """Stop the background work: a key still being made is not signed nor kept."""
        keys = self._keys
        if keys is not None:
            keys.stop()

    # --- answers ---------------------------------------------------------------------------

    @staticmethod
    def ok(response: HttpResponse) -> Any:
        """The JSON of a 200, or the typed error of anything else."""
        data = response.data
        if response.status == 200 and data is not None:
            return data
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            if data["error"] == "not_enough_partials" and isinstance(data.get("failures"), dict):
                failures = {int(i): str(w) for i, w in data["failures"].items() if str(i).isdigit()}
                raise NotEnoughPartials(
                    int(data.get("threshold") or 0), int(data.get("valid") or 0), failures
                )
            raise service_error(response.status, data["error"], str(data.get("message")))
        raise TransportError(f"the gateway answered HTTP {response.status} without an error body")

    def payload(
        self, response: HttpResponse, statement: eip712.Statement, salt: bytes
    ) -> dict[str, Any]:
        """The payload of ``{payload, signature}`` once its signature checks out."""
        data = self.ok(response)
        if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
            raise UntrustedResponse("the answer is not {payload, signature}")
        payload: dict[str, Any] = data["payload"]
        try:
            signer = eip712.recover(
                eip712.gateway_domain(self.trust.chain_id, salt=salt),
                statement,
                payload,
                parse_hex(data.get("signature"), name="signature", length=65),
            )
        except (EncodingError, SignatureError, eip712.Eip712Error):
            raise UntrustedResponse("the gateway's signature is invalid") from None
        if signer != self.trust.gateway_signer:
            raise UntrustedResponse("the answer is not signed by the trusted gateway")
        return payload

    # --- flows -------------------------------------------------------------------------------

    @property
    def known_keyset(self) -> VerifiedKeyset | None:
        """The keyset already fetched and checked (by a call, or the client's prefetch)."""
        return self._keyset

    def keyset_flow(self, *, refresh: bool = False) -> Flow[VerifiedKeyset | None]:
        """The checked keyset, or None when the gateway fronts a single node."""
        if self._mode == "v0":
            return None
        if self._keyset is not None and not refresh:
            return self._keyset
        response = yield HttpRequest("GET", "/v1/keyset", {"chain_id": str(self.trust.chain_id)})
        if response.status == 501:
            self._mode = "v0"
            return None
        with untrusted():
            self._keyset = verify_keyset(
                self.ok(response), self.trust.chain_id, self.trust.kms_public_key
            )
        self._mode = "v1"
        return self._keyset

    def encrypt_flow(
        self,
        value: PlainInput,
        solidity_type: SolidityType | str,
        application: bytes | None,
        encryption_key: bytes | None = None,
    ) -> Flow[Encrypted]:
        """A new handle: encrypted here to ``encryption_key`` (a ``Y`` trusted apart from
        the gateway) when the gateway fronts a threshold KMS (POST /v1/secrets: the
        gateway never sees the value), else by the gateway (POST /v0/secrets)."""
        try:
            kind = as_solidity_type(solidity_type)
            plaintext = encode_value(value, kind)
        except (HandleError, ValueEncodingError) as exc:
            raise InvalidInput(str(exc)) from None
        app = self.application if application is None else application
        if encryption_key is not None and self._mode is None:
            yield from self.keyset_flow()
        if encryption_key is not None and self._mode == "v1":
            return (yield from self._encrypt_here(plaintext, kind, app, encryption_key))
        salt, params = self._params()
        body = {
            "value": to_hex(plaintext),
            "solidityType": kind.name,
            "owner": to_hex(self.wallet.address),
            "applicationContract": to_hex(app),
        }
        response = yield HttpRequest("POST", "/v0/secrets", params, json=body)
        payload = self.payload(response, eip712.HANDLE_WITH_PROOF, salt)
        return check_created(payload, self.trust, kind, self.wallet.address, app)

    def _encrypt_here(
        self, plaintext: bytes, kind: SolidityType, app: bytes, key: bytes
    ) -> Flow[Encrypted]:
        """POST /v1/secrets (docs/gateway.md §5): the record and its bound handle only."""
        try:
            y = curve.parse_point(key)
        except curve.CurveError as exc:
            raise InvalidInput(f"kms public key: {exc}") from None
        record = ecies.encrypt(y, plaintext)
        handle = bound_input_handle(self.trust.chain_id, kind, record)
        salt, params = self._params()
        body = {
            "handle": to_hex(handle),
            "ephemeralPubKey": to_hex(record.ephemeral_pubkey),
            "iv": to_hex(record.iv),
            "ciphertext": to_hex(record.ciphertext),
            "solidityType": kind.name,
            "owner": to_hex(self.wallet.address),
            "applicationContract": to_hex(app),
        }
        response = yield HttpRequest("POST", "/v1/secrets", params, json=body)
        payload = self.payload(response, eip712.HANDLE_WITH_PROOF, salt)
        created = check_created(payload, self.trust, kind, self.wallet.address, app)
        if parse_hex(created.handle) != handle:
            raise UntrustedResponse("the gateway answered with another handle than ours")
        return created

    def decrypt_flow(self, handle: str | Encrypted) -> Flow[PlainValue]:
        try:
            parsed = parse_handle(str(handle), chain_id=self.trust.chain_id)
        except HandleError as exc:
            raise InvalidInput(f"handle: {exc}") from None
        if self._mode is None:
            yield from self.keyset_flow()
        start = time.perf_counter()
        material, fresh = self.material()
        prepared = time.perf_counter() - start
        if self._mode == "v0":
            path = f"/v0/secrets/{parsed.hex}"
            response, salt, material, fresh = yield from self._read(path, material, fresh)
            start = time.perf_counter()
            payload = self.payload(response, eip712.HANDLE_CRYPTO_MATERIAL, salt)
            plaintext = open_single(payload, parsed, material.rsa_key, self.trust)
        else:
            plaintext, response, start = yield from self._threshold_flow(parsed, material, fresh)
        value = decode_value(plaintext, parsed.solidity_type)
        self.last_timings = {
            "client": prepared + time.perf_counter() - start,
            **_server_timing(response.headers.get("server-timing", "")),
        }
        return value

    def _read(
        self,
        path: str,
        material: DecryptionMaterial,
        fresh: bool,
        exclude: Collection[int] = (),
    ) -> Flow[tuple[HttpResponse, bytes, DecryptionMaterial, bool]]:
        """One ``GET …/secrets/{h}``: (answer, its salt, the material it used, fresh?).

        A busy gateway's 503 with ``Retry-After`` is asked again after that wait, at
        most MAX_BUSY_RETRIES times and within ``busy_budget`` seconds of waiting."""
        delay, waited, busy = 0.0, 0.0, 0
        while True:
            salt, params = self._params()
            if exclude:
                params["exclude"] = ",".join(str(i) for i in sorted(exclude))
            response = yield HttpRequest(
                "GET", path, params, {"Authorization": material.authorization}, delay=delay
            )
            if response.status == 401 and not fresh:
                # Cached material the gateway no longer takes: renew once, as Nox does.
                material, fresh, delay = *self.material(renew=True), 0.0
                continue
            wait = retry_after(response, waited, self.busy_budget)
            if wait is not None and busy < MAX_BUSY_RETRIES:
                delay, waited, busy = wait, waited + wait, busy + 1
                continue
            return response, salt, material, fresh

    def _threshold_flow(
        self, parsed: Handle, material: DecryptionMaterial, fresh: bool
    ) -> Flow[tuple[bytes, HttpResponse, float]]:
        """Ask until ``t`` partials check out, excluding the nodes caught failing (docs/gateway.md).

        Each answer brings ``t`` (+ spare) partials of nodes not excluded; the
        good ones are kept across answers (each is ``x_i·K`` of the same ``K``,
        whatever salt it came under), and every node whose partial failed is
        excluded from the next request. It stops when no node is left to ask.
        """
        path = f"/v1/secrets/{parsed.hex}"
        good: dict[int, curve.Point] = {}
        failures: dict[int, str] = {}
        exclude: set[int] = set()
        record: ecies.EciesRecord | None = None
        epoch: int | None = None
        gateway_valid = 0  # what the gateway's last 503 said it held
        stale_retried = False
        rounds = 0
        while True:
            rounds += 1
            self.last_rounds = rounds
            response, salt, material, fresh = yield from self._read(path, material, fresh, exclude)
            start = time.perf_counter()
            if _refused(response, "too_many_excluded"):
                break  # the committee the gateway asks is smaller than the keyset
            try:
                payload = self.payload(response, _material_statement(exclude), salt)
            except NotEnoughPartials as short:
                # The gateway could not get t answers among the nodes left: exclude
                # those it names and ask the rest, if enough are left.
                gateway_valid = short.valid
                named = set(short.failures) - exclude
                failures.update({i: w for i, w in short.failures.items() if i not in good})
                exclude |= named
                if not named or not self._enough_left(exclude):
                    break
                continue
            keyset = self._keyset
            if keyset is None or payload.get("epoch") != keyset.epoch:
                keyset = yield from self.keyset_flow(refresh=True)  # checked against Y
            assert keyset is not None
            if payload.get("epoch") != keyset.epoch and not stale_retried:
                # A reshare's switch between the two reads: the material is of one epoch,
                # the keyset served now of the next. Ask once more, now at that epoch.
                stale_retried = True
                continue
            if epoch is not None and keyset.epoch != epoch:
                good.clear()  # a reshare in between: earlier partials are of other shares
                failures.clear()
            epoch = keyset.epoch
            got = open_threshold_round(
                payload,
                parsed,
                keyset,
                material.rsa_key,
                salt,
                self.trust,
                exclude=exclude,
                have=good,
            )
            if record is not None and got.record != record:
                raise UntrustedResponse("the gateway answered with another record")
            record = got.record
            good.update(got.good)
            failures.update(got.failures)
            if len(good) >= keyset.threshold:
                return decrypt_threshold(keyset, record, good), response, start
            named = set(got.failures) - exclude
            exclude |= named
            if not named or not self._enough_left(exclude):
                break
        threshold = self._keyset.threshold if self._keyset is not None else 0
        failed = {i: why for i, why in failures.items() if i not in good}
        raise NotEnoughPartials(threshold, max(len(good), gateway_valid), failed)

    def _enough_left(self, exclude: Collection[int]) -> bool:
        keyset = self._keyset
        return keyset is not None and len(keyset.nodes) - len(exclude) >= keyset.threshold

    def grant_flow(self, handle: str | Encrypted, account: bytes, role: str) -> Flow[Acl]:
        try:
            parsed = parse_handle(str(handle), chain_id=self.trust.chain_id)
        except HandleError as exc:
            raise InvalidInput(f"handle: {exc}") from None
        now = self._now()
        message = {
            "handle": parsed.hex,
            "role": role,
            "account": to_hex(account),
            "grantedBy": to_hex(self.wallet.address),
            "notBefore": now - CLOCK_SKEW,
            "expiresAt": now + 300,
        }
        domain = eip712.gateway_domain(
            self.trust.chain_id, verifying_contract=self.trust.verifying_contract
        )
        try:
            signature = eip712.sign(self.wallet, domain, eip712.ACL_GRANT, message)
        except (eip712.Eip712Error, EncodingError) as exc:
            raise InvalidInput(str(exc)) from None
        salt, params = self._params()
        body = {"payload": message, "signature": to_hex(signature)}
        response = yield HttpRequest("POST", "/v1/acl/grant", params, json=body)
        return parse_acl(self.payload(response, eip712.HANDLE_ACL, salt), parsed.hex)

    def acl_flow(self, handle: str | Encrypted) -> Flow[Acl]:
        try:
            parsed = parse_handle(str(handle), chain_id=self.trust.chain_id)
        except HandleError as exc:
            raise InvalidInput(f"handle: {exc}") from None
        # Only the owner or an admin may list who reads: we say who we are, for this handle.
        now = self._now()
        message = {
            "handle": parsed.hex,
            "reader": to_hex(self.wallet.address),
            "notBefore": now - CLOCK_SKEW,
            "expiresAt": now + 300,
        }
        domain = eip712.gateway_domain(
            self.trust.chain_id, verifying_contract=self.trust.verifying_contract
        )
        signature = eip712.sign(self.wallet, domain, eip712.ACL_READ, message)
        token = json.dumps({"payload": message, "signature": to_hex(signature)})
        headers = {"Authorization": "EIP712 " + base64.b64encode(token.encode()).decode()}
        salt, params = self._params()
        response = yield HttpRequest("GET", f"/v1/acl/{parsed.hex}", params, headers)
        return parse_acl(self.payload(response, eip712.HANDLE_ACL, salt), parsed.hex)


def _material_statement(exclude: Collection[int]) -> eip712.Statement:
    if exclude:
        return eip712.HANDLE_THRESHOLD_MATERIAL_EXCLUDING
    return eip712.HANDLE_THRESHOLD_MATERIAL


def _refused(response: HttpResponse, code: str) -> bool:
    data = response.data
    return response.status == 400 and isinstance(data, dict) and data.get("error") == code


def _server_timing(header: str) -> dict[str, float]:
    """``gateway;dur=1.2, kms;dur=3.4`` → seconds by name (what the gateway reports)."""
    timings: dict[str, float] = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            try:
                timings[name] = float(rest[4:]) / 1000
            except ValueError:
                continue
    return timings
