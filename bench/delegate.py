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
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sha3
from coincurve import PrivateKey, PublicKey
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT

from bench.common import (
    Timing,
    fmt_us,
    load_summary,
    measure_interleaved,
    print_table,
    round_ratio,
    summed,
)
from bench.delegate_fixture import CHAIN_ID, Fixture, salt_cycle
from bench.http_load import WRK_LUA, HttpRun, http_run
from bench.targets import print_targets, server_cpu_row
from tkms.crypto import eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.node.app import create_app
from tkms.node.config import load_node_config
from tkms.node.delegation_v0 import ChainKey, Delegator

FLOOR_TARGET = 1.3  # in-process cost ≤ 1.3 × floor
RPS_TARGET = 1500  # delegations/s with 2 workers on a 2-core machine


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
    args = parser.parse_args()

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
    one = results.get(1)
    if one is not None and one.server_us_per_request is not None:
        print_targets(
            [server_cpu_row("/v0/delegate, 1 worker", one.server_us_per_request,
                            ct_floor.median_us)],
            markdown=md,
            caption="floor: the constant-time floor of table 1; the partial's: bench/servers.py",
        )  # fmt: skip


if __name__ == "__main__":
    main()
