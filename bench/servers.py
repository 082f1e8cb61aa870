"""Servers, frameworks and JSON libraries on the node's hot routes, against the floor.

    .venv/bin/python bench/servers.py              # about two minutes
    .venv/bin/python bench/servers.py --markdown   # tables to paste into docs
    .venv/bin/python bench/servers.py --only "uvicorn + fastpath" --only "uvicorn + bare"
    .venv/bin/python bench/servers.py --only "uvicorn + fastpath" --baseline DIR   # A/B

One signed ``POST /v0/delegate`` and one ``POST /v1/delegate`` (a partial),
the requests of bench/delegate.py, served by each server × app of
bench/servers_app.py (uvicorn or granian; FastAPI as before, the fast path
as now, or a bare ASGI callable), every one a child process kept running
for the whole run. ``wrk -t 1 -c 32`` drives them in turn, round after
round, so foreign load hits all of them alike; a row's figure is the median
over rounds of its "server CPU µs/req" (the process tree's user + system
time over a run ÷ the requests served), and its ratio is against the
primitive floor of that request measured in this run, in process (its CPU, process
time, as the servers' figure is):

* /v0/delegate: parse K, constant-time s·K, RSA-OAEP seal of 32 bytes,
  EIP-712 recovery of the request, EIP-712 signature of the answer;
* /v1/delegate: parse K, constant-time x_i·K, the DLEQ proof (r·G and a
  constant-time r·K), RSA-OAEP seal of 97 bytes, the same recovery and a
  signature.

The JSON table times the request's parse and the answer's encoding with the
stdlib, orjson and msgspec (those installed) in process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import (
    checkout_src,
    fmt_us,
    load_summary,
    measure_interleaved,
    print_table,
    process_tree_cpu,
    summed,
)
from bench.delegate import MULT_CONST, PARSE_K, floor_cases
from bench.delegate_fixture import CHAIN_ID, Fixture
from bench.http_load import WRK_LUA, run_wrk
from bench.targets import SERVER_CPU, print_targets, server_cpu_row
from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.devnet.processes import free_port

TARGET = SERVER_CPU
ROOT = Path(__file__).resolve().parent.parent
VARIANTS = (
    ("uvicorn", "fastapi"),
    ("uvicorn", "fastpath"),
    ("uvicorn", "bare"),
    ("granian", "fastpath"),
    ("granian", "bare"),
)
ROUTES = ("/v0/delegate", "/v1/delegate")


class Server:
    def __init__(
        self, server: str, app: str, env: dict[str, str], port: int, src: Path | None = None
    ) -> None:
        """``src``: another checkout's ``src/``, whose tkms this server runs (``--baseline``)."""
        self.name = f"{server} + {app}" + (" (baseline)" if src is not None else "")
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix="tkms-servers-", suffix=".log")  # noqa: SIM115
        script = str(ROOT / "bench" / "servers_app.py")
        path = str(ROOT) if src is None else os.pathsep.join([str(src), str(ROOT)])
        self.proc = subprocess.Popen(
            [sys.executable, script, server, app, str(port)],
            env=env | {"PYTHONPATH": path},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, fx: Fixture) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                for route in ROUTES:
                    answer = httpx.post(
                        self.url + route + f"?chain_id={CHAIN_ID}&salt={to_hex(bytes(32))}",
                        content=fx.body,
                        headers={"content-type": "application/json",
                                 "authorization": fx.authorization},
                    )  # fmt: skip
                    if answer.status_code != 200:
                        raise SystemExit(f"{self.name} {route}: {answer.status_code} {answer.text}")
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace")[-2000:]
        raise SystemExit(f"{self.name} did not start:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def v1_floor_cases(fx: Fixture) -> dict[str, Callable[[], object]]:
    """What a partial adds to, or changes in, the v0 floor (threshold.py's parts)."""
    point = curve.parse_point(bytes.fromhex(fx.ephemeral_hex[2:]))
    public = fx.rsa_private.public_key()
    envelope = os.urandom(97)
    from tkms.crypto import rsa

    def dleq_commitments() -> object:
        r = curve.random_scalar()
        curve.base_mul(r)  # A1 = r·G
        return curve.mul_secret_encoded(point, r)  # A2 = r·K

    return {
        "DLEQ commitments (r·G, constant-time r·K)": dleq_commitments,
        "RSA-OAEP-2048 seal of 97 bytes": lambda: public.encrypt(envelope, rsa._OAEP),
    }


def json_cases(fx: Fixture) -> dict[str, Callable[[], object]]:
    body = fx.body
    answer = {
        "index": 1,
        "epoch": 1,
        "encryptedPartial": "0x" + "ab" * 256,
        "proof": "0x" + "cd" * 65,
    }
    compact = json.JSONEncoder(separators=(",", ":"))
    cases: dict[str, Callable[[], object]] = {
        "stdlib json": lambda: (json.loads(body), compact.encode(answer).encode()),
    }
    try:
        import orjson

        cases["orjson"] = lambda: (orjson.loads(body), orjson.dumps(answer))
    except ImportError:
        pass
    try:
        import msgspec

        decoder, encoder = msgspec.json.Decoder(), msgspec.json.Encoder()
        cases["msgspec"] = lambda: (decoder.decode(body), encoder.encode(answer))
    except ImportError:
        pass
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server and route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--only", action="append", default=[], help='a row to run ("uvicorn + bare"); repeatable'
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another tkms checkout: its uvicorn + fastpath node is one more row, interleaved",
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    print(f"# tkms servers benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {load_summary()}\n")
    fx = Fixture.create()
    share = curve.random_scalar()
    variants = [v for v in VARIANTS if not args.only or f"{v[0]} + {v[1]}" in args.only]
    variants = [v for v in variants if v[0] != "granian" or _has_granian()]
    servers = []
    try:
        for server, app in variants:
            env = fx.env(0) | {"BENCH_SHARE": f"{share:x}"}
            port = free_port()
            env["NOX_KMS_SERVER__PORT"] = str(port)
            servers.append(Server(server, app, env, port))
        if args.baseline is not None:
            src = checkout_src(parser, args.baseline, "node")
            env = fx.env(0) | {"BENCH_SHARE": f"{share:x}"}
            port = free_port()
            env["NOX_KMS_SERVER__PORT"] = str(port)
            servers.insert(0, Server("uvicorn", "fastpath", env, port, src))
        for s in servers:
            s.wait_ready(fx)
        http = measure_http(servers, fx, wrk, args)
    finally:
        for s in servers:
            s.stop()
    loaded = load_summary()
    # The floors after the HTTP runs, interleaved with the JSON cases.
    floor = floor_cases(fx)
    v1 = v1_floor_cases(fx)
    cases = floor | v1 | json_cases(fx)
    # CPU, as the servers' figures are: a loaded machine's wall clock would inflate the floor.
    timings = measure_interleaved(cases, rounds=15, target=0.03, clock=time.process_time)
    common = ["EIP-712 recover request signer", "EIP-712 sign response proof", PARSE_K]
    floors = {
        "/v0/delegate": summed([timings[n] for n in [*common, MULT_CONST,
                                                     "RSA-OAEP-2048 seal of 32 bytes"]]),
        "/v1/delegate": summed([timings[n] for n in [*common, MULT_CONST, *v1]]),
    }  # fmt: skip
    rows = []
    for s in servers:
        for route in ROUTES:
            cpu = sorted(http[(s.name, route)])
            med = median(cpu)
            r = med / floors[route].median_us
            rows.append([s.name, route, fmt_us(med), ", ".join(fmt_us(c) for c in cpu),
                         fmt_us(floors[route].median_us), f"{r:.2f}×",
                         "met" if r <= TARGET else "NOT met"])  # fmt: skip
    print_table(
        f"Server CPU per request over HTTP (wrk -c {args.connections}, {args.rounds} rounds)",
        ["server + app", "route", "server CPU µs/req", "all rounds", "floor µs", "× floor",
         f"≤ {TARGET}× floor"],
        rows,
        markdown=args.markdown,
        caption=f"load during the HTTP runs: {loaded}; floors (CPU) measured after, in process",
    )  # fmt: skip
    chosen = next((s for s in servers if s.name == "uvicorn + fastpath"), servers[0])
    print_targets(
        [server_cpu_row(f"{route} ({chosen.name})", median(http[(chosen.name, route)]),
                        floors[route].median_us) for route in ROUTES],
        markdown=args.markdown,
    )  # fmt: skip
    json_rows = [[n, fmt_us(timings[n].median_us), fmt_us(timings[n].min_us)] for n in cases
                 if n in json_cases(fx)]  # fmt: skip
    print_table(
        "JSON: parse the request body + encode a partial's answer (µs per request)",
        ["library", "median µs", "min µs"],
        json_rows,
        markdown=args.markdown,
    )


def measure_http(
    servers: list[Server], fx: Fixture, wrk: str, args: argparse.Namespace
) -> dict[tuple[str, str], list[float]]:
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tkms-servers-") as tmp:
        script = Path(tmp) / "delegate.lua"
        script.write_text(WRK_LUA.format(body=fx.body.decode(), authorization=fx.authorization))
        salt = to_hex(bytes(32))
        for s in servers:  # warm every server's caches and paths
            for route in ROUTES:
                run_wrk(wrk, script, f"{s.url}{route}?chain_id={CHAIN_ID}&salt={salt}", 1.0,
                        args.connections, 1)  # fmt: skip
        for _ in range(args.rounds):
            for route in ROUTES:
                for s in servers:
                    url = f"{s.url}{route}?chain_id={CHAIN_ID}&salt={salt}"
                    before = process_tree_cpu(s.proc.pid)
                    fields, _ = run_wrk(wrk, script, url, args.duration, args.connections, 1)
                    after = process_tree_cpu(s.proc.pid)
                    if fields["non200"] or not fields["requests"]:
                        raise SystemExit(f"{s.name} {route}: {fields}")
                    assert before is not None and after is not None
                    cpu_us = (after - before) / fields["requests"] * 1e6
                    results.setdefault((s.name, route), []).append(cpu_us)
    return results


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _has_granian() -> bool:
    try:
        import granian  # noqa: F401
    except ImportError:
        print("granian is not installed: its rows are left out (pip install granian)\n")
        return False
    return True


if __name__ == "__main__":
    main()
