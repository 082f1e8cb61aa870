"""The async SDK's transport: client CPU per request, httpx against transport/http11.py.

    .venv/bin/python bench/sdk_transport.py            # about half a minute

A real ``tkms node`` (v0) answers ``GET /health`` (a few bytes: the request
costs the server little and the client's transport is what is left). Each
round sends the same requests through ``httpx.AsyncClient`` and through
:class:`tkms.transport.http11.Http11`, in turn, one at a time and then 16 at
once; a figure is this process's CPU time (user + system, every thread)
÷ requests, the median over rounds.
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


async def per_request_cpu(send: Callable[[], Awaitable[int]], requests: int, users: int) -> float:
    async def user() -> None:
        for _ in range(requests // users):
            if await send() != 200:
                raise SystemExit("the node did not answer 200")

    start = time.process_time()
    await asyncio.gather(*(user() for _ in range(users)))
    return (time.process_time() - start) / (requests // users * users) * 1e6


async def main_async(url: str, rounds: int, requests: int) -> dict[tuple[str, int], list[float]]:
    results: dict[tuple[str, int], list[float]] = {}
    async with httpx.AsyncClient(timeout=10) as hx:
        h11 = Http11(url, timeout=10)

        async def via_httpx() -> int:
            return (await hx.get(url + "/health", params={"chain_id": "1"})).status_code

        async def via_h11() -> int:
            return (await h11.request("GET", "/health", {"chain_id": "1"}, {}, None)).status

        clients = {"httpx.AsyncClient": via_httpx, "transport/http11.py (h11)": via_h11}
        for users in (1, 16):  # warm both: connections, caches
            for send in clients.values():
                await per_request_cpu(send, 200, users)
        for _ in range(rounds):
            for users in (1, 16):
                for name, send in clients.items():
                    cpu = await per_request_cpu(send, requests, users)
                    results.setdefault((name, users), []).append(cpu)
        await h11.aclose()
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
    base = {users: sorted(results[("httpx.AsyncClient", users)]) for users in (1, 16)}
    rows = []
    for (name, users), runs in results.items():
        runs.sort()
        median = runs[len(runs) // 2]
        ratio = median / base[users][len(base[users]) // 2]
        rows.append([name, str(users), fmt_us(median), fmt_us(runs[0]), f"{ratio:.2f}×"])
    print_table(
        "Client CPU per request (GET /health on a real node, keep-alive)",
        ["transport", "concurrent", "median µs", "min µs", "× httpx"],
        rows,
        markdown=args.markdown,
        caption=f"{args.rounds} interleaved rounds of {args.requests} requests; {load_summary()}",
    )


if __name__ == "__main__":
    main()
