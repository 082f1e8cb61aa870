"""Gateway end to end: the SDK against `tkms devnet` (5 nodes, t = 3, gateway), on loopback.

    .venv/bin/python bench/e2e.py [--quick] [--markdown]

Measures, in one run and against the primitive floor measured in the same run:
- decrypt latency p50/p99 through the gateway, one user (sequential) and 16
  concurrent users (asyncio), with the share of time spent in the client's
  crypto, the gateway itself, waiting for the nodes, and HTTP/transport;
- encrypt throughput, sequential and with 16 concurrent users;
- the first call's extra cost (RSA-2048 key generation, the signed
  DataAccessAuthorization, the keyset fetch), reported apart: the SDK reuses
  its key and authorization afterwards.

Floors: client = t RSA-2048 opens + t DLEQ verifications + the Lagrange
combination + HKDF + AES-GCM; node = one partial's primitives (S_i, the DLEQ
nonce commitments, the RSA-OAEP seal, the ECDSA signature, the keccaks).
The nodes work in parallel, so the critical-path floor of a decryption is
client + node; on 2 cores the n partials also compete for the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from coincurve import PrivateKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import load_summary, measure, percentile, print_table, process_tree_cpu
from tkms.client import AsyncClient, Client
from tkms.client.sdk import devnet_settings
from tkms.crypto import curve, eip712, rsa, shamir
from tkms.crypto.wallet import Wallet
from tkms.devnet.manifest import DevnetManifest
from tkms.devnet.processes import free_port_block

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
TARGET_P50 = 0.015
USERS = 16


# --- the devnet ------------------------------------------------------------------------


@contextmanager
def devnet() -> Iterator[tuple[Path, int]]:
    with tempfile.TemporaryDirectory(prefix="tkms-e2e-") as root:
        state = Path(root) / "state"
        log = Path(root) / "devnet.log"
        command = [sys.executable, "-m", "tkms", "devnet", "--state-dir", str(state)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*command, "--base-port", str(free_port_block(5))], stdout=out, stderr=out
            )
        try:
            deadline = time.monotonic() + 120
            while "Ctrl-C stops the devnet" not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.2)
            yield state / "devnet.json", process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def node_seconds(manifest: DevnetManifest) -> tuple[float, float]:
    """(sum, count) of the nodes' own /v1/delegate handling time, from their /metrics."""
    total, count = 0.0, 0.0
    name = "tkms_node_http_request_duration_seconds"
    for node in manifest.nodes:
        for line in httpx.get(node.url + "/metrics").text.splitlines():
            if 'route="/v1/delegate"' in line:
                if line.startswith(name + "_sum"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.startswith(name + "_count"):
                    count += float(line.rsplit(" ", 1)[1])
    return total, count


# --- floors ------------------------------------------------------------------------------


def floors(t: int) -> dict[str, float]:
    """Seconds per call of the primitives a decryption cannot avoid (see the docstring)."""
    key = rsa.generate_private_key()
    public = key.public_key()
    shares = shamir.deal_shares(curve.random_scalar(), t, t + 2)[:t]
    k = curve.base_mul(curve.random_scalar())
    points = [curve.mul(k, s.value) for s in shares]
    vks = [curve.base_mul(s.value) for s in shares]
    sealed = [public.encrypt(os.urandom(97), OAEP) for _ in shares]
    lam = list(shamir.lagrange_coefficients([s.index for s in shares]).values())
    c = curve.scalar_to_bytes(curve.random_scalar())
    iv, plaintext = os.urandom(12), os.urandom(32)
    aes_key = os.urandom(32)
    ciphertext = AESGCM(aes_key).encrypt(iv, plaintext, None)
    signer = PrivateKey()
    digest = os.urandom(32)
    x_b = curve.scalar_to_bytes(shares[0].value)

    def client() -> object:
        for blob in sealed:
            key.decrypt(blob, OAEP)
        for vk, s_i in zip(vks, points, strict=True):  # z·G, c·Y_i, z·K, c·S_i
            curve.base_mul(int.from_bytes(c, "big"))
            vk.multiply(c)
            k.multiply(c)
            s_i.multiply(c)
        combined = curve.linear_combination(points, lam)
        hkdf = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1")
        hkdf.derive(curve.point_x(combined))
        return AESGCM(aes_key).decrypt(iv, ciphertext, None)

    def node() -> object:
        k.multiply(x_b)  # S_i
        r = curve.scalar_to_bytes(curve.random_scalar())
        curve.base_mul(int.from_bytes(r, "big"))  # A1 = r·G
        k.multiply(r)  # A2 = r·K
        public.encrypt(os.urandom(97), OAEP)
        signer.sign_recoverable(digest, hasher=None)
        return None

    def keygen() -> object:
        return rsa.generate_private_key()

    wallet = Wallet.generate()
    domain = eip712.gateway_domain(421614, verifying_contract=os.urandom(20))
    message = {
        "userAddress": wallet.address,
        "encryptionPubKey": "0x" + "ab" * 294,
        "notBefore": 1,
        "expiresAt": 2,
    }

    def authorization() -> object:
        return eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)

    out = {
        "client": measure(client).median_us / 1e6,
        "node": measure(node).median_us / 1e6,
        "authorization": measure(authorization).median_us / 1e6,
    }
    out["keygen"] = statistics.median(_timed(keygen) for _ in range(15))
    return out


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- measurements ---------------------------------------------------------------------------


def sequential(manifest: Path, rounds: int, pid: int) -> dict[str, Any]:
    with Client.from_devnet(manifest) as owner:
        handle = owner.encrypt(10**18, "uint256")
        cold = []
        for _ in range(10):  # fresh clients: keyset, then RSA key + authorization, then decrypt
            with Client.from_devnet(manifest) as fresh:
                marks = [time.perf_counter()]
                fresh.keyset()
                marks.append(time.perf_counter())
                fresh.core.material()
                marks.append(time.perf_counter())
                fresh.decrypt(handle)
                marks.append(time.perf_counter())
                cold.append([b - a for a, b in itertools.pairwise(marks)])
        owner.decrypt(handle)  # warm: keyset, material, connections
        walls, parts = [], []
        cpu = (process_tree_cpu(pid) or 0.0) + time.process_time()
        for _ in range(rounds):
            start = time.perf_counter()
            assert owner.decrypt(handle) == 10**18
            walls.append(time.perf_counter() - start)
            parts.append(dict(owner.core.last_timings))
        cpu = (process_tree_cpu(pid) or 0.0) + time.process_time() - cpu
        start = time.perf_counter()
        for i in range(rounds):
            owner.encrypt(i, "uint64")
        encrypt_rate = rounds / (time.perf_counter() - start)
    return {
        "walls": walls,
        "parts": parts,
        "cold": cold,
        "cpu": cpu / rounds,
        "encrypt_rate": encrypt_rate,
    }


def concurrent(manifest: Path, rounds: int) -> dict[str, Any]:
    settings = devnet_settings(manifest)
    with Client.from_devnet(manifest) as owner:
        handle = owner.encrypt(-42, "int256")
        owner.make_public(handle)

    async def user(walls: list[float]) -> None:
        kw = {k: v for k, v in settings.items() if k not in ("gateway_url", "wallet")}
        async with AsyncClient(settings["gateway_url"], Wallet.generate(), **kw) as client:
            await client.decrypt(handle)  # first call apart (key generation)
            for _ in range(rounds):
                start = time.perf_counter()
                assert await client.decrypt(handle) == -42
                walls.append(time.perf_counter() - start)

    async def encrypting() -> float:
        kw = {k: v for k, v in settings.items() if k not in ("gateway_url", "wallet")}
        clients = [
            AsyncClient(settings["gateway_url"], Wallet.generate(), **kw) for _ in range(USERS)
        ]

        async def one(client: AsyncClient) -> None:
            for i in range(rounds):
                await client.encrypt(i, "uint32")

        start = time.perf_counter()
        await asyncio.gather(*(one(c) for c in clients))
        elapsed = time.perf_counter() - start
        for c in clients:
            await c.aclose()
        return USERS * rounds / elapsed

    async def everyone() -> tuple[list[float], float]:
        walls: list[float] = []
        start = time.perf_counter()
        await asyncio.gather(*(user(walls) for _ in range(USERS)))
        return walls, time.perf_counter() - start

    walls, elapsed = asyncio.run(everyone())
    return {"walls": walls, "rate": len(walls) / elapsed, "encrypt_rate": asyncio.run(encrypting())}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--markdown", action="store_true", help="tables to paste into docs")
    args = parser.parse_args()
    rounds = 60 if args.quick else 300
    print(f"# tkms gateway end to end — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"python {sys.version.split()[0]}; {load_summary()}\n")
    with devnet() as (manifest_path, devnet_pid):
        manifest = DevnetManifest.load(manifest_path)
        t, n = manifest.threshold, len(manifest.nodes)
        node_before = node_seconds(manifest)
        seq = sequential(manifest_path, rounds, devnet_pid)
        node_after = node_seconds(manifest)
        con = concurrent(manifest_path, max(10, rounds // 16))
    floor = floors(t)
    critical = floor["client"] + floor["node"]
    cpu_floor = floor["client"] + n * floor["node"]
    walls = sorted(seq["walls"])
    cold = seq["cold"]
    cwalls = sorted(con["walls"])
    p50 = percentile(walls, 50)
    node_each = (node_after[0] - node_before[0]) / max(1.0, node_after[1] - node_before[1])
    verdict = "ok" if p50 < TARGET_P50 else "MISSED"
    print_table(
        f"Decrypt through the gateway: {n} nodes, t = {t}, spare 1, loopback",
        ["measure", "ms", "floor ms", "ratio", ""],
        [
            ["decrypt p50, 1 user", ms(p50), ms(critical), f"{p50 / critical:.1f}×", verdict],
            ["decrypt p99, 1 user", ms(percentile(walls, 99)), ms(critical), "", ""],
            ["decrypt p50, 16 users", ms(percentile(cwalls, 50)), "", "", ""],
            ["decrypt p99, 16 users", ms(percentile(cwalls, 99)), "", "", ""],
            ["first decrypt of a new client", ms(statistics.median(map(sum, cold))), "", "", ""],
            [
                "  keyset: fetch, check against Y",
                ms(statistics.median(c[0] for c in cold)),
                "",
                "",
                "",
            ],
            [
                "  RSA-2048 key, signed authorization",
                ms(statistics.median(c[1] for c in cold)),
                "",
                "",
                "",
            ],
            ["  the decryption itself", ms(statistics.median(c[2] for c in cold)), "", "", ""],
        ],
        markdown=args.markdown,
        caption=(
            f"target p50 < {TARGET_P50 * 1000:.0f} ms; floor = client {ms(floor['client'])} ms"
            f" + one node's partial {ms(floor['node'])} ms (critical path); all {n} partials"
            f" on this machine's CPU: {ms(cpu_floor)} ms. In the SDK's first call, alone:"
            f" RSA-2048 key generation {ms(floor['keygen'])} ms (median of 15; it varies"
            f" widely), the authorization's signature {ms(floor['authorization'])} ms"
        ),
    )
    print_table(
        "Throughput",
        ["measure", "per second"],
        [
            ["decrypt, 16 concurrent users", f"{con['rate']:.0f}"],
            ["encrypt, 1 user", f"{seq['encrypt_rate']:.0f}"],
            ["encrypt, 16 concurrent users", f"{con['encrypt_rate']:.0f}"],
        ],
        markdown=args.markdown,
    )
    parts = seq["parts"]
    client = statistics.median(p["client"] for p in parts)
    gateway = statistics.median(p.get("gateway", 0.0) for p in parts)
    nodes = statistics.median(p.get("kms", 0.0) for p in parts)
    rest = max(0.0, p50 - client - gateway - nodes)
    share = [
        ["client: signatures, RSA opens, DLEQ, combination, AES", client],
        ["gateway: authorization, database, ACL, signing", gateway],
        [f"nodes: the fan-out, until {t} + 1 answers are in", nodes],
        ["HTTP client, server and loopback (the rest)", rest],
    ]
    print_table(
        "Where a sequential decrypt's time goes (medians)",
        ["part", "ms", "share"],
        [[label, ms(v), f"{v / p50:.0%}"] for label, v in share]
        + [
            ["(one node's own handling of a partial, server side)", ms(node_each), ""],
            ["(CPU of all processes per decrypt)", ms(seq["cpu"]), ""],
        ],
        markdown=args.markdown,
    )


if __name__ == "__main__":
    main()
