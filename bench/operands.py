"""The runner's operand fetching in threshold mode, with and without the batch delegation.

    .venv/bin/python bench/operands.py [--quick] [--markdown]

Real processes on loopback: 5 nodes (t = 3, a real DKG over HTTP) and a
gateway with ``RUNNER_ADDRESS``; the runner is this process (tkms.client).
For m ∈ {1, 8, 64} operands:

- **batch**: ``Runner.operands`` — one ``GET /v1/compute/operands``, one
  ``POST /v1/delegate/batch`` per node, every node signature and DLEQ proof
  checked and combined by the runner;
- **per operand**: what a runner does without it — ``m`` concurrent
  ``GET /v1/secrets/{h}`` (the runner owns the records), each fanned out to
  every node (``/v1/delegate``), checked and combined by the SDK.

Per fetch: wall latency (median), gateway requests and node requests (counted
from the services' ``/metrics``), and CPU per operand (user + system of the
gateway, the nodes and this process, over all fetches). Then one node in
batch mode: partials per second of ``/v1/delegate/batch`` (64 keys, over
HTTP, sequential) and of the same code in process, against the primitive
floor of one partial (bench/threshold.py's constant-time floor without the
per-answer signature, plus one signature per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sha3
from coincurve import PrivateKey, PublicKey

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import print_table, process_tree_cpu
from bench.processes import BenchCluster, node_cluster
from bench.threshold import OAEP, paired
from tkms.client import AsyncClient, AsyncRunner
from tkms.client.relay import run_ceremony
from tkms.crypto import curve, dleq, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet.processes import Service, free_port, start, stop_all, wait_service_healthy
from tkms.node.delegation_batch import delegate_batch
from tkms.node.delegation_v1 import PartialDelegator, ShareHolding
from tkms.protocol.batch_delegation import batch_request

CHAIN_ID = 421614
N, T = 5, 3
SIZES = (1, 8, 64)
CONTRACT = bytes.fromhex("5e1f0a7e" * 5)


@dataclass
class Setup:
    cluster: BenchCluster
    gateway: Service
    y: str
    runner: Wallet
    pids: list[int]


@contextmanager
def running() -> Iterator[Setup]:
    with node_cluster(N, CHAIN_ID) as cluster:
        outcome = run_ceremony(cluster.committee(), cluster.admin, T)
        assert outcome.keyset is not None, outcome.errors
        y = str(outcome.keyset["publicKey"])
        runner = Wallet.generate()
        nodes = [
            {"index": i, "url": u, "signer": to_hex(cluster.signers[i])}
            for i, u in cluster.urls.items()
        ]
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="tkms-bench-gw-") as root:
            env = {
                "TKMS_GATEWAY_SIGNER__WALLET_KEY": to_hex(cluster.gateway.private_key_bytes()),
                "TKMS_GATEWAY_CHAIN__ID": str(CHAIN_ID),
                "TKMS_GATEWAY_CHAIN__NOX_COMPUTE_CONTRACT": to_hex(CONTRACT),
                "TKMS_GATEWAY_KMS__PUBLIC_KEY": y,
                "TKMS_GATEWAY_NODES": json.dumps(nodes),
                "TKMS_GATEWAY_RUNNER_ADDRESS": to_hex(runner.address),
                "TKMS_GATEWAY_STATE_DIR": root,
                "TKMS_GATEWAY_SERVER__PORT": str(port),
                "TKMS_GATEWAY_RATE_LIMIT__WRITES_PER_MINUTE": "0",
                # 64 operands one by one are 320 node requests at once on this machine.
                "TKMS_GATEWAY_DEADLINE": "30s",
                "TKMS_GATEWAY_NODE_TIMEOUT": "30s",
            }
            gateway = start(["gateway"], env, Path(root) / "gw.log", port, name="gateway")
            try:
                wait_service_healthy(gateway)
                pids = [*cluster.pids, gateway.process.pid]
                yield Setup(cluster, gateway, y, runner, pids)
            finally:
                stop_all([gateway])


def _cpu(pids: list[int]) -> float:
    return sum(process_tree_cpu(p) or 0.0 for p in pids) + time.process_time()


def _requests(url: str, route: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tkms_") and "_http_requests_total{" in line and f'"{route}"' in line
    )


def _counts(setup: Setup) -> tuple[float, float]:
    """(gateway runner + secrets requests, node delegation requests) so far."""
    gw = sum(
        _requests(setup.gateway.url, r) for r in ("/v1/compute/operands", "/v1/secrets/{handle}")
    )
    nodes = sum(
        _requests(u, r)
        for u in setup.cluster.urls.values()
        for r in ("/v1/delegate", "/v1/delegate/batch")
    )
    return gw, nodes


@dataclass
class Measured:
    mode: str
    m: int
    latency: float
    gateway_requests: float
    node_requests: float
    cpu_per_operand: float


async def _measure(
    setup: Setup, mode: str, m: int, rounds: int, fetch: Callable[[], Awaitable[object]]
) -> Measured:
    await fetch()  # warm: keys, connections, the keyset
    await asyncio.sleep(0.3)  # stragglers of the warm-up (the fan-out answers at t + spare)
    gw0, nodes0 = _counts(setup)
    cpu0 = _cpu(setup.pids)
    samples = []
    for _ in range(rounds):
        begin = time.perf_counter()
        await fetch()
        samples.append(time.perf_counter() - begin)
    await asyncio.sleep(0.3)
    cpu = _cpu(setup.pids) - cpu0
    gw, nodes = _counts(setup)
    return Measured(
        mode,
        m,
        statistics.median(samples),
        (gw - gw0) / rounds,
        (nodes - nodes0) / rounds,
        cpu / (rounds * m),
    )


async def fetch_rows(setup: Setup, sizes: tuple[int, ...]) -> list[Measured]:
    trust = {
        "chain_id": CHAIN_ID,
        "gateway_signer": setup.cluster.gateway.address,
        "verifying_contract": CONTRACT,
        "kms_public_key": setup.y,
        "timeout": 120.0,
    }
    rows = []
    async with (
        AsyncClient(setup.gateway.url, setup.runner, **trust) as owner,
        AsyncRunner(setup.gateway.url, setup.runner, **trust) as runner,
    ):
        handles = [(await owner.encrypt(i, "uint256")).handle for i in range(max(sizes))]
        for m in sizes:
            subset = handles[:m]
            rounds = max(3, 48 // m)

            async def batch(subset: list[str] = subset) -> object:
                got = await runner.operands(subset, block_number=1)
                assert [o.value for o in got] == list(range(len(subset)))
                return got

            async def one_by_one(subset: list[str] = subset) -> object:
                got = await asyncio.gather(*(owner.decrypt(h) for h in subset))
                assert list(got) == list(range(len(subset)))
                return got

            rows.append(await _measure(setup, "batch", m, rounds, batch))
            rows.append(await _measure(setup, "per operand", m, rounds, one_by_one))
    return rows


# --- one node in batch mode ---------------------------------------------------------


def node_rows(setup: Setup, batch: int = 64) -> list[list[str]]:
    target_key = rsa.generate_private_key()
    target = to_hex(rsa.public_key_der(target_key))
    keys = [to_hex(curve.encode_point(curve.base_mul(curve.random_scalar()))) for _ in range(batch)]
    request = batch_request(setup.cluster.gateway, CHAIN_ID, keys, target)
    url = setup.cluster.urls[1] + request.target(bytes(32))
    samples = []
    with httpx.Client(timeout=60) as http:
        for _ in range(12):
            begin = time.perf_counter()
            answer = http.post(
                url, headers={"Authorization": request.authorization}, json=request.body
            )
            samples.append(time.perf_counter() - begin)
            assert answer.status_code == 200, answer.text
    http_rate = batch / min(samples)

    # The same code in process, and the floor of its primitives.
    x_i = curve.random_scalar()
    node_wallet, gateway = Wallet.generate(), Wallet.generate()
    partials = PartialDelegator(node_wallet, {CHAIN_ID: gateway.address})
    partials.holdings[CHAIN_ID] = ShareHolding(1, 1, dleq.Prover(x_i), {})
    local = batch_request(gateway, CHAIN_ID, keys, target)
    body = json.dumps(local.body).encode()
    salt = to_hex(bytes(32))

    def in_process() -> object:
        return delegate_batch(partials, 128, str(CHAIN_ID), salt, local.authorization, body)

    pub = target_key.public_key()
    k0 = curve.parse_point(bytes.fromhex(keys[0][2:]))
    envelope, digest = os.urandom(97), os.urandom(32)
    raw_key = PrivateKey(node_wallet.private_key_bytes())
    hex_partial = b"0x" + os.urandom(256).hex().encode()

    def floor_one() -> object:  # one partial: S_i, the DLEQ proof's two products, the seal
        curve.mul_secret_encoded(k0, x_i)
        r = curve.random_scalar()
        curve.base_mul(r)
        curve.mul_secret_encoded(k0, r)
        pub.encrypt(envelope, OAEP)
        sha3.keccak_256(hex_partial).digest()
        return None

    signature = raw_key.sign_recoverable(digest, hasher=None)

    def floor_signature() -> object:  # once per batch: the request's recovery, the answer's
        PublicKey.from_signature_and_message(signature, digest, hasher=None)
        return raw_key.sign_recoverable(digest, hasher=None)

    def floor_batch() -> object:
        for _ in range(batch):
            floor_one()
        return floor_signature()

    # Interleaved, each one's best: the machine is shared, its load moves.
    local_s, floor_s = paired(in_process, floor_batch)
    rows = [
        ["/v1/delegate/batch over HTTP (64 keys, best of 12)", f"{http_rate:,.0f}", ""],
        ["delegate_batch in process (64 keys)", f"{batch / local_s:,.0f}", ""],
        ["primitive floor (64 partials + 1 signature each way)", f"{batch / floor_s:,.0f}", ""],
    ]
    rows[1][2] = f"{local_s / floor_s:.2f}× floor"
    rows[0][2] = f"{min(samples) / floor_s:.2f}× floor"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="m ∈ {1, 8} only")
    parser.add_argument("--markdown", action="store_true", help="tables for docs/performance.md")
    args = parser.parse_args()
    sizes = SIZES[:2] if args.quick else SIZES
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s); n = {N}, t = {T}")
    with running() as setup:
        measured = asyncio.run(fetch_rows(setup, sizes))
        node = node_rows(setup)
    print_table(
        "Operand fetching, threshold mode (real processes on loopback)",
        ["mode", "m", "latency ms", "ms / operand", "gateway req", "node req", "CPU ms / operand"],
        [
            [
                r.mode,
                str(r.m),
                f"{r.latency * 1e3:,.1f}",
                f"{r.latency * 1e3 / r.m:,.2f}",
                f"{r.gateway_requests:g}",
                f"{r.node_requests:g}",
                f"{r.cpu_per_operand * 1e3:,.2f}",
            ]
            for r in measured
        ],
        markdown=args.markdown,
    )
    print_table(
        "One node in batch mode: partials per second",
        ["path", "partials/s", "vs floor"],
        node,
        markdown=args.markdown,
    )


if __name__ == "__main__":
    main()
