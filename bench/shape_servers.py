"""The cheapest processes of a decryption's shape, for bench/shape_floor.py.

    python bench/shape_servers.py node PORT CONFIG_JSON
    python bench/shape_servers.py gateway PORT CONFIG_JSON

A node and a gateway here are bare asyncio protocols on uvloop with httptools'
parser (the fastest parts of our stack) that do the cryptography a decryption
cannot skip and the JSON and hex of their messages, and nothing else: no limits,
no error shapes, no audit, no metrics, no ACL, no check but the signatures and
the proofs. So what a tkms process costs above one of these is our code, and
what these cost above the crypto floor is the shape itself on this machine:
the processes, the messages between them and a process's wake-up for each.
Not a server to deploy: it answers nothing but the benchmark's own requests.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
import uvloop

from tkms.crypto import curve, dleq, rsa
from tkms.crypto.wallet import Wallet, keccak256, recover_address

_TASKS: set[asyncio.Future[None]] = set()
Respond = Callable[[bytes, dict[bytes, bytes], bytes], "bytes | Awaitable[bytes]"]


def answer(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(body) + body


def request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ServerConnection(asyncio.Protocol):
    """One keep-alive connection; a request at a time (the benchmark never pipelines)."""

    def __init__(self, respond: Respond) -> None:
        self._respond = respond
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport  # uvloop's is not an asyncio.Transport subclass
        self._parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        out = self._respond(self._url, self._headers, b"".join(self._body))
        if isinstance(out, bytes):
            self._transport.write(answer(out))
        else:
            task = asyncio.ensure_future(self._later(out))
            _TASKS.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(_TASKS.discard)

    async def _later(self, out: Awaitable[bytes]) -> None:
        self._transport.write(answer(await out))


class ClientConnection(asyncio.Protocol):
    """A kept connection to a server; ``exchange`` sends one request and awaits its body."""

    def __init__(self) -> None:
        self._body: list[bytes] = []
        self._done: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport: Any = transport
        self._parser = httptools.HttpResponseParser(self)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body, self._body = b"".join(self._body), []
        if self._parser.get_status_code() != 200:
            raise SystemExit(f"shape server answered {self._parser.get_status_code()}: {body!r}")
        assert self._done is not None
        self._done.set_result(body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(ConnectionError("the connection closed"))

    async def exchange(self, data: bytes) -> bytes:
        self._done = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return await self._done


class Pool:
    """Kept connections to one server, one per request in flight."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._idle: list[ClientConnection] = []

    async def exchange(self, data: bytes) -> bytes:
        if self._idle:
            connection = self._idle.pop()
        else:
            loop = asyncio.get_running_loop()
            _, connection = await loop.create_connection(ClientConnection, "127.0.0.1", self._port)
        body = await connection.exchange(data)
        self._idle.append(connection)
        return body


# --- a node ---------------------------------------------------------------------------


def node(config: dict[str, Any]) -> Respond:
    """A partial (``/v1/…``: S_i, its proof, the RSA seal, the signature) or a v0
    delegation (``/v0/…``: the request's recovery, x(s·K), the seal, the signature)."""
    index = config["index"]
    prover = dleq.Prover(int(config["share"], 16))
    secret = int(config["share"], 16)
    wallet = Wallet(bytes.fromhex(config["wallet"]))
    targets: dict[str, rsa.RSAPublicKey] = {}  # a real node keeps parsed keys too

    def target(hex_der: str) -> rsa.RSAPublicKey:
        key = targets.get(hex_der)
        if key is None:
            key = targets[hex_der] = rsa.load_public_key(bytes.fromhex(hex_der))
        return key

    def respond(url: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        fields = json.loads(body)
        if url.startswith(b"/v0/"):
            recover_address(keccak256(body), bytes.fromhex(headers[b"authorization"][9:].decode()))
            ephemeral = curve.parse_point(bytes.fromhex(fields["ephemeralPubKey"][2:]))
            sealed = rsa.encrypt(
                target(fields["targetPubKey"][2:]), curve.mul_secret_x(ephemeral, secret)
            )
            proof = wallet.sign_digest(keccak256(sealed))
            return json.dumps(
                {"encryptedSharedSecret": "0x" + sealed.hex(), "proof": "0x" + proof.hex()}
            ).encode()
        s_enc, proof = prover.partial(curve.parse_point(bytes.fromhex(fields["K"])))
        sealed = rsa.encrypt(target(fields["target"]), s_enc + proof)
        signature = wallet.sign_digest(keccak256(sealed))
        return json.dumps(
            {"index": index, "sealed": sealed.hex(), "signature": signature.hex()}
        ).encode()

    return respond


# --- a gateway ------------------------------------------------------------------------


def gateway(config: dict[str, Any]) -> Respond:
    """A read: the same request to ``asked`` nodes, each answer's signature checked."""
    pools = {int(i): Pool(port) for i, port in config["nodes"].items()}
    addresses = {int(i): bytes.fromhex(a) for i, a in config["addresses"].items()}
    asked = sorted(pools)[: config["asked"]]
    record = config["record"]

    async def ask(i: int, data: bytes) -> dict[str, Any]:
        partial: dict[str, Any] = json.loads(await pools[i].exchange(data))
        signer = recover_address(
            keccak256(bytes.fromhex(partial["sealed"])), bytes.fromhex(partial["signature"])
        )
        if signer != addresses[i]:
            raise SystemExit(f"node {i}'s answer is not its signature")
        return partial

    async def read(headers: dict[bytes, bytes]) -> bytes:
        authorization = headers[b"authorization"].decode()
        body = json.dumps(
            {"K": record["K"], "target": authorization[:-130], "token": authorization}
        ).encode()
        data = request("POST", "/v1/delegate", {"content-type": "application/json"}, body)
        partials = await asyncio.gather(*(ask(i, data) for i in asked))
        return json.dumps(record | {"partials": partials}).encode()

    def respond(url: bytes, headers: dict[bytes, bytes], body: bytes) -> Awaitable[bytes]:
        return read(headers)

    return respond


def serve(role: str, port: int, config: dict[str, Any]) -> None:
    respond = node(config) if role == "node" else gateway(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ServerConnection(respond), "127.0.0.1", port, backlog=512
        )
        print("ready", flush=True)
        await server.serve_forever()

    uvloop.run(main())


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("node", "gateway"):
        raise SystemExit("usage: shape_servers.py node|gateway PORT CONFIG_JSON")
    serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
