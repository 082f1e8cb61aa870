"""A node's delegate routes in process, no sockets: this checkout against another.

    .venv/bin/python bench/node_route.py [--baseline DIR] [--rounds 7] [--requests 1500] [--fresh]

The node app of bench/servers_app.py (``create_app`` with the fast path, gateway
mode, a share installed as a DKG would, and an audit log in a temporary
directory) is driven as uvicorn drives it, one ASGI call per request, with the
signed requests of bench/delegate.py (a fresh salt each). No socket, no HTTP
parser, no server: what is left is our own code from the fast path to the
answer's bytes (limits, metrics, the route, the checks, the audit entry) and
the primitives. The routes: ``/v0/delegate``, ``/v1/delegate`` and a
``/v1/delegate/batch`` of ``BATCH_KEYS`` (8) keys, all in gateway mode (a request's
signature recovery is kept per request, node/request_checks.py, and every request
here repeats the same one: the floors count it all the same; ``--fresh`` adds v0 and v1
with a new K each request, FRESH of them in turn, as a decryption of a new record pays
it). Each side is a child process kept running (``--baseline DIR``: DIR's ``src/``
first on ``PYTHONPATH``), and the sides take turns round after round, so that foreign
load falls on both alike.
The figures per request:

* **CPU µs**: the child's process time (``time.process_time``: every thread,
  the audit writer's too) over ``--requests`` requests, the median of the rounds;
* **Python calls**: the function calls cProfile counts over 200 requests (not
  timed): the same on a quiet machine and a busy one;
* the **floor**, the route's primitives (bench/servers.py's), their process time
  measured in this process after the rounds, and what is above it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import checkout_src, fmt_us, load_summary, measure_interleaved, print_table
from bench.delegate import MULT_CONST, PARSE_K, floor_cases
from bench.delegate_fixture import CHAIN_ID, Fixture, salt_cycle
from bench.servers import v1_floor_cases

ROOT = Path(__file__).resolve().parent.parent
ROUTES = ("/v0/delegate", "/v1/delegate", "/v1/delegate/batch")
PROFILED = 200
BATCH_KEYS = 8  # a batch's ephemeral keys (a runner's operands): its floor is 8 partials


# --- the child: one node app, driven in process ----------------------------------------


def _scope(route: str, salt: str, authorization: str, body: bytes) -> dict[str, Any]:
    query = f"chain_id={CHAIN_ID}&salt={salt}".encode()
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": route,
        "raw_path": route.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", authorization.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _serve_requests(app: Any, spec: dict[str, Any], route: str, count: int) -> None:
    path, _, variant = route.partition("#")
    if variant == "fresh":  # a new record's request each time (FRESH of them, in turn)
        requests = spec["fresh"][path]
    elif path.endswith("/batch"):
        requests = [(spec["batch_body"].encode(), spec["batch_authorization"])]
    else:
        requests = [(spec["body"].encode(), spec["authorization"])]
    salts = spec["salts"]
    statuses: list[int] = []
    body = b""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    turn = spec.setdefault("turn", {})
    for _ in range(count):
        at = turn.get(route, 0)
        turn[route] = at + 1
        body, authorization = requests[at % len(requests)]
        await app(_scope(path, salts(), authorization, body), receive, send)
    if any(status != 200 for status in statuses):
        raise SystemExit(f"{route}: statuses {sorted(set(statuses))}")


async def _child_loop(spec: dict[str, Any]) -> None:
    from bench.servers_app import node_app

    app = node_app("fastpath")
    spec["salts"] = salt_cycle()  # drawn once, not in the rounds
    if spec.get("fresh_file"):
        lists = json.loads(Path(spec["fresh_file"]).read_text())
        spec["fresh"] = {p: [(b.encode(), a) for b, a in pairs] for p, pairs in lists.items()}
    async with app.router.lifespan_context(app):
        for route in ROUTES:  # warm every cache and path
            await _serve_requests(app, spec, route, 50)
        for line in sys.stdin:
            route, count = line.split()
            if count == "profile":
                profile = cProfile.Profile()
                profile.enable()
                await _serve_requests(app, spec, route, PROFILED)
                profile.disable()
                stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
                calls = sum(entry[1] for entry in stats.values()) / PROFILED
                print(json.dumps({"calls": calls}), flush=True)
                continue
            start = time.process_time()
            await _serve_requests(app, spec, route, int(count))
            cpu = time.process_time() - start
            print(json.dumps({"cpu_us": cpu / int(count) * 1e6}), flush=True)


def child_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    with tempfile.TemporaryDirectory(prefix="tkms-node-route-") as audit:
        os.environ.update(spec["env"] | {"TKMS_NODE_AUDIT_DIR": audit})
        asyncio.run(_child_loop(spec))


# --- the parent: the sides in turn ----------------------------------------------------


FRESH = 1200  # more than request_checks' cache of recovered signers (1024): each one misses


def fresh_requests_of(fx: Fixture) -> list[tuple[str, str]]:
    """FRESH gateway-signed requests, each for a new K (a new record) to the same target:
    one list per route (v0 and v1 accept the same signature, and would share the cache)."""
    from tkms.crypto import curve, eip712
    from tkms.crypto.encoding import to_hex

    pairs = []
    for _ in range(FRESH):
        k = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
        message = {"ephemeralPubKey": k, "targetPubKey": fx.target_hex}
        domain = eip712.delegate_domain(CHAIN_ID)
        signature = eip712.sign(fx.gateway, domain, eip712.DELEGATE_AUTHORIZATION, message)
        pairs.append((json.dumps(message), f"Bearer {to_hex(signature)}"))
    return pairs


def batch_request_of(fx: Fixture) -> dict[str, str]:
    """A gateway-signed ``/v1/delegate/batch`` of BATCH_KEYS fresh keys to the fixture's target."""
    from tkms.crypto import curve
    from tkms.crypto.encoding import to_hex
    from tkms.protocol.batch_delegation import batch_request

    keys = [
        to_hex(curve.encode_point(curve.base_mul(curve.random_scalar()))) for _ in range(BATCH_KEYS)
    ]
    signed = batch_request(fx.gateway, CHAIN_ID, keys, fx.target_hex)
    body = json.dumps({"ephemeralPubKeys": keys, "targetPubKey": fx.target_hex})
    return {"batch_body": body, "batch_authorization": f"Bearer {signed.signature}"}


class Side:
    def __init__(
        self, name: str, src: Path | None, fx: Fixture, share: int, fresh_file: str | None
    ) -> None:
        self.name = name
        env = fx.env(0) | {"BENCH_SHARE": f"{share:x}"}
        spec = {"env": env, "body": fx.body.decode(), "authorization": fx.authorization}
        spec |= batch_request_of(fx) | {"fresh_file": fresh_file or ""}
        path = [str(ROOT)] if src is None else [str(src), str(ROOT)]
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
            env=env | {"PYTHONPATH": os.pathsep.join(path)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, route: str, what: str) -> dict[str, float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{route} {what}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name}: the child ended")
        answer: dict[str, float] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another tkms checkout")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1500, help="requests per round and side")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--fresh", action="store_true", help="also each delegate route with a new K per request"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child_main(args.child)
        return
    sources: dict[str, Path | None] = {"this": None}
    if args.baseline is not None:
        sources = {"baseline": checkout_src(parser, args.baseline, "node"), "this": None}
    print(f"# tkms node routes in process — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {load_summary()}\n")
    from tkms.crypto import curve

    fx = Fixture.create()
    share = curve.random_scalar()
    routes = ROUTES + (("/v0/delegate#fresh", "/v1/delegate#fresh") if args.fresh else ())
    fresh = tempfile.NamedTemporaryFile("w", suffix=".json")  # noqa: SIM115
    if args.fresh:
        json.dump({path: fresh_requests_of(fx) for path in ROUTES[:2]}, fresh)
        fresh.flush()
    sides = [Side(name, src, fx, share, fresh.name if args.fresh else None)
             for name, src in sources.items()]  # fmt: skip
    cpu: dict[tuple[str, str], list[float]] = {}
    calls: dict[tuple[str, str], float] = {}
    try:
        for side in sides:
            for route in routes:
                calls[(side.name, route)] = side.ask(route, "profile")["calls"]
        for _ in range(args.rounds):
            for route in routes:
                for side in sides:
                    cpu.setdefault((side.name, route), []).append(
                        side.ask(route, str(args.requests))["cpu_us"]
                    )
    finally:
        for side in sides:
            side.stop()
        fresh.close()
    loaded = load_summary()
    cases = floor_cases(fx) | v1_floor_cases(fx)
    timings = {  # CPU, as the children's figures are
        name: timing.median_us
        for name, timing in measure_interleaved(
            cases, rounds=15, target=0.03, clock=time.process_time
        ).items()
    }
    common = ["EIP-712 recover request signer", "EIP-712 sign response proof", PARSE_K, MULT_CONST]
    floors = {
        "/v0/delegate": sum(timings[n] for n in [*common, "RSA-OAEP-2048 seal of 32 bytes"]),
        "/v1/delegate": sum(timings[n] for n in [*common, *v1_floor_cases(fx)]),
    }
    # One recovery and one signature for the batch, and per key a partial's own primitives.
    per_key = sum(timings[n] for n in [PARSE_K, MULT_CONST, *v1_floor_cases(fx)])
    floors["/v1/delegate/batch"] = floors["/v1/delegate"] + (BATCH_KEYS - 1) * per_key
    rows = []
    for route in routes:
        path, _, variant = route.partition("#")
        floor = floors[path]
        for side in sides:
            runs = sorted(cpu[(side.name, route)])
            med = runs[len(runs) // 2]
            label = path + (", a new K each" if variant else "")
            rows.append([label, side.name, fmt_us(med), f"{runs[0]:,.0f}–{runs[-1]:,.0f}",
                         f"{calls[(side.name, route)]:.0f}", fmt_us(floor), fmt_us(med - floor),
                         f"{med / floor:.2f}×"])  # fmt: skip
    print_table(
        f"A node's delegate routes in process ({args.requests} requests a round, "
        f"{args.rounds} rounds, the sides in turn)",
        ["route", "code", "CPU µs/req", "rounds", "Python calls/req", "floor µs",
         "above floor µs", "× floor"],
        rows,
        markdown=args.markdown,
        caption=f"load during the rounds: {loaded}; floors measured after them, in process",
    )  # fmt: skip


if __name__ == "__main__":
    main()
