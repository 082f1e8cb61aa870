"""The attacks of the hardening issue on the HTTP layer, over raw sockets to real processes.

A node and a gateway in front of it run with short timeouts (so the suite
stays fast) and otherwise default limits (8 KiB request line, 32 KiB of
headers, 100 header fields, 512 connections): a 200 MB header and a 64 MB URL
are refused with the server's memory flat and ``/health`` answering; slow
headers and stalled bodies get a 408; 2,000 idle connections are closed after
the idle timeout while real requests are served; every refusal, a malformed
request and a refused CORS preflight are the JSON error shape.
"""

from __future__ import annotations

import contextlib
import json
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import single_node_gateway
from tests.procs import Service, free_port, running
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import to_hex
from tkms.dkg.simulation import run_in_process
from tkms.node.config import dkg_round_bytes
from tkms.protocol.delegation import sign_delegate_request

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
IDLE_TIMEOUT = 2.0
MB = 1024 * 1024
BURST_TIMEOUT = 15.0  # a request behind 2000 connections in the accept queue, on a loaded box


def _limits(prefix: str) -> dict[str, str]:
    return {
        f"{prefix}SERVER__HTTP__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        f"{prefix}SERVER__HTTP__BODY_TIMEOUT": str(BODY_TIMEOUT),
        f"{prefix}SERVER__HTTP__IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    }


@pytest.fixture(scope="module")
def node(node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    port = free_port()
    log = Path(tmp_path_factory.mktemp("limits-node")) / "node.log"
    env = {**node_keys.env(port), **_limits("TKMS_NODE_")}
    with running(["node"], env, log, port) as service:
        # The descriptor limit of the report: 1,100 idle connections used to lock it out.
        resource.prlimit(service.process.pid, resource.RLIMIT_NOFILE, (1024, 1024))
        yield service


@pytest.fixture(scope="module")
def gateway(
    node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    root = Path(tmp_path_factory.mktemp("limits-gateway"))
    with single_node_gateway(node, node_keys, root, **_limits("TKMS_GATEWAY_")) as service:
        yield service


@pytest.fixture(params=["node", "gateway"])
def service(request: pytest.FixtureRequest) -> Service:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def rss_bytes(service: Service) -> int:
    for line in Path(f"/proc/{service.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def address(service: Service) -> tuple[str, int]:
    host, port = service.url.removeprefix("http://").split(":")
    return host, int(port)


def healthy(service: Service, timeout: float = 3.0) -> bool:
    return httpx.get(service.url + "/health", timeout=timeout).json() == {"status": "ok"}


def exchange(service: Service, raw: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str]]:
    """Send ``raw`` at once, read the answer to EOF: its status and JSON body."""
    with socket.create_connection(address(service), timeout=timeout) as sock:
        # Refused before all of it was sent, the answer is still there to read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    assert headers["content-type"] == "application/json", data[:300]
    assert headers["connection"] == "close"
    answer: dict[str, str] = json.loads(body)
    assert set(answer) == {"error", "message"}
    return int(lines[0].split()[1]), answer


def stream_attack(service: Service, prefix: bytes, total: int) -> tuple[int, int, list[bool]]:
    """Send ``prefix`` then ``total`` bytes of ``a``; ``/health`` is asked meanwhile.

    Returns the bytes the server let us send before it closed the connection,
    the RSS growth of the server process, and the health answers seen.
    """
    before = rss_bytes(service)
    sent = 0
    peak = before
    done = threading.Event()

    def attack() -> None:
        nonlocal sent
        chunk = b"a" * (256 * 1024)
        with socket.create_connection(address(service), timeout=10.0) as sock:
            try:
                sock.sendall(prefix)
                while sent < total:
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:  # reset or broken pipe: the server closed it
                pass
        done.set()

    thread = threading.Thread(target=attack)
    thread.start()
    health: list[bool] = []
    while not done.is_set():
        health.append(healthy(service))
        peak = max(peak, rss_bytes(service))
        time.sleep(0.02)
    thread.join()
    health.append(healthy(service))
    peak = max(peak, rss_bytes(service))
    return sent, peak - before, health


# --- item 2: the request line and the headers ----------------------------------------


def test_a_200_mb_header_is_refused_with_memory_flat(service: Service) -> None:
    prefix = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
    sent, growth, health = stream_attack(service, prefix, 200 * MB)
    assert sent < 200 * MB, "the server read the whole header"
    assert growth < 20 * MB, f"RSS grew by {growth / MB:.1f} MB"
    assert health and all(health)


def test_a_64_mb_url_is_refused_with_memory_flat(service: Service) -> None:
    sent, growth, health = stream_attack(service, b"GET /", 64 * MB)
    assert sent < 64 * MB, "the server read the whole URL"
    assert growth < 20 * MB, f"RSS grew by {growth / MB:.1f} MB"
    assert health and all(health)


def test_oversized_parts_get_their_json_status(service: Service) -> None:
    long_url = b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert exchange(service, long_url)[0] == 414
    big_header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 50_000 + b"\r\n\r\n"
    status, answer = exchange(service, big_header)
    assert (status, answer["error"]) == (431, "headers_too_large")
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(10_000))
    status, answer = exchange(service, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431  # 10,000 headers: too many, and too many bytes
    hundred_one = b"".join(b"X-H%d: v\r\n" % i for i in range(100))
    status, answer = exchange(
        service, b"GET /health HTTP/1.1\r\nHost: x\r\n" + hundred_one + b"\r\n"
    )
    assert (status, answer["error"]) == (431, "too_many_headers")
    # Just under the limits still works.
    assert httpx.get(service.url + "/health?" + "a" * 7000, headers={"X": "y" * 30_000}).is_success
    assert healthy(service)


def test_malformed_http_is_a_json_400(service: Service) -> None:
    status, answer = exchange(service, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    assert (status, answer["error"]) == (400, "bad_request")
    status, answer = exchange(service, b"\x00\x01\x02 garbage\r\n\r\n")
    assert (status, answer["error"]) == (400, "bad_request")


# --- item 3: timeouts, connections, the DKG body -------------------------------------


def test_partial_headers_time_out_with_a_408(service: Service) -> None:
    start = time.monotonic()
    status, answer = exchange(service, b"GET /health HTTP/1.1\r\nHost: x\r\n")
    assert (status, answer["error"]) == (408, "request_timeout")
    assert time.monotonic() - start < HEADER_TIMEOUT + 5


def test_a_trickled_header_does_not_keep_the_connection(service: Service) -> None:
    with socket.create_connection(address(service), timeout=10.0) as sock:
        start = time.monotonic()
        try:
            for _ in range(40):
                sock.sendall(b"GET /health HTTP/1.1\r\n" if _ == 0 else b"X: y\r\n")
                time.sleep(0.25)
        except OSError:
            pass
        data = sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - start < HEADER_TIMEOUT + 5


def test_a_stalled_body_times_out_with_a_408(service: Service) -> None:
    path = b"/v0/secrets" if "gateway" in service.process.args else b"/v0/delegate?chain_id=1"
    raw = (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"a":'
    )
    start = time.monotonic()
    status, answer = exchange(service, raw)
    assert (status, answer["error"]) == (408, "request_timeout")
    assert time.monotonic() - start < BODY_TIMEOUT + 5
    assert healthy(service)


def _delegate_request(keys: NodeKeys) -> tuple[dict[str, str], bytes]:
    ephemeral = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
    target = to_hex(rsa.public_key_der(rsa.generate_private_key()))
    sig = sign_delegate_request(keys.gateway, CHAIN_ID, ephemeral, target)
    body = json.dumps({"ephemeralPubKey": ephemeral, "targetPubKey": target}).encode()
    return {"Content-Type": "application/json", "Authorization": f"Bearer {sig}"}, body


def _raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def test_2000_idle_connections_are_closed_and_real_requests_served(
    service: Service, node: Service, node_keys: NodeKeys
) -> None:
    _raise_own_fd_limit(4096)
    headers, body = _delegate_request(node_keys)
    idle: list[socket.socket] = []
    try:
        for _ in range(2000):
            idle.append(socket.create_connection(address(service), timeout=5.0))
        opened = time.monotonic()
        # Served while they are open: the health check, and a real delegation by the node.
        # The check waits in the accept queue behind the 2000 (the CI's loaded machine
        # took over 3 s to reach it): what counts is that it is served, not how soon.
        assert healthy(service, timeout=BURST_TIMEOUT)
        if service is node:
            answer = httpx.post(
                node.url + "/v0/delegate", params={"chain_id": CHAIN_ID}, headers=headers,
                content=body, timeout=BURST_TIMEOUT,
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
        else:
            secret = {
                "value": "0x2a",
                "solidityType": "uint8",
                "owner": to_hex(bytes(20)),
                "applicationContract": to_hex(bytes(20)),
            }
            answer = httpx.post(service.url + "/v0/secrets", json=secret, timeout=BURST_TIMEOUT)
            assert answer.status_code == 200, answer.text
        assert healthy(service, timeout=BURST_TIMEOUT)
        # Every one of them is closed by the server (displaced, or at its idle timeout).
        selector = selectors.DefaultSelector()
        for sock in idle:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        open_ = len(idle)
        deadline = opened + IDLE_TIMEOUT + 20
        while open_ and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(1024) == b""  # closed without an answer
                selector.unregister(sock)
                open_ -= 1
        selector.close()
        assert open_ == 0, f"{open_} idle connections still open"
        assert time.monotonic() - opened >= IDLE_TIMEOUT - 0.5  # the last ones waited for it
        assert healthy(service)
    finally:
        for sock in idle:
            sock.close()


def test_a_keep_alive_connection_is_closed_after_its_idle_timeout(service: Service) -> None:
    with socket.create_connection(address(service), timeout=10.0) as sock:
        for _ in range(2):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while not data.endswith(b'{"status":"ok"}'):
                chunk = sock.recv(65536)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ")
        start = time.monotonic()
        assert sock.recv(65536) == b""
        assert IDLE_TIMEOUT - 0.5 < time.monotonic() - start < IDLE_TIMEOUT + 5


def test_the_dkg_body_limit_fits_the_committee(node: Service) -> None:
    limit = dkg_round_bytes(64)
    assert limit < 2 * MB
    too_big = httpx.post(
        node.url + "/v1/dkg/round",
        content=b"{" + b" " * (limit + 1) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    # The bound holds what a real ceremony's largest round (all n deals) needs.
    for n in (4, 12):
        sim = run_in_process(n, n)
        _, deal_bytes = sim.traffic.by_kind["deal"]
        assert deal_bytes * 1.1 < dkg_round_bytes(n)


def test_a_refused_cors_preflight_is_json(gateway: Service) -> None:
    answer = httpx.options(
        gateway.url + "/v0/secrets",
        headers={"Origin": "https://dapp.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "cors_refused"
    ok = httpx.options(
        gateway.url + "/v0/secrets",
        headers={"Origin": "https://dapp.example", "Access-Control-Request-Method": "POST"},
    )
    assert ok.status_code == 200


def test_limits_hold_with_several_workers(node_keys: NodeKeys, tmp_path: Path) -> None:
    port = free_port()
    env = {**node_keys.env(port), "TKMS_NODE_SERVER__WORKERS": "2", **_limits("TKMS_NODE_")}
    with running(["node"], env, tmp_path / "node.log", port) as workers:
        long_url = b"GET /health?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert exchange(workers, long_url)[0] == 414
        assert exchange(workers, b"GET /health HTTP/1.1\r\nHost: x\r\n")[0] == 408
        assert healthy(workers)


def test_pipelined_requests_are_all_answered(service: Service) -> None:
    with socket.create_connection(address(service), timeout=10.0) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        data = b""
        while data.count(b'{"status":"ok"}') < 3:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.count(b"HTTP/1.1 200 ") == 3
