"""Hostile input, sent as the attack itself, over one raw keep-alive connection.

Every case (JSON nested 50,000 deep, token integers in Unicode digits, a
PKCS#1 key where SPKI is due) must get its documented 4xx JSON, the SAME
connection must then serve a valid request, and the server's output must
hold no traceback and no exception message. Then the gateway's write limits:
429 with ``Retry-After`` past a client's rate, 413 past the record size.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from tests.cluster import Cluster, running_cluster
from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import NOX_COMPUTE, single_node_gateway
from tests.procs import Service
from tkms.client.relay import run_ceremony
from tkms.crypto import curve, eip712, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.config import RateLimitConfig
from tkms.gateway.ratelimit import TokenBuckets, WriteRateLimit, client_key
from tkms.protocol.delegation import sign_delegate_request
from tkms.web.errors import install_error_handlers

DEEP = b"[" * 50_000
# str.isdigit() is true for each; none is an ASCII decimal.
UNICODE_DIGITS = (
    "\u00b2",  # ²
    "\u0661\u0662\u0663",  # ١٢٣ Arabic-Indic
    "\u06f4\u06f2",  # ۴۲ extended Arabic-Indic
    "\u0967\u0968\u0969",  # १२३ Devanagari
    "\uff11\uff12\uff13",  # １２３ fullwidth
    "\U0001d7cf\U0001d7d0",  # 𝟏𝟐 mathematical bold
    "\u2460",  # ①
    "1\u00b2",  # an ASCII digit, then a superscript
)
LEAKS = (
    "traceback",
    "exception in asgi",
    "maximum recursion depth",
    "invalid literal for int",
    "recursionerror",
    "internal_error",
)
RSA_KEY = rsa.generate_private_key()
SPKI = to_hex(rsa.public_key_der(RSA_KEY))
PKCS1 = to_hex(
    RSA_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
)
OWNER = Wallet.generate()
JSON = {"Content-Type": "application/json"}


# --- one raw HTTP/1.1 connection ----------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One TCP connection; each request waits for its whole answer on it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.host = f"{parts.hostname}:{parts.port}"
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Reply:
        target = path + ("?" + urlencode(params) if params else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if method == "POST" or body:
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        found = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            found[name.strip().lower()] = value.strip()
        length = int(found.get("content-length", "0"))
        while len(self.buffer) < length:
            self._more()
        content, self.buffer = self.buffer[:length], self.buffer[length:]
        return Reply(int(status_line.split()[1]), found, content)


@dataclass
class Attack:
    name: str
    method: str
    path: str
    status: int
    code: str
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    body: bytes = b""


def run_attacks(
    url: str, attacks: list[Attack], follow: tuple[str, str, dict[str, str], bytes]
) -> list[str]:
    """Each attack, then ``follow`` (a valid request: 200) on the same connection."""
    failures: list[str] = []
    for attack in attacks:
        conn = Connection(url)
        try:
            reply = conn.request(
                attack.method,
                attack.path,
                params=attack.params,
                headers=attack.headers,
                body=attack.body,
            )
            data = reply.json()
            if (
                reply.status != attack.status
                or not isinstance(data, dict)
                or set(data) != {"error", "message"}
                or data["error"] != attack.code
                or reply.headers.get("connection", "").lower() == "close"
            ):
                failures.append(f"{attack.name}: {reply.status} {reply.body[:200]!r}")
                continue
            method, path, headers, body = follow
            after = conn.request(method, path, headers=headers, body=body)
            if after.status != 200:
                failures.append(f"{attack.name}: then {after.status} {after.body[:200]!r}")
        except (ConnectionError, OSError, ValueError) as exc:
            failures.append(f"{attack.name}: {type(exc).__name__} {exc}")
        finally:
            conn.close()
    return failures


def assert_quiet(*logs: str) -> None:
    for log in logs:
        lowered = log.lower()
        for leak in LEAKS:
            assert leak not in lowered, f"{leak!r} in the log:\n{log[-3000:]}"


def bearer(keys_gateway: Wallet, ephemeral: str, target: str) -> dict[str, str]:
    sig = sign_delegate_request(keys_gateway, CHAIN_ID, ephemeral, target)
    return {**JSON, "Authorization": f"Bearer {sig}"}


def delegate_body(ephemeral: str, target: str) -> bytes:
    return json.dumps({"ephemeralPubKey": ephemeral, "targetPubKey": target}).encode()


# --- the nodes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def committee(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two nodes through a real ceremony: /v1/delegate reads its body only then."""
    with running_cluster(Path(tmp_path_factory.mktemp("input")), 2) as cluster:
        outcome = run_ceremony(cluster.committee(), cluster.admin, 2)
        assert outcome.keyset is not None, outcome.errors
        yield cluster


def node_attacks(gateway: Wallet, version: str) -> list[Attack]:
    path = f"/{version}/delegate"
    ephemeral = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
    good = bearer(gateway, ephemeral, SPKI)
    chain = {"chain_id": str(CHAIN_ID)}
    out = [
        Attack("deep JSON", "POST", path, 400, "malformed_json", chain, good, DEEP),
        Attack("deep object", "POST", path, 400, "malformed_json", chain, good, b'{"a":' * 12_000),
        Attack("huge integer", "POST", path, 400, "malformed_json", chain, good, b"9" * 5000),
        Attack(
            "PKCS#1 target",
            "POST",
            path,
            400,
            "invalid_target_pubkey",
            chain,
            bearer(gateway, ephemeral, PKCS1),
            delegate_body(ephemeral, PKCS1),
        ),
    ]
    for digits in UNICODE_DIGITS:
        out.append(
            Attack(
                f"chain_id {digits!a}",
                "POST",
                path,
                400,
                "invalid_chain_id",
                {"chain_id": digits},
                good,
                delegate_body(ephemeral, SPKI),
            )
        )
    return out


def test_node_v0_delegate_under_attack(v0_node: Service, node_keys: NodeKeys) -> None:
    failures = run_attacks(
        v0_node.url, node_attacks(node_keys.gateway, "v0"), ("GET", "/health", {}, b"")
    )
    # The same connection also serves a real delegation after the deep JSON.
    ephemeral = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
    conn = Connection(v0_node.url)
    try:
        chain = {"chain_id": str(CHAIN_ID)}
        headers = bearer(node_keys.gateway, ephemeral, SPKI)
        first = conn.request("POST", "/v0/delegate", params=chain, headers=headers, body=DEEP)
        assert (first.status, first.json()["error"]) == (400, "malformed_json")
        body = delegate_body(ephemeral, SPKI)
        second = conn.request("POST", "/v0/delegate", params=chain, headers=headers, body=body)
        assert second.status == 200, second.body
        assert "encryptedSharedSecret" in second.json()
    finally:
        conn.close()
    assert failures == []
    assert_quiet(v0_node.output())


def test_threshold_node_under_attack(committee: Cluster) -> None:
    node = committee.nodes[1]
    url = node.url
    attacks = node_attacks(committee.gateway, "v1")
    for path in ("/v1/dkg/start", "/v1/dkg/round"):
        attacks += [
            Attack(f"{path} deep", "POST", path, 400, "malformed_json", None, JSON, DEEP),
            Attack(
                f"{path} deep obj",
                "POST",
                path,
                400,
                "malformed_json",
                None,
                JSON,
                b'{"a":' * 20_000,
            ),
        ]
    attacks.append(
        Attack(
            "keyset chain ²", "GET", "/v1/keyset", 400, "invalid_chain_id", {"chain_id": "\u00b2"}
        )
    )
    failures = run_attacks(url, attacks, ("GET", f"/v1/keyset?chain_id={CHAIN_ID}", {}, b""))
    assert failures == []
    assert node.service is not None
    assert_quiet(node.service.output())


# --- the gateway ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """On the default write limits: none of this may meet them."""
    root = Path(tmp_path_factory.mktemp("input-gw"))
    with single_node_gateway(v0_node, node_keys, root) as service:
        yield service


def secret_body(value: str = "0x2a", kind: str = "uint8") -> bytes:
    return json.dumps(
        {
            "value": value,
            "solidityType": kind,
            "owner": to_hex(OWNER.address),
            "applicationContract": to_hex(bytes(20)),
        }
    ).encode()


def create(url: str) -> str:
    conn = Connection(url)
    try:
        reply = conn.request("POST", "/v0/secrets", headers=JSON, body=secret_body())
    finally:
        conn.close()
    assert reply.status == 200, reply.body
    return str(reply.json()["payload"]["handle"])


def _as_strings(message: dict[str, Any]) -> None:
    """uint256 fields as decimal strings, as wallets serialise them."""
    for name in ("notBefore", "expiresAt"):
        message[name] = str(message[name])


def access_token(key: str = SPKI, *, as_strings: bool = False, **fields: Any) -> str:
    now = int(time.time())
    message: dict[str, Any] = {
        "userAddress": to_hex(OWNER.address),
        "encryptionPubKey": key,
        "notBefore": now - 5,
        "expiresAt": now + 600,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=NOX_COMPUTE)
    signature = to_hex(eip712.sign(OWNER, domain, eip712.DATA_ACCESS_AUTHORIZATION, message))
    if as_strings:
        _as_strings(message)
    message.update(fields)
    token = json.dumps({"payload": message, "signature": signature}, ensure_ascii=False)
    return "EIP712 " + base64.b64encode(token.encode()).decode()


def raw_token(data: bytes) -> str:
    return "EIP712 " + base64.b64encode(data).decode()


def grant(handle: str, *, as_strings: bool = False, **fields: Any) -> bytes:
    now = int(time.time())
    payload: dict[str, Any] = {
        "handle": handle,
        "role": "viewer",
        "account": to_hex(Wallet.generate().address),
        "grantedBy": to_hex(OWNER.address),
        "notBefore": now - 5,
        "expiresAt": now + 300,
    }
    domain = eip712.gateway_domain(CHAIN_ID, verifying_contract=NOX_COMPUTE)
    signature = to_hex(eip712.sign(OWNER, domain, eip712.ACL_GRANT, payload))
    if as_strings:
        _as_strings(payload)
    payload.update(fields)
    return json.dumps({"payload": payload, "signature": signature}, ensure_ascii=False).encode()


def gateway_attacks(handle: str) -> list[Attack]:
    reads = [f"/v0/secrets/{handle}", f"/v1/secrets/{handle}"]
    out = [
        Attack("secrets deep", "POST", "/v0/secrets", 400, "malformed_json", None, JSON, DEEP),
        Attack("grant deep", "POST", "/v1/acl/grant", 400, "malformed_json", None, JSON, DEEP),
        Attack(
            "grant deep obj",
            "POST",
            "/v1/acl/grant",
            400,
            "malformed_json",
            None,
            JSON,
            b'{"a":' * 12_000,
        ),
    ]
    for path in reads:
        out += [
            # As deep as the token's length limit allows (6,144 bytes of JSON), and past it.
            Attack(
                f"{path} deep token",
                "GET",
                path,
                401,
                "invalid_authorization",
                headers={"Authorization": raw_token(b"[" * 6144)},
            ),
            # Past the token's limit but within the server's header limit (a 50k token is
            # the connection layer's 431: tests/test_http_limits.py).
            Attack(
                f"{path} 20k token",
                "GET",
                path,
                401,
                "invalid_authorization",
                headers={"Authorization": raw_token(b"[" * 20_000)},
            ),
            Attack(
                f"{path} PKCS#1 key",
                "GET",
                path,
                400,
                "invalid_encryption_pubkey",
                headers={"Authorization": access_token(PKCS1)},
            ),
        ]
    for digits in UNICODE_DIGITS:
        for field in ("notBefore", "expiresAt"):
            for path in reads:
                out.append(
                    Attack(
                        f"{path} {field} {digits!a}",
                        "GET",
                        path,
                        401,
                        "invalid_authorization",
                        headers={"Authorization": access_token(**{field: digits})},
                    )
                )
            out.append(
                Attack(
                    f"grant {field} {digits!a}",
                    "POST",
                    "/v1/acl/grant",
                    401,
                    "invalid_authorization",
                    None,
                    JSON,
                    grant(handle, **{field: digits}),
                )
            )
        chain = {"chain_id": digits}
        out += [
            Attack(
                f"secrets chain {digits!a}",
                "POST",
                "/v0/secrets",
                400,
                "invalid_chain_id",
                chain,
                JSON,
                secret_body(),
            ),
            Attack(
                f"read chain {digits!a}",
                "GET",
                reads[0],
                400,
                "invalid_chain_id",
                chain,
                {"Authorization": access_token()},
            ),
            Attack(
                f"acl chain {digits!a}", "GET", f"/v1/acl/{handle}", 400, "invalid_chain_id", chain
            ),
        ]
    return out


def test_gateway_under_attack(gateway: Service, v0_node: Service) -> None:
    handle = create(gateway.url)
    failures = run_attacks(gateway.url, gateway_attacks(handle), ("GET", "/health", {}, b""))
    assert failures == []
    conn = Connection(gateway.url)
    try:
        # After the deep JSON, a write on the same connection.
        deep = conn.request("POST", "/v0/secrets", headers=JSON, body=DEEP)
        assert (deep.status, deep.json()["error"]) == (400, "malformed_json")
        written = conn.request("POST", "/v0/secrets", headers=JSON, body=secret_body())
        assert written.status == 200, written.body
        # The ASCII decimal strings of the same statements pass.
        token = access_token(as_strings=True)
        read = conn.request("GET", f"/v0/secrets/{handle}", headers={"Authorization": token})
        assert read.status == 200, read.body
        granted = conn.request(
            "POST", "/v1/acl/grant", headers=JSON, body=grant(handle, as_strings=True)
        )
        assert granted.status == 200, granted.body
    finally:
        conn.close()
    assert_quiet(gateway.output(), v0_node.output())


# --- the write limits ---------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    root = Path(tmp_path_factory.mktemp("limited-gw"))
    with single_node_gateway(
        v0_node,
        node_keys,
        root,
        TKMS_GATEWAY_RATE_LIMIT__WRITES_PER_MINUTE="12",
        TKMS_GATEWAY_RATE_LIMIT__BURST="4",
        NOX_HANDLE_GATEWAY_MAX_RECORD_BYTES="64",
    ) as service:
        yield service


def test_write_flood_meets_429_and_oversized_records_413(limited: Service) -> None:
    conn = Connection(limited.url)
    try:
        fits = conn.request(
            "POST", "/v0/secrets", headers=JSON, body=secret_body("0x" + "ab" * 64, "bytes")
        )
        assert fits.status == 200, fits.body
        handle = fits.json()["payload"]["handle"]
        big = conn.request(
            "POST", "/v0/secrets", headers=JSON, body=secret_body("0x" + "ab" * 65, "bytes")
        )
        assert big.status == 413 and big.json() == {
            "error": "payload_too_large",
            "message": "value exceeds 64 bytes",
        }
        statuses = [
            conn.request("POST", "/v0/secrets", headers=JSON, body=secret_body()).status
            for _ in range(4)
        ]
        assert statuses[:2] == [200, 200] and statuses[-1] == 429, statuses
        flood = conn.request("POST", "/v0/secrets", headers=JSON, body=secret_body())
        assert flood.status == 429
        assert flood.json()["error"] == "rate_limited" and set(flood.json()) == {
            "error",
            "message",
        }
        retry = int(flood.headers["retry-after"])
        assert 1 <= retry <= 5
        # A forged X-Forwarded-For is not another client; grants share the bucket.
        spoofed = {**JSON, "X-Forwarded-For": "203.0.113.7"}
        forged = conn.request("POST", "/v0/secrets", headers=spoofed, body=secret_body())
        assert forged.status == 429
        assert conn.request("POST", "/v1/acl/grant", headers=JSON, body=b"{}").status == 429
        # Reads are not metered, and the connection is still good.
        # (an unsigned ACL listing is refused for its missing signature, never for the rate)
        listing = conn.request("GET", f"/v1/acl/{handle}")
        assert (listing.status, listing.json()["error"]) == (401, "missing_authorization")
    finally:
        conn.close()
    time.sleep(retry + 0.2)  # longer than a keep-alive lasts idle: a new connection
    conn = Connection(limited.url)
    try:
        again = conn.request("POST", "/v0/secrets", headers=JSON, body=secret_body())
        assert again.status == 200, again.body
        metrics = conn.request("GET", "/metrics").body.decode()
        assert 'tkms_gateway_errors_total{code="rate_limited"}' in metrics
    finally:
        conn.close()
    assert_quiet(limited.output())


def test_token_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    buckets = TokenBuckets(60, 3, max_clients=100, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(1.0)
    now[0] += 0.5
    assert buckets.take("a") == pytest.approx(0.5)  # a refused write takes nothing
    now[0] += 0.5
    assert buckets.take("a") == 0
    assert buckets.take("b") == 0  # another client has its own bucket
    for i in range(1000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100


def test_clients_are_peers_unless_a_proxy_is_trusted() -> None:
    assert client_key("2001:db8:1:2:3:4:5:6") == client_key("2001:db8:1:2:ffff::1")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    scope: dict[str, Any] = {
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.1, 192.0.2.9")],
    }

    async def app(*_: Any) -> None:
        return None

    assert WriteRateLimit(app, RateLimitConfig())._client(scope) == "127.0.0.1"
    trusting = WriteRateLimit(app, RateLimitConfig(trust_forwarded_for=True))
    assert trusting._client(scope) == "192.0.2.9"


def test_an_unexpected_exception_is_a_json_500_logged_by_type_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()
    codes: list[str] = []
    install_error_handlers(app, on_error=codes.append)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret request material")

    async def call() -> httpx.Response:
        # raise_app_exceptions: an exception escaping the app would fail here.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get("/boom")

    with caplog.at_level("INFO"):
        answer = asyncio.run(call())
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal_error", "message": "internal error"}
    assert codes == ["internal_error"]
    assert "internal_error RuntimeError" in caplog.text
    assert "secret request material" not in caplog.text and "Traceback" not in caplog.text
