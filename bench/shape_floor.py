"""The floor of a decryption's shape: what issue 13's targets leave to our code.

    .venv/bin/python bench/shape_floor.py [--rounds 400] [--seconds 10] [--markdown]

The issue's targets are ratios to the crypto floor, the primitives measured in
a tight loop in one warm process. A decryption through the gateway also has a
shape: seven processes (the client, the gateway, five nodes, t + spare of them
asked), ten HTTP messages on loopback, and each process woken from its event
loop for its part. This bench builds the cheapest system of that shape our stack
allows (bench/shape_servers.py: bare asyncio protocols on uvloop and httptools
doing only the cryptography, the messages' JSON and hex, and the signature and
proof checks; the client a raw socket) and measures it as bench/e2e.py and
bench/delegate.py measure tkms, in the same run as the floor:

1. the floors: the client's, a partial's, a v0 delegation's (bench/e2e_floors.py
   and the same five primitives as bench/delegate.py's constant-time floor);
2. the shape's decryption: CPU of all its processes per decryption, one user
   and 16 concurrent users (rate, p99), against the issue's first two targets;
3. one node over HTTP (wrk -t 1 -c 32, as bench/delegate.py): the bare node's
   CPU per request for /v0/delegate and for a partial, and tkms's node for
   /v0/delegate in the same run, against the third target.

What the shape costs above the floor no code of ours can remove; what tkms
costs above the shape is ours. A target below the shape's own figure cannot be
met by any implementation of this design in this stack on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from bench.common import (
    child_pid,
    load_summary,
    measure,
    percentile,
    print_table,
    process_tree_cpu,
)
from bench.delegate_fixture import Fixture
from bench.devnets import devnet, node_seconds
from bench.e2e_floors import floors
from bench.e2e_modes import node_pids, nodes_cpu
from bench.http_load import WRK_LUA, NodeProcess, run_wrk
from bench.servers import Server
from bench.shape_servers import ClientConnection, request
from bench.targets import CPU_PER_DECRYPT, SERVER_CPU, USERS_P99, USERS_RATE, verdict
from tkms.client import Client
from tkms.crypto import curve, dleq, ecies, rsa, shamir
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet, keccak256, recover_address
from tkms.devnet.manifest import DevnetManifest
from tkms.devnet.processes import free_port

T, N, SPARE = 3, 5, 1
USERS = 16
CORES = os.cpu_count() or 1
SERVERS = Path(__file__).resolve().with_name("shape_servers.py")


# --- the shape's processes --------------------------------------------------------------


def start(role: str, config: dict[str, Any]) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVERS), role, str(port), json.dumps(config)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"the shape's {role} did not start")
    return proc, port


@contextmanager
def stopping(procs: list[subprocess.Popen[str]]) -> Iterator[None]:
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


class Committee:
    """A dealt key, five wallets, one record encrypted to ``Y``."""

    def __init__(self) -> None:
        secret = curve.random_scalar()
        self.shares = shamir.deal_shares(secret, T, N)
        self.wallets = {s.index: Wallet.generate() for s in self.shares}
        self.keys = {s.index: curve.base_mul(s.value) for s in self.shares}
        self.plaintext = os.urandom(32)
        record = ecies.encrypt(curve.base_mul(secret), self.plaintext)
        self.record = {
            "K": record.ephemeral_pubkey.hex(),
            "iv": record.iv.hex(),
            "ciphertext": record.ciphertext.hex(),
        }

    def node_config(self, index: int) -> dict[str, Any]:
        share = next(s for s in self.shares if s.index == index)
        return {
            "index": index,
            "share": f"{share.value:064x}",
            "wallet": self.wallets[index].private_key_bytes().hex(),
        }


class User:
    """The client's side of one decryption: its RSA key, its request, the answer's opening."""

    def __init__(self, committee: Committee) -> None:
        self.committee = committee
        self.key = rsa.generate_private_key()
        # the target key and a signature's worth of token, as a real authorization carries
        authorization = rsa.public_key_der(self.key).hex() + "ab" * 65
        self.request = request("GET", "/v1/secrets/h", {"authorization": authorization})

    def open(self, body: bytes) -> None:
        c = self.committee
        answer = json.loads(body)
        K = curve.parse_point(bytes.fromhex(answer["K"]))
        partials = answer["partials"]
        for p in partials:  # every answer's node signature, as the SDK checks them
            signer = recover_address(
                keccak256(bytes.fromhex(p["sealed"])), bytes.fromhex(p["signature"])
            )
            if signer != c.wallets[p["index"]].address:
                raise SystemExit("a partial's signature is not its node's")
        points = {}
        for p in partials[:T]:
            payload = rsa.decrypt(self.key, bytes.fromhex(p["sealed"]))
            s_i = curve.parse_point(payload[:33])
            if not dleq.verify(c.keys[p["index"]], K, s_i, payload[33:]):
                raise SystemExit("a partial's proof does not hold")
            points[p["index"]] = s_i
        shared_x = curve.point_x(shamir.combine_points(points))
        plaintext = ecies.decrypt_with_shared_x(
            shared_x, bytes.fromhex(answer["iv"]), bytes.fromhex(answer["ciphertext"])
        )
        if plaintext != c.plaintext:
            raise SystemExit("the shape's decryption is wrong")


def read_answer(sock: socket.socket, buffer: bytearray) -> bytes:
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        buffer += sock.recv(65536)
    head = bytes(buffer[:end]).lower()
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(buffer) < end + 4 + length:
        buffer += sock.recv(65536)
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return body


def cpu_of(procs: list[subprocess.Popen[str]]) -> float:
    return sum(cpu_parts(procs))


def cpu_parts(procs: list[subprocess.Popen[str]]) -> tuple[float, float, float]:
    """CPU seconds of (this process: the client, the gateway ``procs[0]``, the nodes)."""
    gateway, *nodes = (process_tree_cpu(p.pid) or 0.0 for p in procs)
    return time.process_time(), gateway, sum(nodes)


def sequential(
    user: User, port: int, rounds: int, procs: list[subprocess.Popen[str]]
) -> dict[str, float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = bytearray()
    try:
        for _ in range(20):  # warm the connections, the caches, the parsed keys
            sock.sendall(user.request)
            user.open(read_answer(sock, buffer))
        walls = []
        before = cpu_parts(procs)
        for _ in range(rounds):
            start = time.perf_counter()
            sock.sendall(user.request)
            user.open(read_answer(sock, buffer))
            walls.append(time.perf_counter() - start)
        client, gateway, nodes = (
            (b - a) / rounds for a, b in zip(before, cpu_parts(procs), strict=True)
        )
    finally:
        sock.close()
    walls.sort()
    return {
        "cpu": client + gateway + nodes,
        "client": client,
        "gateway": gateway,
        "partial": nodes / (T + SPARE),
        "p50": percentile(walls, 50),
        "p99": percentile(walls, 99),
    }


def concurrent(
    users: list[User], port: int, seconds: float, procs: list[subprocess.Popen[str]]
) -> dict[str, float]:
    async def run() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        connections = []
        for _ in users:
            _, connection = await loop.create_connection(ClientConnection, "127.0.0.1", port)
            connections.append(connection)
        for user, connection in zip(users, connections, strict=True):  # warm
            user.open(await connection.exchange(user.request))
        walls: list[float] = []
        stop = time.perf_counter() + seconds

        async def one(user: User, connection: ClientConnection) -> None:
            while (start := time.perf_counter()) < stop:
                user.open(await connection.exchange(user.request))
                walls.append(time.perf_counter() - start)

        before, began = cpu_of(procs), time.perf_counter()
        await asyncio.gather(*(one(u, c) for u, c in zip(users, connections, strict=True)))
        elapsed, cpu = time.perf_counter() - began, cpu_of(procs) - before
        walls.sort()
        return {
            "rate": len(walls) / elapsed,
            "cpu": cpu / len(walls),
            "p50": percentile(walls, 50),
            "p99": percentile(walls, 99),
        }

    return uvloop.run(run())


def tkms_sequential(rounds: int) -> dict[str, float]:
    """The same figures on ``tkms devnet`` (chain ACL, nodes in user mode), as bench/e2e.py."""
    with devnet("chain") as (manifest, pid):
        gateway_pid, nodes = child_pid(pid, "gateway"), node_pids(pid)
        assert gateway_pid is not None
        with Client.from_devnet(manifest) as owner:
            handle = owner.encrypt(10**18, "uint256")
            owner.register_on_chain(handle)
            for _ in range(20):
                owner.decrypt(handle)

            def parts() -> tuple[float, ...]:
                everything = process_tree_cpu(pid) or 0.0
                gateway, at_nodes = process_tree_cpu(gateway_pid) or 0.0, nodes_cpu(nodes)
                rest = everything - gateway - at_nodes
                return time.process_time(), gateway, at_nodes, rest

            served = node_seconds(DevnetManifest.load(manifest))[1]
            before, walls = parts(), []
            for _ in range(rounds):
                start = time.perf_counter()
                owner.decrypt(handle)
                walls.append(time.perf_counter() - start)
            client, gateway, at_nodes, rest = (
                (b - a) / rounds for a, b in zip(before, parts(), strict=True)
            )
            partials = (node_seconds(DevnetManifest.load(manifest))[1] - served) / rounds
    walls.sort()
    return {
        "cpu": client + gateway + at_nodes + rest,
        "client": client,
        "gateway": gateway,
        "partial": at_nodes / partials,
        "rest": rest,
        "p50": percentile(walls, 50),
        "p99": percentile(walls, 99),
    }


# --- one node over HTTP -------------------------------------------------------------------


def v0_floor(fx: Fixture) -> Callable[[], object]:
    """bench/delegate.py's constant-time floor: parse K, x(s·K), the seal, recover, sign."""
    target = rsa.load_public_key(parse_hex(fx.target_hex))
    secret = int.from_bytes(fx.kms_secret, "big")
    digest, signature = os.urandom(32), parse_hex(fx.signature_hex)

    def call() -> object:
        k = curve.parse_point(parse_hex(fx.ephemeral_hex))
        sealed = rsa.encrypt(target, curve.mul_secret_x(k, secret))
        recover_address(digest, signature)
        return fx.node.sign_digest(keccak256(sealed))

    return call


def wrk_cpu(wrk: str, script: Path, url: str, pid: int, seconds: float) -> float:
    """Server CPU µs per request over one wrk run, after a warm-up."""
    run_wrk(wrk, script, url, 1.0, 32, 1)
    before = process_tree_cpu(pid) or 0.0
    result, _ = run_wrk(wrk, script, url, seconds, 32, 1)
    if result["non200"] or any(result[k] for k in ("connect", "read", "write", "timeout")):
        raise SystemExit(f"wrk saw errors: {result}")
    return ((process_tree_cpu(pid) or 0.0) - before) / result["requests"] * 1e6


def node_rows(
    committee: Committee, user: User, args: argparse.Namespace
) -> tuple[list[list[str]], list[list[str]]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found (apt-get install wrk): table 3 is skipped\n")
        return [], []
    fx = Fixture.create()
    partial_floor = floors(T)["node"] * 1e6
    floor_v0 = measure(v0_floor(fx), clock=time.process_time).median_us
    seconds = args.http_seconds
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tkms-shape-") as tmp:
        v0_lua, v1_lua = Path(tmp) / "v0.lua", Path(tmp) / "v1.lua"
        v0_lua.write_text(WRK_LUA.format(body=fx.body.decode(), authorization=fx.authorization))
        v1_body = json.dumps(
            {"K": committee.record["K"], "target": rsa.public_key_der(user.key).hex()}
        )
        v1_lua.write_text(WRK_LUA.format(body=v1_body, authorization="none"))
        v0_path = fx.path(to_hex(bytes(32)))
        bare_v0, v0_port = start(
            "node", {"index": 1, "share": fx.kms_secret.hex(), "wallet": fx.node_key.hex()}
        )
        stack.enter_context(stopping([bare_v0]))
        bare_v1, v1_port = start("node", committee.node_config(1))
        stack.enter_context(stopping([bare_v1]))
        real = NodeProcess(fx, 1)
        stack.callback(real.stop)
        real.wait_ready()
        port = free_port()  # uvicorn (tkms.web.serve's options) around a raw ASGI callable
        env = fx.env(port) | {"BENCH_SHARE": f"{curve.random_scalar():x}"}
        bare_asgi = Server("uvicorn", "bare", env, port)
        stack.callback(bare_asgi.stop)
        bare_asgi.wait_ready(fx)
        cases = {
            "bare v0": (f"http://127.0.0.1:{v0_port}{v0_path}", bare_v0.pid, v0_lua),
            "uvicorn v0": (bare_asgi.url + v0_path, bare_asgi.proc.pid, v0_lua),
            "tkms v0": (real.url + v0_path, real.proc.pid, v0_lua),
            "bare partial": (f"http://127.0.0.1:{v1_port}/v1/delegate", bare_v1.pid, v1_lua),
        }
        figures: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.http_rounds):  # interleaved: foreign load hits them alike
            for name, (url, pid, lua) in cases.items():
                figures[name].append(wrk_cpu(wrk, lua, url, pid, seconds))
    floor_of = {"bare partial": partial_floor} | dict.fromkeys(
        ("bare v0", "uvicorn v0", "tkms v0"), floor_v0
    )
    what = {
        "bare v0": "the shape's node, /v0/delegate",
        "uvicorn v0": "uvicorn + a raw ASGI callable, /v0/delegate",
        "tkms v0": "tkms node, /v0/delegate",
        "bare partial": "the shape's node, a partial",
    }
    rows, targets = [], []
    for name, runs in figures.items():
        median = statistics.median(runs)
        ratio = median / floor_of[name]
        rows.append([what[name], f"{median:,.0f}", ", ".join(f"{r:,.0f}" for r in runs),
                     f"{floor_of[name]:,.0f}", f"{ratio:.2f}×"])  # fmt: skip
        if name.startswith("bare"):
            targets.append([f"{what[name]}: server CPU ≤ {SERVER_CPU}× floor",
                            f"{median:,.0f} µs vs {floor_of[name]:,.0f} µs", f"{ratio:.2f}×",
                            verdict(ratio <= SERVER_CPU)])  # fmt: skip
    return rows, targets


# --- the report ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400, help="sequential decryptions")
    parser.add_argument("--seconds", type=float, default=10.0, help="the 16 users' window")
    parser.add_argument("--http-rounds", type=int, default=3, help="wrk runs per server")
    parser.add_argument("--http-seconds", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument(
        "--with-tkms", action="store_true", help="also tkms devnet's figures, in the same run"
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    md = args.markdown
    print(f"# the floor of a decryption's shape — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {load_summary()}\n")

    committee = Committee()
    users = [User(committee) for _ in range(USERS)]
    nodes = {i: start("node", committee.node_config(i)) for i in committee.wallets}
    gateway, port = start("gateway", {
        "nodes": {i: p for i, (_, p) in nodes.items()},
        "addresses": {i: w.address.hex() for i, w in committee.wallets.items()},
        "asked": T + SPARE,
        "record": committee.record,
    })  # fmt: skip
    procs = [gateway, *(p for p, _ in nodes.values())]
    with stopping(procs):
        seq = sequential(users[0], port, args.rounds, procs)
        many = concurrent(users, port, args.seconds, procs)
    real = tkms_sequential(args.rounds) if args.with_tkms else None
    floor = floors(T)
    cpu_floor = floor["client"] + (T + SPARE) * floor["node"]
    node_table, node_targets = node_rows(committee, users[0], args)

    print_table(
        "1. The crypto floor (CPU of one process, warm, median)",
        ["primitives", "µs"],
        [["the client's (t RSA opens, t DLEQ checks, combination, HKDF, AES-GCM)",
          f"{floor['client'] * 1e6:,.0f}"],
         ["one partial's (S_i, the proof's nonce terms, the RSA seal, the signature)",
          f"{floor['node'] * 1e6:,.0f}"],
         [f"a decryption's: client + {T + SPARE} partials", f"{cpu_floor * 1e6:,.0f}"]],
        markdown=md,
    )  # fmt: skip
    shape_rows = [
        ("CPU of all processes per decryption (ms)", "cpu", cpu_floor),
        ("  the client's (ms)", "client", floor["client"]),
        ("  the gateway's (ms)", "gateway", None),
        (f"  a node's per partial ({T + SPARE} a decryption) (ms)", "partial", floor["node"]),
        ("  anvil and the devnet's supervisor (ms)", "rest", None),
        ("p50 (ms)", "p50", None),
        ("p99 (ms)", "p99", None),
    ]
    rows = []
    for label, key, base in shape_rows:
        shape, theirs = seq.get(key), (real or {}).get(key)
        row = [label, "" if shape is None else f"{shape * 1e3:.2f}"]
        row.append("" if shape is None or base is None else f"{shape / base:.2f}×")
        if real is not None:
            row.append("" if theirs is None else f"{theirs * 1e3:.2f}")
            row.append("" if theirs is None or base is None else f"{theirs / base:.2f}×")
            row.append("" if theirs is None else f"{(theirs - (shape or 0.0)) * 1e3:+.2f}")
        rows.append(row)
    print_table(
        f"2. One user's decryptions: {N} nodes, t = {T}, {T + SPARE} asked, a gateway",
        ["measure", "the shape", "× floor"]
        + (["tkms devnet", "× floor", "tkms − shape"] if real is not None else []),
        rows,
        markdown=md,
        caption=(f"{args.rounds} sequential decryptions each, on kept connections"
                 + ("; tkms: `tkms devnet` (chain ACL, user mode), the SDK's sync Client"
                    if real is not None else "; --with-tkms adds tkms devnet's figures")),
    )  # fmt: skip
    print_table(
        f"2b. The shape's {USERS} concurrent users",
        ["measure", "value", "× floor"],
        [["decryptions per second", f"{many['rate']:,.0f}", ""],
         ["CPU of all processes per decryption (ms)",
          f"{many['cpu'] * 1e3:.2f}", f"{many['cpu'] / cpu_floor:.2f}×"],
         ["p50 / p99 (ms)", f"{many['p50'] * 1e3:.1f} / {many['p99'] * 1e3:.1f}", ""],
         [f"the most {CORES} cores allow at that CPU (decryptions per second)",
          f"{CORES / many['cpu']:,.0f}", ""],
         [f"the CPU per decryption {USERS_RATE:.0f}/s allows on {CORES} cores (ms)",
          f"{CORES / USERS_RATE * 1e3:.2f}", f"{CORES / USERS_RATE / cpu_floor:.2f}×"]],
        markdown=md,
        caption=f"{args.seconds:g} s on uvloop in this process, each user with its connection",
    )  # fmt: skip
    if node_table:
        print_table(
            "3. One node over HTTP, wrk -t 1 -c 32 (server CPU µs per request)",
            ["server", "median", "runs", "floor", "× floor"],
            node_table,
            markdown=md,
            caption="interleaved; floors measured in this run (table 1, bench/delegate.py's)",
        )
    ratio = seq["cpu"] / cpu_floor
    print_table(
        "Issue 13's targets, met by the cheapest system of tkms's shape?",
        ["target", "the shape measured", "ratio", ""],
        [[f"CPU of all processes per decryption ≤ {CPU_PER_DECRYPT}× floor",
          f"{seq['cpu'] * 1e3:.2f} ms vs floor {cpu_floor * 1e3:.2f} ms", f"{ratio:.2f}×",
          verdict(ratio <= CPU_PER_DECRYPT)],
         [f"{USERS} users ≥ {USERS_RATE:.0f}/s, p99 < {USERS_P99 * 1e3:.0f} ms",
          f"{many['rate']:,.0f}/s, p99 {many['p99'] * 1e3:.1f} ms "
          f"(≤ {CORES / many['cpu']:,.0f}/s at its CPU)",
          f"{many['rate'] / USERS_RATE:.2f}×",
          verdict(many["rate"] >= USERS_RATE and many["p99"] < USERS_P99)],
         *node_targets],
        markdown=md,
        caption=("NOT met here: no implementation of this design in this stack reaches the "
                 "target on this machine; tkms's own figures: bench/e2e.py, bench/delegate.py"),
    )  # fmt: skip


if __name__ == "__main__":
    main()
