"""Load and soak through the whole system (issue 13 item 5), never in the test suite.

    .venv/bin/python bench/soak.py            (16, 64, 256 users × 60 s, then a 10-minute soak)
    .venv/bin/python bench/soak.py --quick    (10 s each, a 60 s soak: a smoke run)

One ``tkms devnet`` (5 nodes, t = 3, anvil with NoxCompute, the gateway on the
chain's ACL, as ``make devnet`` runs it). One public handle is made; then:

- **load**: ``USERS`` concurrent users (asyncio, each an ``AsyncClient`` with
  its own wallet, RSA key and connections) decrypt it in a closed loop for
  ``--seconds`` each: throughput, p50/p99, errors by kind;
- **soak**: 16 users paced to 50% of the best throughput the load phase
  measured, for ``--soak-seconds``: the same figures, and the RSS of every
  process of the devnet (gateway, each node, anvil, the devnet's parent) and
  of this process, after a warm-up and at the end. Targets (issue 13): no
  error, and RSS growth < 10% for each process.

The crypto floor of one decryption (client + t partials) is measured in the
same run (``bench/e2e_floors.py``) and printed with the CPU of all processes
per decryption, as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_summary, percentile, print_table, process_tree_cpu
from bench.devnets import devnet
from bench.e2e_floors import floors
from tkms.client import AsyncClient, Client
from tkms.client.sdk import devnet_settings
from tkms.crypto.wallet import Wallet
from tkms.devnet.manifest import DevnetManifest

USER_COUNTS = (16, 64, 256)
SOAK_USERS = 16
SOAK_SHARE = 0.5  # of the best measured throughput
WARM_UP = 0.2  # share of the soak before the first RSS reading
TARGET_RSS_GROWTH = 0.10


def rss_by_process(root: int) -> dict[str, int]:
    """RSS in bytes of ``root`` and its descendants, by a name from each command line."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            parents[pid] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = [
                a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0")
            ]
            status = (entry / "status").read_text().splitlines()
        except (OSError, IndexError, ValueError):
            continue
        line = next((x for x in status if x.startswith("VmRSS:")), None)
        if line is not None:
            rss[pid], names[pid] = int(line.split()[1]) * 1024, _name(argv)
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        if pid not in rss:
            continue
        name = "devnet (parent)" if pid == root else names[pid]
        key, k = name, 2
        while key in out:
            key, k = f"{name} #{k}", k + 1
        out[key] = rss[pid]
    return out


def _name(argv: list[str]) -> str:
    for word in ("gateway", "node", "anvil"):
        if any(Path(a).name == word for a in argv):
            return word
    return Path(argv[0]).name if argv and argv[0] else "?"


def _cpu(pid: int) -> float:
    """CPU seconds of the devnet's processes and of this one (the users')."""
    return (process_tree_cpu(pid) or 0.0) + time.process_time()


async def _run_users(
    settings: dict[str, Any],
    handle: str,
    users: int,
    seconds: float,
    rate: float | None,
    pid: int,
) -> dict[str, Any]:
    """Figures of the run after the warm-up; ``cpu`` is per decryption, all processes."""
    kw = {k: v for k, v in settings.items() if k not in ("gateway_url", "wallet")}
    clients = [
        AsyncClient(settings["gateway_url"], Wallet.generate(), timeout=60, **kw)
        for _ in range(users)
    ]
    errors: Counter[str] = Counter()
    first: dict[str, str] = {}  # each kind's first message, printed under the table
    walls: list[float] = []
    try:
        # Keys, keyset, connections; a failure here is counted too (as "warm-up …").
        for outcome in await asyncio.gather(
            *(c.decrypt(handle) for c in clients), return_exceptions=True
        ):
            if isinstance(outcome, Exception):
                errors[f"warm-up {type(outcome).__name__}"] += 1
                first.setdefault(type(outcome).__name__, str(outcome)[:200])
        end = time.perf_counter() + seconds
        interval = users / rate if rate else 0.0

        async def user(client: AsyncClient, offset: float) -> None:
            due = time.perf_counter() + offset
            while (now := time.perf_counter()) < end:
                if interval:
                    if now < due:
                        await asyncio.sleep(due - now)
                    due += interval
                start = time.perf_counter()
                try:
                    assert await client.decrypt(handle) == 7
                    walls.append(time.perf_counter() - start)
                except Exception as exc:  # counted, never hidden: the target is zero
                    errors[type(exc).__name__] += 1
                    first.setdefault(type(exc).__name__, str(exc)[:200])

        start, cpu = time.perf_counter(), _cpu(pid)
        await asyncio.gather(*(user(c, i * interval / users) for i, c in enumerate(clients)))
        elapsed, cpu = time.perf_counter() - start, _cpu(pid) - cpu
    finally:
        for c in clients:
            await c.aclose()
    walls.sort()
    return {
        "users": users,
        "rate": len(walls) / elapsed,
        "count": len(walls),
        "p50": percentile(walls, 50) if walls else float("nan"),
        "p99": percentile(walls, 99) if walls else float("nan"),
        "errors": errors,
        "first": first,
        "cpu": cpu / max(1, len(walls)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s per load, a 60 s soak")
    parser.add_argument("--seconds", type=float, help="per user count (default 60)")
    parser.add_argument("--soak-seconds", type=float, help="the soak (default 600)")
    parser.add_argument("--markdown", action="store_true", help="tables to paste into docs")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    soak_seconds = args.soak_seconds or (60.0 if args.quick else 600.0)
    print(f"# tkms load and soak — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"{load_summary()}\n")
    with devnet("chain") as (manifest_path, pid):
        manifest = DevnetManifest.load(manifest_path)
        floor = floors(manifest.threshold)
        asked = min(len(manifest.nodes), manifest.threshold + 1)  # t + spare (gateway.md §8)
        crypto = floor["client"] + asked * floor["node"]
        with Client.from_devnet(manifest_path) as owner:
            secret = owner.encrypt(7, "uint64")
            owner.register_on_chain(secret)
            owner.make_public_on_chain(secret)  # every user may read it
        settings = devnet_settings(manifest_path)
        rows, best, first = [], 0.0, {}
        for users in USER_COUNTS:
            run = asyncio.run(_run_users(settings, secret.handle, users, seconds, None, pid))
            first.update({f"{users} users, {k}": v for k, v in run["first"].items()})
            best = max(best, run["rate"])
            rows.append(_row(f"{users} users, closed loop, {seconds:.0f} s", run, crypto))
        target = SOAK_SHARE * best
        before: dict[str, int] = {}

        async def soak() -> dict[str, Any]:
            async def rss_after_warm_up() -> None:
                await asyncio.sleep(WARM_UP * soak_seconds)
                before.update(rss_by_process(pid) | {"this benchmark": _own_rss()})

            reader = asyncio.ensure_future(rss_after_warm_up())
            try:
                return await _run_users(
                    settings, secret.handle, SOAK_USERS, soak_seconds, target, pid
                )
            finally:
                await reader

        run = asyncio.run(soak())
        first.update({f"soak, {k}": v for k, v in run["first"].items()})
        after = rss_by_process(pid) | {"this benchmark": _own_rss()}
        rows.append(
            _row(
                f"soak: {SOAK_USERS} users at {target:.0f}/s, {soak_seconds:.0f} s",
                run,
                crypto,
            )
        )
    print_table(
        f"Decrypt load: {len(manifest.nodes)} nodes, t = {manifest.threshold}, chain ACL",
        ["run", "per s", "p50 ms", "p99 ms", "errors", "CPU/decrypt ms", "× floor"],
        rows,
        markdown=args.markdown,
        caption=(
            f"crypto floor of one decryption (client + the {asked} partials computed, measured"
            f" in this run): {crypto * 1000:.2f} ms; errors must be 0"
        ),
    )
    for where, message in first.items():
        print(f"first error of {where}: {message}")
    rss_rows = []
    for name in sorted(after):
        start, end = before.get(name), after[name]
        growth = (end - start) / start if start else float("nan")
        verdict = "met" if start and growth < TARGET_RSS_GROWTH else "NOT met"
        mib = f"{start / 2**20:.1f}" if start else "—"
        rss_rows.append([name, mib, f"{end / 2**20:.1f}", f"{growth:+.1%}", verdict])
    print_table(
        f"RSS during the soak (after {WARM_UP:.0%} of it as warm-up, and at the end)",
        ["process", "MiB after warm-up", "MiB at end", "growth", "< 10%"],
        rss_rows,
        markdown=args.markdown,
    )


def _row(label: str, run: dict[str, Any], crypto: float) -> list[str]:
    cpu = run["cpu"]
    errors = sum(run["errors"].values())
    kinds = ", ".join(f"{k} {v}" for k, v in run["errors"].most_common(3))
    return [
        label,
        f"{run['rate']:.0f}",
        f"{run['p50'] * 1000:.1f}",
        f"{run['p99'] * 1000:.1f}",
        f"{errors}" + (f" ({kinds})" if kinds else ""),
        f"{cpu * 1000:.2f}",
        f"{cpu / crypto:.1f}×",
    ]


def _own_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
