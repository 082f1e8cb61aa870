"""CPU of one on-chain ACL read: ``NoxCompute.isViewer`` against anvil on loopback.

    .venv/bin/python bench/chain.py [--calls 500] [--runs 5] [--markdown]

Starts anvil from node_modules, deploys NoxCompute and the demo app, registers one
handle, then times ``calls`` reads per case, ``runs`` times round-robin, and reports the
median run per call:
- CPU of this process (``time.process_time``: user + system, every thread),
- wall time, and the CPU that anvil spent on the same calls (from /proc).

Cases: the ABI work alone (encode the call, decode the bool; no I/O), one plain
``httpx.Client.post`` of a prepared eth_call body (the transport floor), and the real
readers, ``NoxCompute.is_viewer`` (sync ``RpcClient``, httpx) and ``AsyncNoxCompute.is_viewer``
(``AsyncRpcClient``, on transport/http11.py, awaited one at a time on one event loop),
each beside its floor: ``httpx.AsyncClient.post`` and ``Http11.request`` of the prepared
body. The services' reads go through the async one.

:func:`async_is_viewer_cost` is the last case alone, against any chain: bench/e2e.py
calls it against the devnet's anvil, as the gateway's per-read cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from tests.chainnet import start_chain

from bench.common import load_summary, print_table, process_tree_cpu
from tkms.chain.contract import AsyncNoxCompute
from tkms.chain.rpc import AsyncRpcClient
from tkms.transport.http11 import Http11


def _run(fn: Callable[[], object], calls: int, anvil_pid: int | None) -> tuple[float, float, float]:
    """(own CPU, wall, anvil CPU) per call, in microseconds (anvil 0 without its pid)."""
    anvil_before = (process_tree_cpu(anvil_pid) or 0.0) if anvil_pid else 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    anvil = ((process_tree_cpu(anvil_pid) or 0.0) - anvil_before) if anvil_pid else 0.0
    return cpu / calls * 1e6, wall / calls * 1e6, anvil / calls * 1e6


def async_is_viewer_cost(
    url: str,
    nox: bytes,
    handle: bytes,
    viewer: bytes,
    *,
    calls: int = 300,
    runs: int = 3,
    anvil_pid: int | None = None,
) -> tuple[float, float, float]:
    """Median over ``runs`` of (CPU, wall, anvil CPU) µs per ``AsyncNoxCompute.is_viewer``:
    the read the gateway makes per decryption, with its client."""
    loop = asyncio.new_event_loop()
    rpc = AsyncRpcClient(url)
    reader = AsyncNoxCompute(rpc, nox)

    async def _calls() -> None:
        for _ in range(calls):
            assert await reader.is_viewer(handle, viewer)

    try:
        loop.run_until_complete(_calls())  # warm up: the connection
        results = [
            _run(lambda: loop.run_until_complete(_calls()), calls, anvil_pid) for _ in range(runs)
        ]
        loop.run_until_complete(rpc.aclose())
    finally:
        loop.close()
    cpu, wall, anvil = (statistics.median(r[i] for r in results) for i in range(3))
    return cpu, wall, anvil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    calls = args.calls

    print(load_summary())
    net = start_chain()
    try:
        handle = net.registered(net.alice)
        viewer, nox = net.alice.address, net.nox
        assert nox.is_viewer(handle, viewer)
        function = nox.abi.function("isViewer")
        calldata = function.encode(handle, viewer)
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_call",
                "params": [
                    {"to": "0x" + nox.address.hex(), "data": "0x" + calldata.hex()},
                    "latest",
                ],
            }
        ).encode()
        raw_http = httpx.Client(trust_env=False)
        word = bytes(31) + b"\x01"
        loop = asyncio.new_event_loop()
        arpc = AsyncRpcClient(net.anvil.url)
        anox = AsyncNoxCompute(arpc, nox.address)

        def abi_only() -> None:
            for _ in range(calls):
                function.encode(handle, viewer)
                function.decode(word)

        def plain_post() -> None:
            for _ in range(calls):
                raw_http.post(
                    net.anvil.url, content=body, headers={"content-type": "application/json"}
                )

        def sync_reader() -> None:
            for _ in range(calls):
                nox.is_viewer(handle, viewer)

        raw_async = httpx.AsyncClient(trust_env=False)

        async def _async_posts() -> None:
            for _ in range(calls):
                await raw_async.post(
                    net.anvil.url, content=body, headers={"content-type": "application/json"}
                )

        def async_plain_post() -> None:
            loop.run_until_complete(_async_posts())

        h11_http = Http11(net.anvil.url, timeout=8.0)

        async def _h11_posts() -> None:
            for _ in range(calls):
                await h11_http.request("POST", "", {}, {}, body, idempotent=True)

        def h11_plain_post() -> None:
            loop.run_until_complete(_h11_posts())

        async def _async_calls() -> None:
            for _ in range(calls):
                await anox.is_viewer(handle, viewer)

        def async_reader() -> None:
            loop.run_until_complete(_async_calls())

        cases = {
            "ABI encode + decode only (no I/O)": abi_only,
            "httpx.Client.post, prepared body (transport floor)": plain_post,
            "NoxCompute.is_viewer (sync RpcClient)": sync_reader,
            "httpx.AsyncClient.post, prepared body (async floor)": async_plain_post,
            "Http11.request, prepared body (h11 floor)": h11_plain_post,
            "AsyncNoxCompute.is_viewer (AsyncRpcClient, h11)": async_reader,
        }
        for fn in cases.values():  # warm up: connections, caches
            fn()
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, fn in cases.items():
                results[name].append(_run(fn, calls, net.anvil.process.pid))
        rows = []
        for name, runs in results.items():
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            anvil = statistics.median(r[2] for r in runs)
            rows.append(
                [
                    name,
                    f"{cpu:.0f}",
                    f"{min(r[0] for r in runs):.0f}",
                    f"{wall:.0f}",
                    f"{anvil:.0f}",
                ]
            )
        print_table(
            f"isViewer against anvil on loopback: {calls} calls x {args.runs} runs, per call",
            ["case", "CPU µs (median)", "CPU µs (min)", "wall µs", "anvil CPU µs"],
            rows,
            markdown=args.markdown,
            caption="CPU = this process's time.process_time(); anvil CPU from /proc (10 ms ticks).",
        )
        loop.run_until_complete(arpc.aclose())
        loop.run_until_complete(raw_async.aclose())
        loop.run_until_complete(h11_http.aclose())
        loop.close()
        raw_http.close()
    finally:
        net.rpc.close()
        net.anvil.stop()


if __name__ == "__main__":
    main()
