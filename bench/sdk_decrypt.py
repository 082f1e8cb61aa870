"""The synchronous SDK's own CPU per decryption, against the client's primitive floor.

    .venv/bin/python bench/sdk_decrypt.py                  # about a minute (a devnet)
    .venv/bin/python bench/sdk_decrypt.py --profile 300    # and where the rest goes
    .venv/bin/python bench/sdk_decrypt.py --devnet state/devnet.json   # a running devnet
    .venv/bin/python bench/sdk_decrypt.py --baseline ../wt-main         # A/B against a checkout

A real ``tkms devnet`` (5 nodes, t = 3, the gateway, anvil and the chain ACL,
nodes in user mode; bench/e2e.py's), or the one ``--devnet`` names; the user
decrypts a handle it registered, warm (key, authorization, keyset and
connection made). Each round times, in turn: decryptions by
``tkms.client.Client`` as it is; the same client's flows over ``httpx.Client``
(the synchronous SDK's transport until issue 13, for the comparison); and the
client's floor, bench/e2e_floors.py's ``t`` RSA opens + ``t`` DLEQ checks +
Lagrange + HKDF + AES-GCM; and the same floor with each call after a 5 ms sleep
(about a decryption's wait for the gateway): a process that blocks wakes with
its caches taken by the others, and pays that on its crypto too (docs/performance.md).
A figure is this process's CPU time (user +
system) per call, the median over rounds; only the client is counted here (the
gateway's and the nodes' CPU: bench/e2e.py). Between the floor and the SDK
lie checks that stay (the gateway's signature, each partial's node signature:
four ECDSA recoveries with their EIP-712 hashing), the HTTP exchange and JSON:
a second table times each piece of one decryption apart, on one real answer
of the gateway (its salt kept), in the same rounds, and the whole flow on that
answer without the socket (``Replay``): the SDK's Python and crypto, apart from its I/O.

``--baseline DIR`` (another checkout: ``git worktree add DIR main``) adds two
rows: the same warm decryption in two worker processes (bench/sdk_worker.py),
one importing DIR's ``src/``, one this checkout's, each asked for its
``--decrypts`` in every round (first in every other one), in turn with the other
cases: an A/B of the SDK's code under the same load, against the same devnet.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from subprocess import PIPE
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import checkout_src, fmt_us, load_summary, print_table
from bench.devnets import devnet
from bench.e2e_floors import client_floor
from tkms.client import Client
from tkms.client.gateway_core import HttpRequest, HttpResponse
from tkms.client.gateway_open import decrypt_threshold, open_threshold_round
from tkms.crypto import curve, dleq, eip712, rsa
from tkms.crypto.encoding import parse_hex
from tkms.devnet.manifest import DevnetManifest
from tkms.protocol.delegation import check_partial_answer
from tkms.protocol.handle import parse_handle
from tkms.protocol.partials import ENVELOPE_LENGTH
from tkms.transport.exchange import MAX_ANSWER_BYTES, AnswerReader, request_bytes
from tkms.transport.http1 import Http1

NOW, BEFORE, FLOOR = "Client (transport/http11_sync.py)", "Client over httpx.Client", "floor"
WAIT = 0.005  # about what a warm decryption waits for the gateway on this devnet
WOKEN = f"floor, each call after a {WAIT * 1000:.0f} ms sleep"
BASELINE, THIS = "worker: --baseline's Client", "worker: this checkout's Client"


class HttpxClient(Client):
    """The same flows over ``httpx.Client``, as ``Client._send`` was before issue 13."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._httpx = httpx.Client(timeout=10)

    def _send(self, request: HttpRequest) -> HttpResponse:
        response = self._httpx.request(
            request.method,
            self.url + request.path,
            params=request.params,
            headers=request.headers,
            json=request.json,
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        return HttpResponse(response.status_code, data, response.headers)

    def close(self) -> None:
        self._httpx.close()
        super().close()


class Replay(Client):
    """One recorded answer of the gateway, served again to the whole flow: the salt
    the client draws is drawn once and kept, so every check runs as in a decryption
    and only the socket (and the wait for the answer) is left out."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._recorded: dict[str, HttpResponse] = {}
        drawn = self.core._params()
        self.core._params = lambda: (drawn[0], dict(drawn[1]))  # type: ignore[method-assign]

    def _send(self, request: HttpRequest) -> HttpResponse:
        if request.path not in self._recorded:
            self._recorded[request.path] = super()._send(request)
        return self._recorded[request.path]


def after_wait(fn: Callable[[], object]) -> Callable[[], object]:
    """``fn`` after a sleep as long as a decryption's wait: what the process pays for
    blocking (its caches and predictors taken by the gateway, the nodes, and the other
    processes on these two cores meanwhile), on crypto that costs no more than the floor's."""

    def woken() -> object:
        time.sleep(WAIT)
        return fn()

    return woken


def cpu_per_call(fn: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls


def pieces(client: Client, handle: str) -> dict[str, Callable[[], object]]:
    """Each piece of one warm decryption, on one real answer (the flow's steps, apart)."""
    core = client.core
    parsed = parse_handle(handle, chain_id=core.trust.chain_id)
    material, _ = core.material()
    keyset = core._keyset
    assert keyset is not None
    salt, params = core._params()
    path, headers = f"/v1/secrets/{parsed.hex}", {"Authorization": material.authorization}
    answer = client._http.request("GET", path, params, headers, None)
    response = HttpResponse(answer.status, json.loads(answer.body), answer.headers)
    payload = core.payload(response, eip712.HANDLE_THRESHOLD_MATERIAL, salt)
    got = open_threshold_round(payload, parsed, keyset, material.rsa_key, salt, core.trust)
    partials = [p for p in payload["partials"] if p["index"] in got.good]
    signed = [{**p, "epoch": payload["epoch"]} for p in partials]
    nodes = [keyset.node(p["index"]) for p in partials]
    sealed = [parse_hex(p["encryptedPartial"]) for p in partials]
    envelopes = [rsa.decrypt(material.rsa_key, blob) for blob in sealed]
    assert all(len(e) == ENVELOPE_LENGTH for e in envelopes)
    ephemeral = curve.parse_point(got.record.ephemeral_pubkey)
    keys = [n.verification_key for n in nodes if n is not None]
    proofs = [(y, curve.parse_point(e[:33]), e[33:]) for y, e in zip(keys, envelopes, strict=True)]

    def node_signatures() -> object:
        for p, n in zip(signed, nodes, strict=True):
            assert n is not None
            check_partial_answer(
                p, index=n.index, signer=n.signer, chain_id=core.trust.chain_id, salt=salt
            )
        return None

    # The same exchange through the HTTP/1.1 codec alone, on these bytes: no socket, no kernel.
    origin = client._http.origin
    fields = origin.fields(headers, None)
    head = f"HTTP/1.1 {answer.status} OK\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in answer.headers.items()
    )
    raw = head.encode("latin-1") + b"\r\n" + answer.body

    def codec_alone() -> object:
        http = Http1()
        request_bytes(http, "GET", origin.target(path, params), fields, None)
        reader = AnswerReader(http, MAX_ANSWER_BYTES)
        reader.feed(raw)
        return reader.step()

    assert codec_alone() == answer
    return {
        "HTTP exchange (transport/http11_sync.py)": lambda: client._http.request(
            "GET", path, params, headers, None
        ),
        "  its codec alone (transport/http1.py, the same bytes, no socket)": codec_alone,
        "  an exchange with a small answer (GET /health)": lambda: client._http.request(
            "GET", "/health", {}, {}, None
        ),
        "JSON of the answer": lambda: json.loads(answer.body),
        "gateway's signature (EIP-712, recover)": lambda: core.payload(
            response, eip712.HANDLE_THRESHOLD_MATERIAL, salt
        ),
        f"{len(signed)} node signatures (EIP-712, recover)": node_signatures,
        f"{len(sealed)} RSA-OAEP opens": lambda: [rsa.decrypt(material.rsa_key, b) for b in sealed],
        f"{len(proofs)} DLEQ verifications": lambda: [
            dleq.verify(y, ephemeral, s_i, proof) for y, s_i, proof in proofs
        ],
        "open_threshold_round (all of the above but HTTP)": lambda: open_threshold_round(
            payload, parsed, keyset, material.rsa_key, salt, core.trust
        ),
        "Lagrange, HKDF, AES-GCM": lambda: decrypt_threshold(keyset, got.record, got.good),
    }


@contextmanager
def worker(manifest: Path, src: Path) -> Iterator[Callable[[int], float]]:
    """A bench/sdk_worker.py process on ``src``'s tkms: ``ask(n)`` is its CPU per decryption."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    script = Path(__file__).with_name("sdk_worker.py")
    command = [sys.executable, str(script), str(manifest)]
    process = subprocess.Popen(command, stdin=PIPE, stdout=PIPE, env=env, text=True)
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    ready = stdout.readline()
    if not ready.startswith("ready") or Path(ready.split()[1]) != src / "tkms":
        process.kill()
        raise RuntimeError(f"worker on {src} did not start: {ready!r}")

    def ask(calls: int) -> float:
        stdin.write(f"{calls}\n")
        stdin.flush()
        return float(stdout.readline())

    try:
        yield ask
    finally:
        stdin.close()
        process.wait(timeout=30)


def run(
    manifest: Path, rounds: int, decrypts: int, profile: int, baseline: Path | None = None
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    threshold = DevnetManifest.load(manifest).threshold
    floor = client_floor(threshold)
    with ExitStack() as stack:
        now = stack.enter_context(Client.from_devnet(manifest))
        before = stack.enter_context(HttpxClient.from_devnet(manifest))
        secret = now.encrypt(10**18, "uint256")
        now.register_on_chain(secret)
        handle = secret.handle
        replay = stack.enter_context(Replay.from_devnet(manifest))
        cases: dict[str, Callable[[], object]] = {
            NOW: lambda: now.decrypt(handle),
            BEFORE: lambda: before.decrypt(handle),
            FLOOR: floor,
            WOKEN: after_wait(floor),
        }
        for fn in cases.values():  # warm: key, authorization, keyset, connections
            cpu_per_call(fn, 10)
        workers: dict[str, Callable[[int], float]] = {}
        if baseline is not None:
            this = (Path(__file__).resolve().parent.parent / "src").resolve()
            for name, src in ((BASELINE, baseline), (THIS, this)):
                workers[name] = stack.enter_context(worker(manifest, src))
        assert now.decrypt(handle) == before.decrypt(handle) == replay.decrypt(handle) == 10**18
        parts = {
            "the whole decryption on a recorded answer (Client, no socket, no wait)": lambda: (
                replay.decrypt(handle)
            ),
            **pieces(now, handle),
        }
        results: dict[str, list[float]] = {name: [] for name in [*cases, *workers]}
        split: dict[str, list[float]] = {name: [] for name in parts}
        for done in range(rounds):
            for name, fn in cases.items():
                results[name].append(cpu_per_call(fn, decrypts))
            turn = list(workers.items())  # each goes first in every other round
            for name, ask in turn[::-1] if done % 2 else turn:
                results[name].append(ask(decrypts))
            for name, fn in parts.items():
                split[name].append(cpu_per_call(fn, decrypts))
        if profile:
            profiler = cProfile.Profile(time.process_time)
            profiler.runcall(cpu_per_call, cases[NOW], profile)
            print(f"cProfile (CPU time) of {profile} decryptions, by own time:")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return results, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devnet", type=Path, help="devnet.json of a running devnet")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decrypts", type=int, default=100, help="per round and case")
    parser.add_argument("--profile", type=int, default=0, help="decryptions to profile")
    parser.add_argument("--baseline", type=Path, help="another tkms checkout, for an A/B")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    baseline = None
    if args.baseline is not None:
        baseline = checkout_src(parser, args.baseline, "client")
    print(f"# tkms sync SDK decryption CPU — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine: {load_summary()}\n")
    with ExitStack() as stack:
        manifest = args.devnet or stack.enter_context(devnet("chain"))[0]
        results, split = run(manifest, args.rounds, args.decrypts, args.profile, baseline)

    def median(runs: list[float]) -> float:
        return sorted(runs)[len(runs) // 2]

    floor, before = median(results[FLOOR]), median(results[BEFORE])
    rows = [
        [
            name,
            fmt_us(median(runs) * 1e6),
            fmt_us(min(runs) * 1e6),
            f"{median(runs) / floor:.2f}×",
            f"{median(runs) / before:.2f}×",
        ]
        for name, runs in results.items()
    ]
    print_table(
        "The client's CPU per decryption (sync SDK, 5 nodes, t = 3, chain ACL)",
        ["client", "median µs", "min µs", "× floor", "× before"],
        rows,
        markdown=args.markdown,
        caption=f"{args.rounds} interleaved rounds of {args.decrypts} calls; {load_summary()}",
    )
    if BASELINE in results:
        ratios = sorted(a / b for a, b in zip(results[THIS], results[BASELINE], strict=True))
        print(
            f"this checkout ÷ --baseline, round by round: median {median(ratios):.3f}"
            f" (min {ratios[0]:.3f}, max {ratios[-1]:.3f}) over {len(ratios)} rounds\n"
        )
    whole = median(results[NOW])
    print_table(
        "Where the SDK's CPU goes: each piece of one decryption, apart",
        ["piece", "median µs", "share of the SDK's"],
        [[n, fmt_us(median(r) * 1e6), f"{median(r) / whole:.0%}"] for n, r in split.items()],
        markdown=args.markdown,
        caption=(
            "the same rounds; the pieces overlap (open_threshold_round is the three above it;"
            " the indented rows are for comparison)"
        ),
    )


if __name__ == "__main__":
    main()
