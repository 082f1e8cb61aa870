"""The SDK's transports: client CPU per request, httpx against transport/http11*.py.

    .venv/bin/python bench/sdk_transport.py            # about a minute

A real ``tkms node`` (v0) answers ``GET /health`` (a few bytes: the request
costs the server little and the client's transport is what is left). Each
round sends the same requests through ``httpx.AsyncClient`` and through
:class:`tkms.transport.http11.Http11`, one at a time and then 16 at once, and
through ``httpx.Client`` and :class:`tkms.transport.http11_sync.Http11Sync`
(the synchronous SDK's), one at a time, every client in turn; a figure is
this process's CPU time (user + system, every thread) ÷ requests, the median
over rounds, against the httpx client of the same flavour.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvloop

from bench.common import fmt_us, load_summary, print_table
from bench.delegate_fixture import Fixture
from bench.http_load import NodeProcess
from tkms.transport.http11 import Http11
from tkms.transport.http11_sync import Http11Sync

SYNC_BASE, ASYNC_BASE = "httpx.Client", "httpx.AsyncClient"
SYNC_H11 = "transport/http11_sync.py (h11)"


async def per_request_cpu(send: Callable[[], Awaitable[int]], requests: int, users: int) -> float:
    async def user() -> None:
        for _ in range(requests // users):
            if await send() != 200:
                raise SystemExit("the node did not answer 200")

    start = time.process_time()
    await asyncio.gather(*(user() for _ in range(users)))
    return (time.process_time() - start) / (requests // users * users) * 1e6


def per_request_cpu_sync(send: Callable[[], int], requests: int) -> float:
    start = time.process_time()
    for _ in range(requests):
        if send() != 200:
            raise SystemExit("the node did not answer 200")
    return (time.process_time() - start) / requests * 1e6


async def main_async(url: str, rounds: int, requests: int) -> dict[tuple[str, int], list[float]]:
    results: dict[tuple[str, int], list[float]] = {}
    async with httpx.AsyncClient(timeout=10) as hx:
        hx_sync = httpx.Client(timeout=10)
        h11 = Http11(url, timeout=10)
        h11_sync = Http11Sync(url, timeout=10)

        async def via_httpx() -> int:
            return (await hx.get(url + "/health", params={"chain_id": "1"})).status_code

        async def via_h11() -> int:
            return (await h11.request("GET", "/health", {"chain_id": "1"}, {}, None)).status

        def via_httpx_sync() -> int:
            return hx_sync.get(url + "/health", params={"chain_id": "1"}).status_code

        def via_h11_sync() -> int:
            return h11_sync.request("GET", "/health", {"chain_id": "1"}, {}, None).status

        clients = {ASYNC_BASE: via_httpx, "transport/http11.py (h11)": via_h11}
        # The blocking ones block this loop while they run: nothing else is on it then.
        sync_clients = {SYNC_BASE: via_httpx_sync, SYNC_H11: via_h11_sync}
        for users in (1, 16):  # warm them all: connections, caches
            for send in clients.values():
                await per_request_cpu(send, 200, users)
        for send_sync in sync_clients.values():
            per_request_cpu_sync(send_sync, 200)
        for _ in range(rounds):
            for name, send_sync in sync_clients.items():
                cpu = per_request_cpu_sync(send_sync, requests)
                results.setdefault((name, 1), []).append(cpu)
            for users in (1, 16):
                for name, send in clients.items():
                    cpu = await per_request_cpu(send, requests, users)
                    results.setdefault((name, users), []).append(cpu)
        await h11.aclose()
        h11_sync.close()
        hx_sync.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    print(f"# tkms SDK transport benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {load_summary()}\n")
    node = NodeProcess(Fixture.create(), 1)
    try:
        node.wait_ready()
        results = uvloop.run(main_async(node.url, args.rounds, args.requests))
    finally:
        node.stop()

    def median(runs: list[float]) -> float:
        return sorted(runs)[len(runs) // 2]

    sync_names = (SYNC_BASE, SYNC_H11)
    rows = []
    for (name, users), runs in results.items():
        flavour = SYNC_BASE if name in sync_names else ASYNC_BASE
        ratio = median(runs) / median(results[(flavour, users)])
        rows.append([name, str(users), fmt_us(median(runs)), fmt_us(min(runs)), f"{ratio:.2f}×"])
    print_table(
        "Client CPU per request (GET /health on a real node, keep-alive)",
        ["transport", "concurrent", "median µs", "min µs", "× httpx"],
        rows,
        markdown=args.markdown,
        caption=f"{args.rounds} interleaved rounds of {args.requests} requests; {load_summary()}",
    )


if __name__ == "__main__":
    main()
