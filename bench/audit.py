"""What the node's audit log costs a delegation (docs/performance.md, "Audit log").

    .venv/bin/python bench/audit.py              # about a minute
    .venv/bin/python bench/audit.py --requests 3000 --rounds 3

Two measurements, both in this run:

1. in process: one ``Decisions.record`` (the counter, then hashing and
   buffering the entry) with and without an ``AuditLog`` behind it, the
   writer thread's write and fsync included (process CPU time, best of 5);
2. over HTTP on loopback: ``tkms node`` (one worker, v0, the bench fixture's
   signed request) as a subprocess, without an audit directory and with one,
   in alternating rounds; the node process's CPU seconds (user + system, the
   writer thread included) per served delegation, and the throughput of a
   16-connection asyncio httpx client.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from prometheus_client import CollectorRegistry

from bench.common import process_tree_cpu
from bench.delegate_fixture import Fixture
from bench.http_load import NodeProcess
from tkms.crypto.encoding import to_hex
from tkms.node.audit import AuditLog, AuditNote, Decisions


class _WithAudit:
    """The fixture's node environment, plus an audit directory."""

    def __init__(self, fx: Fixture, directory: Path) -> None:
        self._fx, self._directory = fx, directory

    def env(self, port: int) -> dict[str, str]:
        return self._fx.env(port) | {"TKMS_NODE_AUDIT_DIR": str(self._directory)}


def in_process(fx: Fixture, count: int, reps: int = 5) -> dict[str, float]:
    """Seconds per decision, the best of ``reps`` alternating runs (the machine is shared)."""
    note = AuditNote("v0", chain_id=421614, requester=fx.gateway.address)
    note.ephemeral_pubkey, note.target_pubkey = fx.ephemeral_hex, fx.target_hex
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog(Path(tmp), max_bytes=2**30)
        log.open()
        try:
            for _ in range(reps):
                for label, audit in (("counter only", None), ("counter + audit log", log)):
                    decisions = Decisions(CollectorRegistry(), audit)
                    start = time.process_time()  # the writer thread's CPU included
                    for _ in range(count):
                        decisions.record(note, "served", None)
                    log.flush()
                    took = (time.process_time() - start) / count
                    out[label] = min(out.get(label, took), took)
        finally:
            log.close()
    return out


async def _load(url: str, fx: Fixture, total: int, connections: int) -> float:
    path = fx.path(to_hex(bytes(32)))
    headers = {"content-type": "application/json", "authorization": fx.authorization}
    left = total

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            answer = await client.post(path, content=fx.body, headers=headers)
            if answer.status_code != 200:
                raise SystemExit(f"node answered {answer.status_code}: {answer.text}")

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(connections)))
        return time.perf_counter() - start


def over_http(fx: Fixture, audited: bool, requests: int, directory: Path) -> tuple[float, float]:
    """(node CPU seconds per delegation, delegations per second) of one round."""
    env: Any = _WithAudit(fx, directory) if audited else fx
    node = NodeProcess(env, 1)
    try:
        node.wait_ready()
        asyncio.run(_load(node.url, fx, 300, 16))  # warm caches and connections
        before = process_tree_cpu(node.proc.pid)
        seconds = asyncio.run(_load(node.url, fx, requests, 16))
        after = process_tree_cpu(node.proc.pid)
    finally:
        node.stop()
    assert before is not None and after is not None
    return (after - before) / requests, requests / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fx = Fixture.create()
    for label, seconds in in_process(fx, 20000).items():
        print(f"in process, one decision, {label}: {seconds * 1e6:.2f} µs")
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for audited in (False, True):
                directory = Path(tmp) / f"audit-{round_}"
                results[audited].append(over_http(fx, audited, args.requests, directory))
    for audited, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        rate = statistics.median(r[1] for r in runs)
        label = "with audit log   " if audited else "without audit log"
        print(f"HTTP, {label}: node CPU {cpu * 1e6:.0f} µs/delegation, {rate:.0f} delegations/s")
        print("    rounds:", ", ".join(f"{r[0] * 1e6:.0f} µs" for r in runs))


if __name__ == "__main__":
    main()
