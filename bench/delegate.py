"""Single-node delegation (``POST /v0/delegate``): primitive floor, node cost, HTTP.

    .venv/bin/python bench/delegate.py                  # everything (about a minute)
    .venv/bin/python bench/delegate.py --skip-http      # in-process tables only
    .venv/bin/python bench/delegate.py --markdown       # tables to paste into docs

Three tables, all measured in this run:

1. the primitive floor of one delegation: the raw crypto a delegation cannot
   avoid (parse K, S = s·K, RSA-OAEP seal of x(S), EIP-712 recovery of the
   gateway's request, EIP-712 signature of the response), called directly on
   coincurve / cryptography / safe-pysha3, and their sum;
2. the node's own code path without HTTP, ``Delegator.delegate_v0`` on a fixed
   valid signed request (random salt per call), against that floor, plus the
   same with a cold RSA key cache and the whole ASGI app without a socket;
3. HTTP throughput and latency on loopback: ``tkms node --workers N`` as a
   subprocess, ``wrk -t 1 -c 32`` with a Lua script that POSTs the signed
   request and counts non-200 answers (an asyncio httpx load generator in its
   own process when wrk is missing, labelled as such).

See docs/performance.md for the numbers and how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import sha3
from coincurve import PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from bench.common import (
    Timing,
    fmt_us,
    free_port,
    load_summary,
    machine_cpu_times,
    measure_interleaved,
    percentile,
    print_table,
    process_tree_cpu,
    round_ratio,
    summed,
)
from tkms.crypto import curve, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.app import create_app
from tkms.node.config import load_node_config
from tkms.node.delegation import ChainKey, Delegator

CHAIN_ID = 421614  # Arbitrum Sepolia, where Nox runs; any configured u32 would do
FLOOR_TARGET = 1.3  # in-process cost ≤ 1.3 × floor
RPS_TARGET = 1500  # delegations/s with 2 workers on a 2-core machine


# --- the fixed request ------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """Keys and one valid signed request, as the Nox gateway would send it."""

    gateway: Wallet
    node_key: bytes
    node: Wallet
    kms_secret: bytes
    rsa_private: rsa.RSAPrivateKey
    ephemeral_hex: str
    target_hex: str
    signature_hex: str

    @classmethod
    def create(cls) -> Fixture:
        gateway = Wallet.generate()
        node_key = curve.scalar_to_bytes(curve.random_scalar())
        kms_secret = curve.scalar_to_bytes(curve.random_scalar())
        private = rsa.generate_private_key(2048)
        ephemeral = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
        target = to_hex(rsa.public_key_der(private))
        message = {"ephemeralPubKey": ephemeral, "targetPubKey": target}
        signature = eip712.sign(
            gateway, eip712.delegate_domain(CHAIN_ID), eip712.DELEGATE_AUTHORIZATION, message
        )
        return cls(
            gateway, node_key, Wallet(node_key), kms_secret, private, ephemeral, target,
            to_hex(signature),
        )  # fmt: skip

    @property
    def body(self) -> bytes:
        return json.dumps({"ephemeralPubKey": self.ephemeral_hex, "targetPubKey": self.target_hex})\
            .encode()  # fmt: skip

    @property
    def authorization(self) -> str:
        return f"Bearer {self.signature_hex}"

    def path(self, salt_hex: str) -> str:
        return f"/v0/delegate?chain_id={CHAIN_ID}&salt={salt_hex}"

    def env(self, port: int) -> dict[str, str]:
        """The node's environment, nox-kms names only."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_KMS_", "TKMS_NODE_"))}
        return base | {
            "NOX_KMS_WALLET_KEY": self.node_key.hex(),
            f"NOX_KMS_CHAINS__{CHAIN_ID}__ECC_KEY": self.kms_secret.hex(),
            f"NOX_KMS_CHAINS__{CHAIN_ID}__GATEWAY_ADDRESS": to_hex(self.gateway.address),
            "NOX_KMS_SERVER__HOST": "127.0.0.1",
            "NOX_KMS_SERVER__PORT": str(port),
            "NOX_KMS_SERVER__ACCESS_LOG": "false",
        }

    def check_answer(self, salt: bytes, answer: dict[str, Any]) -> None:
        """The answer opens to x(s·K) and its proof is the node's signature."""
        signer = eip712.recover(
            eip712.delegate_domain(CHAIN_ID, salt),
            eip712.DELEGATE_RESPONSE_PROOF,
            {"encryptedSharedSecret": answer["encryptedSharedSecret"]},
            parse_hex(answer["proof"], length=65),
        )
        if signer != self.node.address:
            raise SystemExit("benchmark setup broken: the proof is not the node's signature")
        shared = rsa.decrypt(self.rsa_private, parse_hex(answer["encryptedSharedSecret"]))
        point = PublicKey(parse_hex(self.ephemeral_hex)).multiply(self.kms_secret)
        if shared != point.format(compressed=True)[1:]:
            raise SystemExit("benchmark setup broken: the sealed secret is not x(s·K)")


def salt_cycle(n: int = 1024) -> Callable[[], str]:
    """Random salts, drawn before timing so the loop does not time the CSPRNG."""
    return itertools.cycle([to_hex(secrets.token_bytes(32)) for _ in range(n)]).__next__


# --- 1. primitive floor ----------------------------------------------------------


def floor_cases(fx: Fixture) -> dict[str, Callable[[], object]]:
    keccak = sha3.keccak_256
    k_bytes = parse_hex(fx.ephemeral_hex)
    point = PublicKey(k_bytes)
    secret = fx.kms_secret
    public = fx.rsa_private.public_key()
    oaep = rsa._OAEP
    x = point.multiply(secret).format(compressed=True)[1:]
    sealed_hex = to_hex(public.encrypt(x, oaep))
    signature = parse_hex(fx.signature_hex)
    signature01 = signature[:64] + bytes([signature[64] - 27])
    auth_typehash = eip712.DELEGATE_AUTHORIZATION.type_hashes["DelegateAuthorization"]
    proof_typehash = eip712.DELEGATE_RESPONSE_PROOF.type_hashes["DelegateResponseProof"]
    # The request's domain is constant per chain: its separator is computed once.
    request_domain = eip712.domain_separator(eip712.delegate_domain(CHAIN_ID))
    # The response's domain holds the request's salt: only its prefix is constant.
    salted_prefix = (
        keccak(b"EIP712Domain(string name,string version,uint256 chainId,bytes32 salt)").digest()
        + keccak(b"ProtocolDelegate").digest()
        + keccak(b"1").digest()
        + CHAIN_ID.to_bytes(32, "big")
    )
    salt = secrets.token_bytes(32)
    signer = PrivateKey(fx.node_key)
    ephemeral_str, target_str = fx.ephemeral_hex, fx.target_hex

    def recover_request() -> object:
        struct = keccak(
            auth_typehash
            + keccak(ephemeral_str.encode()).digest()
            + keccak(target_str.encode()).digest()
        ).digest()
        digest = keccak(b"\x19\x01" + request_domain + struct).digest()
        key = PublicKey.from_signature_and_message(signature01, digest, hasher=None)
        return keccak(key.format(compressed=False)[1:]).digest()[12:]

    def sign_response() -> object:
        struct = keccak(proof_typehash + keccak(sealed_hex.encode()).digest()).digest()
        domain = keccak(salted_prefix + salt).digest()
        return signer.sign_recoverable(keccak(b"\x19\x01" + domain + struct).digest(), hasher=None)

    # s·K in constant time: libsecp256k1's ECDH (ecmult_const) with a hash callback
    # that hands back x‖y. coincurve's multiply is variable time (a tweak is public).
    xy = ffi.new("unsigned char[64]")
    ctx = GLOBAL_CONTEXT.ctx

    def shared_x_const() -> object:
        lib.secp256k1_ecdh(ctx, xy, point.public_key, secret, _ecdh_copy_xy, ffi.NULL)
        return ffi.buffer(xy, 32)[:]

    assert recover_request() == fx.gateway.address
    assert shared_x_const() == x
    return {
        PARSE_K: lambda: PublicKey(k_bytes),
        MULT_VAR: lambda: point.multiply(secret).format(compressed=True),
        MULT_CONST: shared_x_const,
        "RSA-OAEP-2048 seal of 32 bytes": lambda: public.encrypt(x, oaep),
        "EIP-712 recover request signer": recover_request,
        "EIP-712 sign response proof": sign_response,
    }


PARSE_K = "parse K (33-byte SEC1 → point)"
MULT_VAR = "s·K → x(S), variable time (PublicKey.multiply)"
MULT_CONST = "s·K → x(S), constant time (secp256k1_ecdh)"


@ffi.callback("int(unsigned char *, const unsigned char *, const unsigned char *, void *)")  # type: ignore[untyped-decorator]
def _ecdh_copy_xy(out: Any, x32: Any, y32: Any, _data: Any) -> int:
    ffi.memmove(out, x32, 32)
    ffi.memmove(out + 32, y32, 32)
    return 1


# --- 2. in-process ------------------------------------------------------------------


def delegator_cases(fx: Fixture) -> dict[str, Callable[[], object]]:
    delegator = Delegator(fx.node, {CHAIN_ID: ChainKey(fx.kms_secret, fx.gateway.address)})
    chain, auth, body = str(CHAIN_ID), fx.authorization, fx.body
    next_salt = salt_cycle()
    salt = secrets.token_bytes(32)
    fx.check_answer(salt, delegator.delegate_v0(chain, to_hex(salt), auth, body))

    def warm() -> object:
        return delegator.delegate_v0(chain, next_salt(), auth, body)

    def cold() -> object:
        rsa.load_public_key.cache_clear()  # the key object is parsed and checked again
        return delegator.delegate_v0(chain, next_salt(), auth, body)

    return {"delegate_v0, RSA key cached": warm, "delegate_v0, RSA key parsed per call": cold}


ASGI_BATCH = 50


def asgi_case(fx: Fixture) -> tuple[Callable[[], object], Callable[[], None]]:
    """The whole ASGI app (middleware, routing, handler) called without a socket.

    Returns a case that serves ``ASGI_BATCH`` requests, and a closer.
    """
    config = load_node_config(fx.env(9000))
    app = create_app(config)
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvicorn[standard] brings uvloop
        loop = asyncio.new_event_loop()
    body = fx.body
    headers = [
        (b"host", b"127.0.0.1:9000"),
        (b"content-type", b"application/json"),
        (b"authorization", fx.authorization.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    next_salt = salt_cycle()
    statuses: list[int] = []
    last_body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        elif message.get("body"):
            last_body.append(message["body"])

    async def one(salt_hex: str) -> None:
        query = f"chain_id={CHAIN_ID}&salt={salt_hex}".encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 9000),
            "client": ("127.0.0.1", 40000),
            "scheme": "http",
            "method": "POST",
            "root_path": "",
            "path": "/v0/delegate",
            "raw_path": b"/v0/delegate",
            "query_string": query,
            "headers": list(headers),
            "state": {},
        }
        await app(scope, receive, send)  # type: ignore[arg-type]

    async def batch() -> None:
        for _ in range(ASGI_BATCH):
            await one(next_salt())

    salt = secrets.token_bytes(32)
    loop.run_until_complete(one(to_hex(salt)))
    if statuses != [200]:
        raise SystemExit(f"benchmark setup broken: the ASGI app answered {statuses}")
    fx.check_answer(salt, json.loads(last_body[0]))
    statuses.clear()

    def case() -> None:
        loop.run_until_complete(batch())
        if any(s != 200 for s in statuses):
            raise SystemExit(f"ASGI app answered {set(statuses)}")
        statuses.clear()
        last_body.clear()

    return case, loop.close


def scaled(t: Timing, factor: float) -> Timing:
    return Timing(tuple(v / factor for v in t.runs_us), t.calls_per_run)


# --- 3. HTTP -------------------------------------------------------------------------

WRK_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{authorization}"

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  responses = 0
  non200 = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local seen, bad = 0, 0
  for _, thread in ipairs(threads) do
    seen = seen + thread:get("responses")
    bad = bad + thread:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "TKMS_RESULT requests=%d duration_us=%d responses=%d non200=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, seen, bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class HttpRun:
    generator: str
    workers: int
    seconds: float
    requests: int
    non200: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float | None = None
    generator_cpu_s: float | None = None
    machine_busy_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def foreign_cores(self) -> float | None:
        """Cores used by processes other than the server and the load generator."""
        if None in (self.machine_busy_s, self.server_cpu_s, self.generator_cpu_s):
            return None
        assert self.machine_busy_s is not None
        assert self.server_cpu_s is not None and self.generator_cpu_s is not None
        rest = self.machine_busy_s - self.server_cpu_s - self.generator_cpu_s
        return max(0.0, rest / self.seconds)


class NodeProcess:
    """``tkms node --workers N`` on a free loopback port."""

    def __init__(self, fx: Fixture, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="tkms-bench-node-", suffix=".log"
        )
        tkms = Path(sys.executable).with_name("tkms")
        command = [str(tkms)] if tkms.exists() else [sys.executable, "-m", "tkms"]
        self.proc = subprocess.Popen(
            [*command, "node", "--workers", str(workers)],
            env=fx.env(self.port),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers = workers

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"tkms node exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"tkms node not ready after {timeout:.0f} s:\n{self.tail()}")
        if self.workers > 1:  # every worker must be up, not only the first one
            time.sleep(1.0)

    def tail(self) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def run_child(command: list[str]) -> tuple[str, float]:
    """Run a load generator; its stdout and its own CPU seconds (user + system)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({proc.returncode}):\n{output}")
    return output, usage.ru_utime + usage.ru_stime


def run_wrk(
    wrk: str, script: Path, url: str, seconds: float, connections: int, threads: int
) -> tuple[dict[str, int], float]:
    """One wrk run; returns its TKMS_RESULT fields and wrk's own CPU seconds."""
    output, cpu = run_child(
        [
            wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
            "--timeout", "10s", "-s", str(script), url,
        ]
    )  # fmt: skip
    match = re.search(r"^TKMS_RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk printed no result:\n{output}")
    fields = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return fields, cpu


def loadgen_command(url: str, fx: Fixture, seconds: float, connections: int) -> list[str]:
    config = {
        "url": url,
        "path": fx.path(to_hex(bytes(32))),
        "authorization": fx.authorization,
        "body": fx.body.decode(),
        "seconds": seconds,
        "connections": connections,
    }
    return [sys.executable, str(Path(__file__).resolve()), "--loadgen-child", json.dumps(config)]


def loadgen_child(config_json: str) -> None:
    """The fallback load generator (its own process): asyncio + httpx, keep-alive."""
    config = json.loads(config_json)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        non200 = errors = 0
        limits = httpx.Limits(max_connections=config["connections"])
        headers = {"content-type": "application/json", "authorization": config["authorization"]}
        body = config["body"].encode()
        async with httpx.AsyncClient(base_url=config["url"], limits=limits, timeout=10) as client:
            stop = time.perf_counter() + config["seconds"]

            async def worker() -> None:
                nonlocal non200, errors
                while (start := time.perf_counter()) < stop:
                    try:
                        response = await client.post(config["path"], content=body, headers=headers)
                    except httpx.HTTPError:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - start)
                    non200 += response.status_code != 200

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(config["connections"])))
            elapsed = time.perf_counter() - began
        latencies.sort()
        return {
            "requests": len(latencies),
            "seconds": elapsed,
            "non200": non200,
            "errors": errors,
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
        }

    print(json.dumps(asyncio.run(main())))


def http_run(
    fx: Fixture, workers: int, args: argparse.Namespace, wrk: str | None, script: Path
) -> HttpRun:
    node = NodeProcess(fx, workers)
    try:
        node.wait_ready()
        salt = secrets.token_bytes(32)
        answer = httpx.post(
            node.url + fx.path(to_hex(salt)),
            content=fx.body,
            headers={"content-type": "application/json", "authorization": fx.authorization},
        )
        if answer.status_code != 200:
            raise SystemExit(f"node answered {answer.status_code}: {answer.text}")
        fx.check_answer(salt, answer.json())
        url = node.url + fx.path(to_hex(bytes(32)))
        # Warm every worker's caches (RSA key, domain separators) and the socket paths.
        if wrk is not None:
            run_wrk(wrk, script, url, args.warmup, args.connections, args.threads)
        else:
            run_child(loadgen_command(node.url, fx, args.warmup, args.connections))
        server_before = process_tree_cpu(node.proc.pid)
        machine_before = machine_cpu_times()
        if wrk is not None:
            result, generator_cpu = run_wrk(
                wrk, script, url, args.duration, args.connections, args.threads
            )
            errors = sum(result[k] for k in ("connect", "read", "write", "timeout"))
            run = HttpRun(
                generator=f"wrk -t {args.threads} -c {args.connections}",
                workers=workers,
                seconds=result["duration_us"] / 1e6,
                requests=result["requests"],
                non200=result["non200"],
                errors=errors,
                p50_ms=result["p50_us"] / 1e3,
                p99_ms=result["p99_us"] / 1e3,
                generator_cpu_s=generator_cpu,
            )
        else:
            output, generator_cpu = run_child(
                loadgen_command(node.url, fx, args.duration, args.connections)
            )
            data = json.loads(output)
            run = HttpRun(
                generator=f"httpx fallback -c {args.connections}",
                workers=workers,
                seconds=data["seconds"],
                requests=data["requests"],
                non200=data["non200"],
                errors=data["errors"],
                p50_ms=data["p50_ms"],
                p99_ms=data["p99_ms"],
                generator_cpu_s=generator_cpu,
            )
        server_after = process_tree_cpu(node.proc.pid)
        machine_after = machine_cpu_times()
        if server_before is not None and server_after is not None:
            run.server_cpu_s = server_after - server_before
        if machine_before is not None and machine_after is not None:
            run.machine_busy_s = machine_after[0] - machine_before[0]
        return run
    finally:
        node.stop()


# --- output ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per HTTP run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of HTTP warm-up")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to run")
    parser.add_argument("--http-runs", type=int, default=1, help="HTTP runs per worker count")
    parser.add_argument("--rounds", type=int, default=30, help="in-process timing rounds")
    parser.add_argument("--target", type=float, default=0.03, help="seconds per case per round")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--no-wrk", action="store_true", help="use the httpx load generator")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--loadgen-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen_child is not None:
        loadgen_child(args.loadgen_child)
        return

    md = args.markdown
    print(f"# tkms single-node delegation benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {load_summary()}")
    print(f"python {sys.version.split()[0]}, chain {CHAIN_ID}, RSA-2048 target key\n")
    fx = Fixture.create()

    # Floor and in-process cases run interleaved: foreign load hits them alike.
    floor = floor_cases(fx)
    node = delegator_cases(fx)
    asgi, close_loop = asgi_case(fx)
    asgi_name = "ASGI app, no socket (FastAPI + middleware)"
    timings = measure_interleaved(
        floor | node | {asgi_name: asgi}, rounds=args.rounds, target=args.target
    )
    close_loop()
    timings[asgi_name] = scaled(timings[asgi_name], ASGI_BATCH)
    common_parts = [name for name in floor if name not in (MULT_VAR, MULT_CONST)]
    floors = {
        "floor, constant-time s·K (the node's path)": summed(
            [timings[n] for n in [*common_parts, MULT_CONST]]
        ),
        "floor, variable-time s·K (as the issue defines it)": summed(
            [timings[n] for n in [*common_parts, MULT_VAR]]
        ),
    }
    ct_floor, vt_floor = floors.values()

    rows = [[name, fmt_us(timings[name].median_us), fmt_us(timings[name].min_us)] for name in floor]
    rows += [[name, fmt_us(t.median_us), fmt_us(t.min_us)] for name, t in floors.items()]
    print_table(
        "1. Primitive floor of one delegation (µs per call)",
        ["primitive", "median µs", "min µs"],
        rows,
        markdown=md,
        caption=(
            f"{args.rounds} interleaved rounds of ~{args.target:g} s per case; a floor row sums "
            "its parts round by round (parse K, one s·K, RSA seal, recover, sign)"
        ),
    )

    rows = []
    for name in [*node, asgi_name]:
        t = timings[name]
        rows.append(
            [
                name,
                fmt_us(t.median_us),
                fmt_us(t.min_us),
                f"{round_ratio(t, ct_floor):.2f}×",
                f"{round_ratio(t, vt_floor):.2f}×",
                fmt_us(t.median_us - ct_floor.median_us),
                f"{t.per_second:,.0f}",
            ]
        )
    warm = timings["delegate_v0, RSA key cached"]
    verdicts = []
    for label, base in (("constant-time", ct_floor), ("variable-time", vt_floor)):
        r = round_ratio(warm, base)
        verdicts.append(f"{r:.2f}× the {label} floor → {'met' if r <= FLOOR_TARGET else 'NOT met'}")
    print_table(
        "2. In-process cost of one delegation (no HTTP)",
        ["code path", "median µs", "min µs", "× floor (ct)", "× floor (vt)",
         "over ct floor µs", "per core /s"],
        rows,
        markdown=md,
        caption=(
            "× floor: median over rounds of (path ÷ floor of the same round); ct = constant-time "
            f"s·K, vt = variable-time.\ntarget delegate_v0 ≤ {FLOOR_TARGET}× floor: "
            + "; ".join(verdicts)
        ),
    )  # fmt: skip

    if args.skip_http:
        return
    wrk = None if args.no_wrk else shutil.which("wrk")
    if wrk is None and not args.no_wrk:
        print(
            "wrk not found: install it with `apt-get install wrk` (Debian/Ubuntu) for the "
            "reference numbers; falling back to an asyncio httpx load generator in its own "
            "process, which competes with the node for CPU (numbers are lower bounds).\n"
        )
    with tempfile.TemporaryDirectory(prefix="tkms-bench-") as tmp:
        script = Path(tmp) / "delegate.lua"
        script.write_text(WRK_LUA.format(body=fx.body.decode(), authorization=fx.authorization))
        rows = []
        results: dict[int, HttpRun] = {}
        for workers in (int(w) for w in args.workers.split(",")):
            runs = [http_run(fx, workers, args, wrk, script) for _ in range(args.http_runs)]
            runs.sort(key=lambda r: r.rps)
            median = runs[len(runs) // 2]
            results[workers] = median
            cpu = median.server_us_per_request
            gen = median.generator_cpu_s
            foreign = median.foreign_cores
            rows.append(
                [
                    f"{workers} worker{'s' if workers > 1 else ''}",
                    median.generator,
                    f"{median.seconds:.1f}",
                    f"{median.requests:,}",
                    f"{median.rps:,.0f}",
                    f"{median.p50_ms:.2f}",
                    f"{median.p99_ms:.2f}",
                    f"{median.non200} / {median.errors}",
                    fmt_us(cpu) if cpu is not None else "n/a",
                    f"{gen / median.seconds:.0%}" if gen is not None else "n/a",
                    f"{foreign:.2f}" if foreign is not None else "n/a",
                ]
                + ([", ".join(f"{r.rps:,.0f}" for r in runs)] if args.http_runs > 1 else [])
            )
    two = results.get(2)
    caption = (
        "server CPU = user+sys of the node's process tree per request; "
        "other load = cores used by anything else during the run."
    )
    if two is not None:
        verdict = "met" if two.rps >= RPS_TARGET and not (two.non200 or two.errors) else "NOT met"
        if wrk is None:
            verdict += " (measured with the fallback load generator: not comparable)"
        caption += f"\ntarget ≥ {RPS_TARGET:,} delegations/s with 2 workers: {verdict}"
    print_table(
        f"3. HTTP on loopback, POST /v0/delegate, {args.connections} keep-alive clients",
        [
            "node", "load generator", "s", "requests", "req/s", "p50 ms", "p99 ms",
            "non-200 / errors", "server CPU µs/req", "loadgen CPU", "other load (cores)",
        ]
        + (["all runs req/s"] if args.http_runs > 1 else []),
        rows,
        markdown=md,
        caption=caption,
    )  # fmt: skip


if __name__ == "__main__":
    main()
