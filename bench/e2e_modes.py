"""User mode vs gateway mode for the nodes, end to end (bench/e2e.py; docs/performance.md,
"User mode").

Two devnets on the chain ACL, one after the other: the default (nodes in ``user`` mode:
each checks the binding, the user's signature and ``isViewer`` on its own RPC for
every partial, the last two through their caches: protocol/access_cache.py,
chain/acl_cache.py) and ``tkms devnet --node-mode gateway`` (the gateway's signature
only). Per devnet: decrypt p50 of one user, p50 and throughput of 16 users, and the nodes' CPU per
partial (utime + stime of every node process from /proc over the sequential decrypts,
divided by the ``/v1/delegate`` requests they served meanwhile, from their /metrics).
"""

from __future__ import annotations

import os
from typing import Any

from bench.common import children, percentile, print_table, process_tree_cpu


def node_pids(devnet_pid: int) -> list[int]:
    """The devnet's node processes (``python -m tkms node``)."""
    return [pid for pid, argv in children(devnet_pid) if b"node" in argv]


def nodes_cpu(pids: list[int]) -> float:
    return sum(process_tree_cpu(pid) or 0.0 for pid in pids)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def print_modes(user: dict[str, Any], gateway: dict[str, Any], *, markdown: bool) -> None:
    """The two node modes side by side (both on the chain ACL)."""

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.2f}"

    rows: list[list[str]] = []
    for label, value in (
        ("decrypt p50, 1 user (ms)", lambda r: percentile(sorted(r["seq"]["walls"]), 50)),
        ("decrypt p99, 1 user (ms)", lambda r: percentile(sorted(r["seq"]["walls"]), 99)),
        ("decrypt p50, 16 users (ms)", lambda r: percentile(sorted(r["con"]["walls"]), 50)),
        ("node CPU per partial (ms)", lambda r: r["node_cpu"]),
        ("node's own handling of a partial (ms)", lambda r: r["node_each"]),
    ):
        a, b = value(user), value(gateway)
        rows.append([label, ms(a), ms(b), f"{(a - b) * 1000:+.2f}", f"{a / b:.2f}×"])
    a, b = user["con"]["rate"], gateway["con"]["rate"]
    rows.append(["decrypt, 16 users (per second)", f"{a:.0f}", f"{b:.0f}", f"{a - b:+.0f}", ""])
    rows.append(["load average 1/5/15 min, at the end", user["load"], gateway["load"], "", ""])
    print_table(
        "Nodes in user mode vs gateway mode (chain ACL, two devnets, one after the other)",
        ["measure", "user mode", "gateway mode", "user − gateway", "ratio"],
        rows,
        markdown=markdown,
        caption=(
            "user mode: per partial the binding's keccak, the user's token checked (its"
            " ECDSA outcome cached per token) and isViewer (a true answer cached 60 s: one"
            " eth_call to anvil per node a minute here); node CPU: all node processes over"
            " the sequential decrypts / partials they served"
        ),
    )
