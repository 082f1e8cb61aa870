"""Chain access: the committed artifacts equal a fresh compile; the JSON-RPC client
against anvil and against broken endpoints (every failure is ChainUnavailable, fast)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.chainnet import CHAIN_ID, ChainNet, make_handle, start_chain
from tkms.chain import erc1271
from tkms.chain.artifacts import NAMES, load
from tkms.chain.contract import AsyncNoxCompute, NoxCompute
from tkms.chain.errors import ChainUnavailable, ReceiptTimeout, Reverted, RpcError
from tkms.chain.rpc import AsyncRpcClient, RpcClient

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "src" / "tkms" / "chain" / "artifacts"


@pytest.fixture(scope="module")
def net() -> Iterator[ChainNet]:
    chain = start_chain()
    yield chain
    chain.rpc.close()
    chain.anvil.stop()


# --- artifacts --------------------------------------------------------------------------


def test_committed_artifacts_equal_a_fresh_compile(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "Node.js is a prerequisite (README)"
    subprocess.run(
        [node, str(ROOT / "contracts" / "compile.mjs"), "--out", str(tmp_path)],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    assert (
        fresh
        == sorted(p.name for p in ARTIFACTS.glob("*.json"))
        == sorted(f"{n}.json" for n in NAMES)
    )
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (ARTIFACTS / name).read_bytes(), (
            f"{name} differs from a fresh compile: run `make contracts` and commit"
        )


def test_deployed_code_is_the_artifacts(net: ChainNet) -> None:
    assert net.rpc.get_code(net.nox.address) == load("NoxCompute").deployed_bytecode
    # DemoApp has an immutable (the NoxCompute address) patched in at deploy time
    assert len(net.rpc.get_code(net.app.address)) == len(load("DemoApp").deployed_bytecode)


# --- the client against anvil -------------------------------------------------------------


def test_basic_methods(net: ChainNet) -> None:
    assert net.rpc.chain_id() == CHAIN_ID
    assert net.rpc.get_code(net.alice.address) == b""
    nonce = net.rpc.get_transaction_count(net.alice.address)
    handle = net.registered(net.alice)
    assert net.rpc.get_transaction_count(net.alice.address) == nonce + 1
    logs = net.rpc.get_logs(address=net.nox.address, topics=[None, None, None, handle])
    assert [log.topics[0] for log in logs] == [net.nox.abi.event("Allowed").topic] * 2


def test_a_call_to_an_address_without_code_is_unavailable_not_false(net: ChainNet) -> None:
    nowhere = NoxCompute(net.rpc, net.stranger.address)
    with pytest.raises(ChainUnavailable, match="empty answer"):
        nowhere.is_viewer(make_handle(), net.alice.address)


def test_waiting_for_an_unknown_transaction_times_out(net: ChainNet) -> None:
    start = time.monotonic()
    with pytest.raises(ReceiptTimeout):
        net.rpc.wait_for_receipt(b"\x11" * 32, timeout=0.3)
    assert time.monotonic() - start < 2


def test_unknown_method_is_an_rpc_error(net: ChainNet) -> None:
    with pytest.raises(RpcError) as info:
        net.rpc.request("tkms_noSuchMethod")
    assert isinstance(info.value, ChainUnavailable)


def test_async_reads(net: ChainNet) -> None:
    handle = net.registered(net.alice)

    async def go() -> None:
        async with AsyncRpcClient(net.anvil.url) as rpc:
            nox = AsyncNoxCompute(rpc, net.nox.address)
            assert await nox.gateway() == net.gateway.address
            assert await nox.kms_public_key() == net.kms_public_key
            assert await nox.is_viewer(handle, net.alice.address)
            assert not await nox.is_viewer(handle, net.stranger.address)
            assert await nox.is_allowed(handle, net.app.address)
            assert not await nox.is_publicly_decryptable(handle)
            assert not await erc1271.is_contract_async(rpc, net.alice.address)
            with pytest.raises(Reverted, match="InvalidProofLength"):
                await nox.validate_decryption_proof(handle, b"")

    asyncio.run(go())


# --- broken endpoints ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_dead_rpc_url_raises_chain_unavailable_quickly() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    nox = NoxCompute(RpcClient(url, timeout=1.0, connect_timeout=0.5), b"\x01" * 20)
    start = time.monotonic()
    with pytest.raises(ChainUnavailable, match="unreachable"):
        nox.is_viewer(make_handle(), b"\x02" * 20)
    with pytest.raises(ChainUnavailable):
        nox.is_publicly_decryptable(make_handle())
    with pytest.raises(ChainUnavailable):
        erc1271.is_valid_signature(nox.rpc, b"\x01" * 20, bytes(32), bytes(65))
    assert time.monotonic() - start < 1.5

    async def go() -> None:
        async with AsyncRpcClient(url, timeout=1.0, connect_timeout=0.5) as rpc:
            with pytest.raises(ChainUnavailable):
                await AsyncNoxCompute(rpc, b"\x01" * 20).is_viewer(make_handle(), b"\x02" * 20)

    asyncio.run(go())


def test_a_silent_rpc_times_out() -> None:
    # A listening socket that never accepts: the connection completes, no answer ever comes.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ChainUnavailable, match="timed out"):
            NoxCompute(RpcClient(url, timeout=0.4), b"\x01" * 20).is_viewer(
                make_handle(), b"\x02" * 20
            )

        async def go() -> None:
            async with AsyncRpcClient(url, timeout=0.4) as rpc:
                with pytest.raises(ChainUnavailable, match="timed out"):
                    await rpc.chain_id()

        asyncio.run(go())
        assert time.monotonic() - start < 2.5


class _Stub(BaseHTTPRequestHandler):
    """Answers each path with one kind of broken JSON-RPC answer."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        request = json.loads(self.rfile.read(length))
        status, body = 200, b""
        if self.path == "/http500":
            status, body = 500, b"oops"
        elif self.path == "/notjson":
            body = b"<html>"
        elif self.path == "/wrongid":
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"] + 1, "result": "0x1"}).encode()
        elif self.path == "/huge":
            body = json.dumps(
                {"jsonrpc": "2.0", "id": request["id"], "result": "0x" + "00" * 40000}
            ).encode()
        elif self.path == "/badbool":  # a bool word of 2: not an answer to trust
            word = "0x" + "00" * 31 + "02"
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": word}).encode()
        elif self.path == "/limit":
            error = {"code": -32005, "message": "rate limited"}
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/http500", "HTTP 500"),
        ("/notjson", "not JSON"),
        ("/wrongid", "not this request"),
        ("/huge", "larger than"),
        ("/badbool", "does not decode"),
        ("/limit", "rate limited"),
    ],
)
def test_broken_answers_are_chain_unavailable(stub: str, path: str, message: str) -> None:
    rpc = RpcClient(stub + path, timeout=2.0, max_response_bytes=64 * 1024)
    with pytest.raises(ChainUnavailable, match=message):
        NoxCompute(rpc, b"\x01" * 20).is_viewer(make_handle(), b"\x02" * 20)

    async def go() -> None:
        async with AsyncRpcClient(stub + path, timeout=2.0, max_response_bytes=64 * 1024) as a:
            with pytest.raises(ChainUnavailable, match=message):
                await AsyncNoxCompute(a, b"\x01" * 20).is_viewer(make_handle(), b"\x02" * 20)

    asyncio.run(go())
