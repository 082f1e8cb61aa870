"""The gateway's reads on the fast path answer as its whole FastAPI stack does.

Two gateway processes in front of the same committee and database, with the
same configuration: ``tkms gateway`` (its reads, ``GET /v0|v1/secrets/{handle}``,
served by web/fastpath.py above every layer) and tests/slow_gateway.py (the
same app with the fast path off: FastAPI, ServerErrorMiddleware, CORS, the
metrics, the body limit, CatchAll, the router). Every request goes to both, over
real HTTP; the answers must be the same status, the same headers in the same
order (CORS included) and the same body. What a fresh signature or a fresh
RSA-OAEP seal makes differ between two answers (a 200's signature and sealed
partials, which nodes answered, ``Server-Timing``'s durations, ``date``, a
redirect's port) is compared by shape.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import reaper
from tests.cluster import CHAIN_ID
from tests.gatewaynet import GatewayNet, module_net
from tests.procs import Service, free_port, wait_healthy
from tests.rawclient import RawClient
from tkms.crypto.encoding import to_hex
from tkms.devnet.processes import clean_environ

REPO = Path(__file__).resolve().parent.parent
# One read at a time and no queue: a second read at once is the 503 gateway_busy.
BUSY = {"TKMS_GATEWAY_ADMISSION__MAX_IN_FLIGHT": "1", "TKMS_GATEWAY_ADMISSION__MAX_QUEUE": "0"}
ORIGINS: list[list[tuple[str, str]]] = [
    [],
    [("Origin", "https://dapp.example")],
    [("Origin", "null")],
    [("Origin", "https://a.example"), ("Origin", "https://b.example")],
]


net = module_net("fastpath")


@pytest.fixture(scope="module")
def gateways(net: GatewayNet) -> Iterator[tuple[Service, Service]]:
    """(fast, slow): the same configuration and database."""
    database = str(net.root / "gateway.sqlite3")
    with net.gateway(database, net.root / "fast.log", **BUSY) as fast:  # stopped on any error
        port = free_port()
        log = net.root / "slow.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.slow_gateway"],
                env={**clean_environ(), **net.env(database, port, **BUSY)},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        reaper.record(process.pid)
        slow = Service(f"http://127.0.0.1:{port}", process, log, "slow gateway")
        try:
            wait_healthy(slow)
            yield fast, slow
        finally:
            slow.stop()


@pytest.fixture(scope="module")
def owner(net: GatewayNet, gateways: tuple[Service, Service]) -> RawClient:
    gateway = to_hex(net.cluster.gateway.address)
    return RawClient(gateways[0].url, CHAIN_ID, gateway, to_hex(net.contract), net.public_key)


def _stranger(net: GatewayNet, url: str) -> RawClient:
    gateway = to_hex(net.cluster.gateway.address)
    return RawClient(url, CHAIN_ID, gateway, to_hex(net.contract), net.public_key)


def _headers(answer: httpx.Response) -> list[tuple[str, str]]:
    """Every header in order, the values that differ by nature by their shape."""
    out = []
    for name, value in answer.headers.multi_items():
        if name == "date":
            value = "<date>"
        elif name == "location":  # a redirect names the gateway's own port
            value = re.sub(r"^http://127\.0\.0\.1:\d+/", "<gateway>/", value)
        elif name == "server-timing":
            value = re.sub(r"dur=\d+\.\d{3}", "dur=<ms>", value)
        out.append((name, value))
    return out


def _body(answer: httpx.Response) -> Any:
    """A 200's body by shape (its signature and seals are fresh per answer, the nodes
    that answered each gateway's choice); others as they are."""
    if answer.status_code != 200:
        return answer.content
    return _shape(json.loads(answer.content))


def _shape(value: Any) -> Any:
    if isinstance(value, dict):  # which nodes answered is each gateway's own choice
        node = "encryptedPartial" in value
        return {k: "<node>" if node and k == "index" else _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, str) and value.startswith("0x"):
        return f"0x<{len(value) - 2} hex>"
    return value


def _same(fast: Service, slow: Service, method: str, path: str, **kw: Any) -> httpx.Response:
    answers = [httpx.request(method, g.url + path, timeout=30, **kw) for g in (fast, slow)]
    a, b = answers
    assert (a.status_code, _headers(a), _body(a)) == (b.status_code, _headers(b), _body(b)), (
        method,
        path,
        kw,
    )
    return a


def _metrics(service: Service) -> dict[str, float]:
    """The reads' request counters and every error counter (what the fast path records)."""
    text = httpx.get(service.url + "/metrics", timeout=10).text
    counted = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith("tkms_gateway_errors_total{") or (
            name.startswith("tkms_gateway_http_requests_total{") and "/secrets/{handle}" in name
        ):
            counted[name] = float(value)
    return counted


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_reads_answer_as_the_stack_does(
    net: GatewayNet, gateways: tuple[Service, Service], owner: RawClient
) -> None:
    fast, slow = gateways
    handle = owner.store(b"\x00" * 31 + b"\x07", "uint256")
    auth = owner.authorization()
    stranger = _stranger(net, fast.url).authorization()
    salt = "0x" + "ab" * 32
    unknown = handle[:-4] + ("0000" if not handle.endswith("0000") else "1111")
    cases: list[tuple[str, str, dict[str, Any]]] = []
    for version in ("v0", "v1"):
        base = f"/{version}/secrets/"
        cases += [
            ("GET", base + handle, {"headers": [("Authorization", auth)]}),
            (
                "GET",
                base + handle,
                {"headers": [("Authorization", auth)], "params": {"salt": salt}},
            ),
            ("GET", base + handle, {"headers": [("Authorization", stranger)]}),  # 403
            ("GET", base + handle, {}),  # 401: no authorization
            ("GET", base + handle, {"headers": [("Authorization", "EIP712 bm9wZQ==")]}),
            ("GET", base + handle, {"headers": [("Authorization", auth)], "params": {"salt": "1"}}),
            ("GET", base + handle, {"params": {"chain_id": "x"}}),
            ("GET", base + handle, {"params": {"chain_id": "999"}}),
            ("GET", base + "0x1234", {"headers": [("Authorization", auth)]}),  # bad handle
            ("GET", base + unknown, {"headers": [("Authorization", auth)]}),
            ("GET", base + handle + "/", {}),  # not the route: FastAPI's redirect on both
            ("HEAD", base + handle, {}),  # not the fast route's method
            ("POST", base + handle, {"content": b"{}"}),
            ("GET", base + handle, {"headers": [("Authorization", auth)], "content": b"x" * 10}),
        ]
    cases += [
        ("GET", f"/v1/secrets/{handle}", {"params": {"exclude": "1,2,3"}}),
        ("GET", f"/v1/secrets/{handle}", {"params": [("exclude", "1"), ("exclude", "2")]}),
        ("GET", f"/v1/secrets/{handle}", {"params": {"exclude": "x"}}),
    ]
    before = [_metrics(fast), _metrics(slow)]
    statuses = set()
    for method, path, kw in cases:
        for origin in ORIGINS:
            options = {**kw, "headers": [*kw.get("headers", []), *origin]}
            statuses.add(_same(fast, slow, method, path, **options).status_code)
    assert {200, 400, 401, 403, 404, 405} <= statuses
    counted = [_delta(b, _metrics(g)) for b, g in zip(before, gateways, strict=True)]
    assert counted[0] == counted[1] and counted[0]


def test_a_busy_gateway_answers_as_the_stack_does(
    gateways: tuple[Service, Service], owner: RawClient
) -> None:
    """503 gateway_busy with Retry-After, through CORS, from both (one read at a time)."""
    handle = owner.store(b"\x00" * 31 + b"\x09", "uint256")
    headers = [("Authorization", owner.authorization()), ("Origin", "https://dapp.example")]
    busy: list[httpx.Response] = []
    for gateway in gateways:
        url = f"{gateway.url}/v1/secrets/{handle}"
        with ThreadPoolExecutor(8) as pool:
            for _ in range(20):  # until two reads overlap (each asks four nodes)
                answers = list(
                    pool.map(lambda _, u=url: httpx.get(u, headers=headers, timeout=30), range(8))
                )
                refused = [a for a in answers if a.status_code == 503]
                if refused:
                    busy.append(refused[0])
                    break
    assert len(busy) == 2, "no read was ever refused as busy"
    a, b = busy
    assert (a.status_code, _headers(a), a.content) == (b.status_code, _headers(b), b.content)
    assert a.json()["error"] == "gateway_busy" and a.headers["retry-after"] == "1"
    assert a.headers["access-control-expose-headers"] == "Server-Timing, Retry-After"
