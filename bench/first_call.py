"""A new client's first decryption against a warm one, part by part (issue 13's fourth target).

    .venv/bin/python bench/first_call.py [--rounds 20] [--markdown]
    .venv/bin/python bench/first_call.py --rsa   # a new RSA key's first open, by thread

Starts ``tkms devnet`` (chain ACL, nodes in user mode: the devnet's default) and,
``--rounds`` times: a fresh ``Client.from_devnet`` sleeps FIRST_CALL_DELAY (100 ms)
and decrypts once; then the warm owner sleeps as long and decrypts once. Each
first call is thus compared with a warm call made in the same seconds after the
same pause: a warm p50 measured back to back, minutes apart (bench/e2e.py's
reference until now), differs from it by the machine's load in between and by
what a pause costs every process (caches, wake-ups), neither of which is the
first call's. Both are printed; bench/e2e.py runs the same :func:`first_calls`.

Per call it splits the wall time into: the key and authorization (``material()``),
the read's HTTP exchange (of which the gateway's own time and its wait for the
nodes, from ``Server-Timing``), the client's work on the answer (the rest), the
first RSA-OAEP open (a new key's first private operation on this thread sets up
OpenSSL's blinding), and the CPU each devnet process spent meanwhile
(``/proc/*/task/*/schedstat``, in ns: a first sight of a new authorization costs
the gateway and each node its checks). It instruments the client from outside,
so the same script times main's SDK (``PYTHONPATH=<checkout>/src``) and this one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.backends import openssl

from bench.common import children, load_summary, percentile, print_table
from bench.devnets import devnet
from tkms.client import Client
from tkms.client.gateway_core import HttpRequest, HttpResponse
from tkms.crypto import rsa

FIRST_CALL_DELAY = 0.1  # how long the client exists before its first call
TARGET_FIRST_CALL = 1.5  # a first decrypt against a warm one (issue 13)
_current: dict[str, float] = defaultdict(float)  # the parts of the call under way
_rsa_decrypt = rsa.decrypt


def _timed_rsa_decrypt(private_key: rsa.RSAPrivateKey, ciphertext: bytes) -> bytes:
    start = time.perf_counter()
    try:
        return _rsa_decrypt(private_key, ciphertext)
    finally:
        spent = time.perf_counter() - start
        _current["rsa"] += spent
        _current.setdefault("rsa_first_open", spent)


def devnet_children(devnet_pid: int) -> dict[str, list[int]]:
    """The devnet's processes by kind: gateway, node, anvil."""
    kinds: dict[str, list[int]] = defaultdict(list)
    for pid, argv in children(devnet_pid):
        kind = "gateway" if b"gateway" in argv else "node" if b"node" in argv else "anvil"
        kinds[kind].append(pid)
    return kinds


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of every thread of ``pids`` (schedstat: ns, not /proc/stat's 10 ms ticks)."""
    total = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return total / 1e9


def instrument(client: Client) -> None:
    """Time the client's material step and each exchange (on this object only)."""
    send, material = client._send, client.core.material

    def timed_send(request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = send(request)
        _current["http " + request.path.split("/")[2]] += time.perf_counter() - start
        for part in response.headers.get("server-timing", "").split(","):
            name, _, duration = part.strip().partition(";dur=")
            if duration:
                _current["server " + name] += float(duration) / 1000
        return response

    def timed_material(**kw: Any) -> Any:
        keys = getattr(client.core, "_keys", None)
        _current["key ready"] = float(keys is None or keys.wait(0))
        start = time.perf_counter()
        try:
            return material(**kw)
        finally:
            _current["material"] += time.perf_counter() - start

    client._send = timed_send  # type: ignore[method-assign]
    client.core.material = timed_material  # type: ignore[method-assign]


def one_call(client: Client, handle: str, pids: dict[str, list[int]]) -> dict[str, float]:
    _current.clear()
    kept = float(bool(client._http._idle))  # a connection to take (the keyset prefetch's)
    before = {kind: cpu_seconds(p) for kind, p in pids.items()}
    own = time.process_time()
    start = time.perf_counter()
    client.decrypt(handle)
    parts = dict(_current)
    parts["total"] = time.perf_counter() - start
    parts["connection kept"] = kept
    parts["cpu client"] = time.process_time() - own
    for kind, p in pids.items():
        parts["cpu " + kind] = cpu_seconds(p) - before[kind]
    parts["client rest"] = parts["total"] - parts.get("http secrets", 0.0) - parts["material"]
    return parts


def first_calls(
    manifest: Path, handle: str, owner: Client, devnet_pid: int, rounds: int
) -> dict[str, list[dict[str, float]]]:
    """``rounds`` pairs: a fresh client's first call, then the warm owner's after the same pause."""
    rsa.decrypt = _timed_rsa_decrypt  # for both sides alike
    pids = devnet_children(devnet_pid)
    instrument(owner)
    out: dict[str, list[dict[str, float]]] = {"first": [], "warm": []}
    try:
        for _ in range(rounds):
            with Client.from_devnet(manifest) as fresh:
                instrument(fresh)
                time.sleep(FIRST_CALL_DELAY)
                out["first"].append(one_call(fresh, handle, pids))
            time.sleep(FIRST_CALL_DELAY)
            out["warm"].append(one_call(owner, handle, pids))
    finally:
        rsa.decrypt = _rsa_decrypt
        del owner._send, owner.core.material  # the class's methods again
    return out


PARTS = (
    ("total", "the decryption (wall)"),
    ("material", "  the key and signed authorization (material())"),
    ("http secrets", "  the read's HTTP exchange"),
    ("server gateway", "    of which the gateway's own time"),
    ("server kms", "    of which its wait for the nodes"),
    ("client rest", "  the client's work on the answer (the rest)"),
    ("rsa_first_open", "    of which its first RSA-OAEP open"),
    ("rsa", "    of which all its RSA-OAEP opens"),
    ("cpu client", "CPU of the client process"),
    ("cpu gateway", "CPU of the gateway"),
    ("cpu node", "CPU of the 5 nodes"),
)


def print_breakdown(pairs: dict[str, list[dict[str, float]]], *, markdown: bool) -> None:
    """Medians of each part: all first calls, those whose key was made before them
    (keygen apart: what is left of a first call), the warm calls, and the difference."""
    firsts, warms = pairs["first"], pairs["warm"]
    ready = [p for p in firsts if p.get("key ready", 1.0)]
    kept = sum(int(p.get("connection kept", 0.0)) for p in firsts)

    def median(calls: list[dict[str, float]], key: str) -> float:
        return float(statistics.median(p.get(key, 0.0) for p in calls))

    rows = []
    for key, label in PARTS:
        a, b = median(firsts, key), median(warms, key)
        r = median(ready, key) if ready else None
        made = ["—", "—"] if r is None else [f"{r * 1000:.2f}", f"{(r - b) * 1000:+.2f}"]
        rows.append([label, f"{a * 1000:.2f}", made[0], f"{b * 1000:.2f}", made[1]])
    print_table(
        f"A first decryption {FIRST_CALL_DELAY * 1000:.0f} ms after the client's creation,"
        " against a warm one after the same pause (medians, ms)",
        ["part", "first", "first, key made", "warm", "key made − warm"],
        rows,
        markdown=markdown,
        caption=(
            f"{len(firsts)} interleaved pairs; the key was made before the first call in"
            f" {len(ready)} of {len(firsts)} (RSA-2048 keygen's time"
            " varies widely, and more so on a loaded machine); it found a kept connection in"
            f" {kept} of {len(firsts)}; chain ACL, nodes in user mode"
        ),
    )


def ratios(
    pairs: dict[str, list[dict[str, float]]], warm_p50: float | None
) -> list[tuple[str, float, float]]:
    """(label, first, reference): the first call's median against the interleaved warm
    one (the target's verdict), then against a warm p50 measured apart, if given."""
    first = statistics.median(p["total"] for p in pairs["first"])
    warm = statistics.median(p["total"] for p in pairs["warm"])
    delay = f"{FIRST_CALL_DELAY * 1000:.0f} ms"
    rows = [(f"first decrypt {delay} after creation / warm after the same pause", first, warm)]
    if warm_p50 is not None:
        rows.append(("  the same first decrypt / the warm p50, back to back", first, warm_p50))
    return rows


def verdict(first: float, reference: float) -> str:
    return "met" if first <= TARGET_FIRST_CALL * reference else "NOT met"


def rsa_first_opens(rounds: int, *, markdown: bool) -> None:
    """A new key's first RSA-OAEP open on this thread: cold, after a throwaway open of
    the same key on another thread (what a background warm-up could do), and warm.

    OpenSSL sets up a key's blinding on the first private operation of each thread (since
    its pull request 27913 of 2025, one per thread id; before, every thread but the first
    shared a second one): a warm-up elsewhere sets up nothing the caller's thread uses."""

    def opened(key: rsa.RSAPrivateKey, sealed: bytes) -> float:
        start = time.perf_counter()
        rsa.decrypt(key, sealed)
        return time.perf_counter() - start

    def elsewhere(key: rsa.RSAPrivateKey, sealed: bytes) -> None:
        helper = threading.Thread(target=rsa.decrypt, args=(key, sealed))
        helper.start()
        helper.join()

    cold, warmed_elsewhere, warm = [], [], []
    for _ in range(rounds):
        a, b = rsa.generate_private_key(), rsa.generate_private_key()
        sealed_a, sealed_b = (rsa.encrypt(k.public_key(), os.urandom(97)) for k in (a, b))
        elsewhere(b, sealed_b)
        cold.append(opened(a, sealed_a))
        warmed_elsewhere.append(opened(b, sealed_b))
        warm.append(opened(a, sealed_a))
    rows = [
        [label, f"{statistics.median(v) * 1e6:.0f}", f"{min(v) * 1e6:.0f}"]
        for label, v in (
            ("a new key's first open on this thread", cold),
            ("  the same, after an open of that key on another thread", warmed_elsewhere),
            ("a later open (warm)", warm),
        )
    ]
    print_table(
        "A new RSA-2048 key's first private operation, by thread (µs)",
        ["open", "median", "min"],
        rows,
        markdown=markdown,
        caption=f"{rounds} keys, in this process; {openssl.backend.openssl_version_text()}",
    )


def main() -> None:

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved pairs")
    parser.add_argument("--markdown", action="store_true", help="tables to paste into docs")
    parser.add_argument("--json", type=Path, help="also write every call's parts there")
    parser.add_argument("--rsa", action="store_true", help="only a new key's first opens")
    args = parser.parse_args()
    if args.rsa:
        rsa_first_opens(args.rounds, markdown=args.markdown)
        return
    print(f"# tkms first call — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"python {sys.version.split()[0]}; {load_summary()}\n")
    with devnet("chain") as (manifest, devnet_pid), Client.from_devnet(manifest) as owner:
        handle = owner.encrypt(10**18, "uint256")
        owner.register_on_chain(handle)
        owner.decrypt(handle)
        pairs = first_calls(manifest, handle.handle, owner, devnet_pid, args.rounds)
        walls = []
        for _ in range(60):
            start = time.perf_counter()
            owner.decrypt(handle)
            walls.append(time.perf_counter() - start)
    print_breakdown(pairs, markdown=args.markdown)
    one, five, _ = os.getloadavg()
    if args.json is not None:
        args.json.write_text(json.dumps({**pairs, "warm_b2b": walls, "load": [one, five]}))
    print_table(
        "Issue 13's fourth target",
        ["measure", "first ms", "warm ms", "ratio", "≤ 1.5×"],
        [
            [label, f"{a * 1000:.2f}", f"{b * 1000:.2f}", f"{a / b:.2f}×", verdict(a, b)]
            for label, a, b in ratios(pairs, percentile(sorted(walls), 50))
        ],
        markdown=args.markdown,
        caption=f"load average {one:.2f} (1 min) / {five:.2f} (5 min) at the end",
    )


if __name__ == "__main__":
    main()
