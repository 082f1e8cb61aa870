"""The gateway's CPU per decryption, this checkout against another one, in one run.

    .venv/bin/python bench/gateway_ab.py --baseline DIR [--rounds 600] [--users 1] [--markdown]

``DIR`` is another checkout of tkms (``git worktree add DIR main``, or ``git
archive main | tar -x -C DIR``): its ``src/`` is put first on the baseline
gateway's ``PYTHONPATH``. One ``tkms devnet`` (5 nodes in user mode, t = 3,
anvil, the chain's ACL, as ``make devnet`` runs it) and two gateway processes
in front of the same nodes with the devnet's gateway environment (the same
wallet and database): ``baseline`` (DIR's code) and ``this`` (this checkout's).
One public handle; one client per gateway decrypts it ``--rounds`` times,
in blocks of 50 alternating between the gateways, so that the machine's load
falls on both alike; with ``--users N``, N AsyncClients per gateway at once
(bench/e2e.py's load is 16), each ``per_user(N)`` decryptions per block. Per
gateway: its process's CPU (utime + stime, the whole
run, its background work included: both exist for all of it) per decryption,
and the p50 of a decryption through it. The crypto floor of one decryption
(client + the t + spare partials, ``bench/e2e_floors.py``) is measured in the
same run. The nodes, anvil and the client are the same for both: only the
gateway differs. So is the gateway's own crypto floor (``gateway_floor``): it
computes no partial, but per read it recovers the signer of each node's
``PartialDelegateResponseProof`` (t + spare ECDSA recoveries) and signs its
answer (one ECDSA signature); the user's token and the
``DelegateAuthorization`` are kept from the first read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coincurve import PrivateKey, PublicKey

from bench.common import checkout_src, load_summary, measure, print_table
from bench.devnets import devnet
from bench.e2e_floors import floors
from bench.user_mode import cpu_seconds
from tkms.client import AsyncClient, Client
from tkms.client.sdk import devnet_settings
from tkms.crypto.wallet import Wallet
from tkms.devnet.gateway import gateway_env
from tkms.devnet.keys import KeyDir
from tkms.devnet.manifest import DevnetManifest
from tkms.devnet.processes import Service, free_port, stop_all, wait_service_healthy

BLOCK = 50


def gateway_floor(asked: int) -> float:
    """Seconds of the gateway's per-read primitives: ``asked`` recoveries and one signature."""
    key = PrivateKey()
    digest = os.urandom(32)
    signature = key.sign_recoverable(digest, hasher=None)

    def read() -> object:
        for _ in range(asked):
            PublicKey.from_signature_and_message(signature, digest, hasher=None)
        return key.sign_recoverable(digest, hasher=None)

    return measure(read).median_us / 1e6


def _gateway(name: str, env: dict[str, str], log: Path, pythonpath: str | None) -> Service:
    port = free_port()
    env = {**env, "TKMS_GATEWAY_SERVER__PORT": str(port)}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tkms", "gateway"], env=env, stdout=out, stderr=out
        )
    service = Service(f"http://127.0.0.1:{port}", process, log, name)
    wait_service_healthy(service, 90)
    return service


def per_user(users: int) -> int:
    """Decryptions per user and block: at least 10, so a block is more than its ramp."""
    return max(10, BLOCK // users)


Measured = tuple[dict[str, list[float]], dict[str, float], float]


def _sequential(services: dict[str, Service], secret: Any, kw: Any, rounds: int) -> Measured:
    """One sync client per gateway, ``BLOCK`` decryptions each in turn."""
    clients = {n: Client(s.url, Wallet.generate(), **kw) for n, s in services.items()}
    walls: dict[str, list[float]] = {n: [] for n in services}
    for client in clients.values():
        assert client.decrypt(secret) == 7  # key, keyset, connection
    start = {n: cpu_seconds(s.process.pid) for n, s in services.items()}
    started = time.perf_counter()
    for _ in range(0, rounds, BLOCK):
        for name, client in clients.items():
            for _ in range(BLOCK):
                t0 = time.perf_counter()
                assert client.decrypt(secret) == 7
                walls[name].append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    cpu = {n: cpu_seconds(s.process.pid) - start[n] for n, s in services.items()}
    for client in clients.values():
        client.close()
    return walls, cpu, elapsed


async def _concurrent(
    services: dict[str, Service], secret: Any, kw: Any, users: int, rounds: int
) -> Measured:
    """``users`` AsyncClients per gateway at once, in blocks alternating between the gateways
    (:func:`per_user` decryptions per user and block: bench/e2e.py's 16 users' load)."""
    clients = {
        n: [AsyncClient(s.url, Wallet.generate(), **kw) for _ in range(users)]
        for n, s in services.items()
    }
    walls: dict[str, list[float]] = {n: [] for n in services}

    async def user(name: str, client: AsyncClient, count: int) -> None:
        for _ in range(count):
            t0 = time.perf_counter()
            assert await client.decrypt(secret) == 7
            walls[name].append(time.perf_counter() - t0)

    try:
        for group in clients.values():  # keys, keyset, connections
            await asyncio.gather(*(c.decrypt(secret) for c in group))
        start = {n: cpu_seconds(s.process.pid) for n, s in services.items()}
        started = time.perf_counter()
        each = per_user(users)
        for _ in range(0, rounds, each * users):
            for name, group in clients.items():
                await asyncio.gather(*(user(name, c, each) for c in group))
        elapsed = time.perf_counter() - started
        cpu = {n: cpu_seconds(s.process.pid) - start[n] for n, s in services.items()}
    finally:
        for group in clients.values():
            for client in group:
                await client.aclose()
    return walls, cpu, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another tkms checkout")
    parser.add_argument("--rounds", type=int, default=600, help="decryptions per gateway")
    parser.add_argument(
        "--users", type=int, default=1, help="concurrent AsyncClients per gateway (1: one sync)"
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    baseline_src = checkout_src(parser, args.baseline, "gateway")
    print(f"# tkms gateway A/B — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"{load_summary()}\n")
    with devnet("chain") as (manifest_path, _pid):
        manifest = DevnetManifest.load(manifest_path)
        state = manifest_path.parent
        floor = floors(manifest.threshold)
        asked = min(len(manifest.nodes), manifest.threshold + 1)
        crypto = floor["client"] + asked * floor["node"]
        own = gateway_floor(asked)
        env = {**os.environ, **gateway_env(KeyDir(state), state, 0, manifest)}
        services = {
            "baseline": _gateway("baseline", env, state / "gw-baseline.log", str(baseline_src)),
            "this": _gateway("this", env, state / "gw-this.log", None),
        }
        try:
            with Client.from_devnet(manifest_path) as owner:
                secret = owner.encrypt(7, "uint64")
                owner.register_on_chain(secret)
                owner.make_public_on_chain(secret)
            settings = devnet_settings(manifest_path)
            kw = {k: v for k, v in settings.items() if k not in ("gateway_url", "wallet")}
            if args.users > 1:
                walls, cpu, elapsed = asyncio.run(
                    _concurrent(services, secret, kw, args.users, args.rounds)
                )
            else:
                walls, cpu, elapsed = _sequential(services, secret, kw, args.rounds)
        finally:
            stop_all(list(services.values()))
    rows = []
    for name in services:
        per = cpu[name] / len(walls[name])
        rows.append(
            [
                name,
                f"{len(walls[name])}",
                f"{per * 1000:.2f}",
                f"{per / crypto:.2f}×",
                f"{per / own:.1f}×",
                f"{statistics.median(walls[name]) * 1000:.2f}",
            ]
        )
    who = (
        f"{args.users} concurrent users, {per_user(args.users)} decryptions each per block"
        if args.users > 1
        else f"one sync client, blocks of {BLOCK}"
    )
    ratio = cpu["this"] / cpu["baseline"] if cpu["baseline"] else float("nan")
    print_table(
        f"Gateway CPU per decryption: {len(manifest.nodes)} nodes (user mode), t = "
        f"{manifest.threshold}, chain ACL, one devnet, {who}, blocks alternating",
        [
            "gateway",
            "decrypts",
            "gateway CPU ms/decrypt",
            "× floor",
            "× gateway floor",
            "decrypt p50 ms",
        ],
        rows,
        markdown=args.markdown,
        caption=(
            f"floor: one decryption's crypto (client + {asked} partials), measured in this run:"
            f" {crypto * 1000:.2f} ms; the gateway's own ({asked} ECDSA recoveries + 1"
            f" signature): {own * 1000:.3f} ms; this / baseline gateway CPU = {ratio:.2f};"
            f" {elapsed:.0f} s; {load_summary()}"
        ),
    )


if __name__ == "__main__":
    main()
