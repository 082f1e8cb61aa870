"""A node's CPU per partial in a real decryption, and idle; this checkout against another.

    .venv/bin/python bench/node_cpu.py [--baseline DIR] [--pairs 2] [--rounds 300] [--idle 20]

One ``tkms devnet`` at a time (5 nodes in user mode, t = 3, anvil, the chain's ACL,
as ``make devnet`` runs it), started from this checkout's code or, with
``--baseline DIR`` (another checkout: ``git worktree add DIR main``), from DIR's
``src/`` first on ``PYTHONPATH`` (this checkout's own ``src/`` as well, not its
editable install); the two taken in turn ``--pairs`` times, the first of a pair
alternating, so that the machine's load falls on both alike. On each devnet, after a warm-up:

* **idle**: every node's process CPU (utime + stime from /proc) over ``--idle``
  seconds in which no one decrypts (the gateway still polls each node's keyset, the
  chain watch still reads NoxCompute): ms of CPU per second, per node;
* **sequential**: ``--rounds`` decryptions by the synchronous SDK, one at a time
  (requests reach idle processes one by one, as in a real decryption): the nodes'
  CPU over them divided by the ``/v1/delegate`` requests they served meanwhile (from
  their /metrics), and the same less each node's idle rate over that time.

The floor is one partial's primitives (``bench/e2e_floors.py``), measured once in
the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import checkout_src, load_summary, print_table
from bench.devnets import devnet
from bench.e2e_floors import floors
from bench.e2e_modes import node_pids
from bench.user_mode import cpu_seconds
from tkms.client import Client
from tkms.devnet.manifest import DevnetManifest

WARM_UP = 20


def partials_served(url: str) -> float:
    """``/v1/delegate`` requests the node has answered, from its /metrics."""
    served = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("tkms_node_http_requests_total{") and 'route="/v1/delegate"' in line:
            served += float(line.rsplit(" ", 1)[1])
    return served


def one_devnet(src: Path | None, rounds: int, idle: float) -> dict[str, Any]:
    saved = os.environ.get("PYTHONPATH")
    if src is not None:
        os.environ["PYTHONPATH"] = str(src)
    else:
        os.environ.pop("PYTHONPATH", None)
    try:
        with devnet("chain") as (manifest_path, devnet_pid):
            manifest = DevnetManifest.load(manifest_path)
            pids = sorted(node_pids(devnet_pid))
            urls = [node.url for node in manifest.nodes]
            with Client.from_devnet(manifest_path) as owner:
                handle = owner.encrypt(10**18, "uint256")
                owner.register_on_chain(handle)
                for _ in range(WARM_UP):
                    assert owner.decrypt(handle) == 10**18
                time.sleep(2)  # the warm-up's audit flush and keyset poll behind us
                before = [cpu_seconds(pid) for pid in pids]
                time.sleep(idle)
                idle_rates = [
                    (cpu_seconds(p) - b) / idle for p, b in zip(pids, before, strict=True)
                ]
                served = sum(partials_served(url) for url in urls)
                before = [cpu_seconds(pid) for pid in pids]
                started = time.perf_counter()
                for _ in range(rounds):
                    assert owner.decrypt(handle) == 10**18
                elapsed = time.perf_counter() - started
                cpu = sum(cpu_seconds(p) - b for p, b in zip(pids, before, strict=True))
                served = sum(partials_served(url) for url in urls) - served
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    return {
        "idle": statistics.mean(idle_rates),
        "idle_max": max(idle_rates),
        "per_partial": cpu / served,
        "busy_per_partial": (cpu - sum(idle_rates) * elapsed) / served,
        "partials_per_decrypt": served / rounds,
        "decrypt_ms": elapsed / rounds * 1000,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another tkms checkout")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=300, help="decryptions per devnet")
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds per devnet")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    # Both sides alike: an A/A run (DIR a copy of this code) put "this", then always the
    # second of a pair and the editable install, 0.13-0.28 ms/partial behind: both went.
    this_src = Path(__file__).resolve().parent.parent / "src"
    sides: dict[str, Path | None] = {"this": this_src}
    if args.baseline is not None:
        sides = {"baseline": checkout_src(parser, args.baseline, "node"), "this": this_src}
    print(f"# tkms node CPU per partial — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"{load_summary()}\n")
    floor = floors(3)["node"]
    runs: list[tuple[str, dict[str, Any]]] = []
    for pair in range(args.pairs):
        # ABBA: the side that runs first alternates (the A/A run above also ran second).
        order = list(sides.items()) if pair % 2 == 0 else list(reversed(sides.items()))
        for name, src in order:
            runs.append((name, one_devnet(src, args.rounds, args.idle)))
    rows = [
        [
            name,
            f"{run['idle'] * 1000:.2f} ({run['idle_max'] * 1000:.2f})",
            f"{run['per_partial'] * 1000:.3f}",
            f"{run['per_partial'] / floor:.2f}×",
            f"{run['busy_per_partial'] * 1000:.3f}",
            f"{run['partials_per_decrypt']:.2f}",
            f"{run['decrypt_ms']:.2f}",
            f"{run['load']:.2f}",
        ]
        for name, run in runs
    ]
    print_table(
        "A node's CPU: idle, and per partial over sequential decryptions (5 nodes in user"
        " mode, t = 3, chain ACL; one devnet per row, in the order run)",
        [
            "code",
            "idle ms/s per node (max)",
            "node CPU ms/partial",
            "× floor",
            "less idle, ms/partial",
            "partials/decrypt",
            "decrypt ms",
            "load 1 min",
        ],
        rows,
        markdown=args.markdown,
        caption=(
            f"floor: one partial's primitives, {floor * 1000:.3f} ms, measured in this run;"
            f" {args.rounds} sequential decryptions per devnet; {load_summary()}"
        ),
    )


if __name__ == "__main__":
    main()
