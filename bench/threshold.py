"""Threshold-mode costs, measured against the primitives they are made of.

    .venv/bin/python bench/threshold.py [--quick]

(a) in-process DKG: wall time (every node's work, JSON on every delivery),
    broadcasts and bytes, for n ∈ {4, 8, 16, 32, 64}, t = ⌊n/2⌋+1;
(a') in-process resharing (bench/reshare.py), n → n for n ∈ {16, 32, 64};
(b) one node's partial: S_i = x_i·K, DLEQ proof, RSA-OAEP seal of the
    97-byte envelope, EIP-712 PartialDelegateResponseProof signature — vs the
    floor of the raw primitives it calls;
(c) the client's recombination for t ∈ {3, 11}: t RSA opens, t DLEQ checks,
    Lagrange combination, HKDF, AES-GCM — vs its floor;
(d) umbral-pre (the proxy re-encryption peer) timed in the same run;
(e) real node processes on loopback, n = 5, t = 3: the DKG ceremony over
    HTTP through the relay, one node's /v1/delegate round trip, and a whole
    client decryption (fan-out to 5 nodes, verify, combine, decrypt);
(e') real node processes: resharing through the relay, 5 → 7 and a 7 → 7 refresh
    (bench/reshare_processes.py);
(f) one node on a real anvil chain, in ``user`` mode and in ``gateway`` mode,
    interleaved: CPU per partial and round trip (bench/user_mode.py).

Timings are the minimum over repeats (the machine is shared; the minimum is
the least disturbed figure), and each path is timed interleaved with its floor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sha3
from coincurve import PrivateKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tkms.client.recombine import decrypt_record
from tkms.crypto import curve, dleq, ecies, eip712, rsa, shamir
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg import KeysetNode, KeysetResult, run_in_process
from tkms.protocol.delegation import SealedPartial
from tkms.protocol.keyset import VerifiedKeyset, verify_keyset

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.processes import process_rows
from bench.reshare import HEADER as RESHARE_HEADER
from bench.reshare import reshare_rows
from bench.reshare_processes import HEADER as RESHARE_HTTP_HEADER
from bench.reshare_processes import reshare_process_rows
from bench.user_mode import user_mode_rows

DKG_SIZES = (4, 8, 16, 32, 64)
DKG_TARGETS = {16: 1.0, 32: 3.0, 64: 15.0}
PARTIAL_TARGET = 1.3
CLIENT_TARGET = 1.2
CHAIN_ID = 421614
SALT = bytes(range(32))
OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@dataclass
class Row:
    label: str
    seconds: float
    floor: float | None = None
    target: float | None = None
    note: str = ""


Extension = Callable[[], list[Row]]
EXTENSIONS: dict[str, list[Extension]] = {"partial": [], "client": []}
"""Hook for a later step: rows for (b)/(c) measured elsewhere (e.g. real node
processes, n = 5, over HTTP). Append a callable returning rows; it is run
after the in-process rows of its section."""


def timed(fn: Callable[[], object], *, budget: float = 0.25) -> float:
    """Seconds per call: min over repeats of a loop sized to ~budget/5 each."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(budget / 5 / once))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def paired(path: Callable[[], object], floor: Callable[[], object]) -> tuple[float, float]:
    """Time a path and its floor alternately, keeping each one's best."""
    best_path = best_floor = float("inf")
    for _ in range(4):
        best_path = min(best_path, timed(path))
        best_floor = min(best_floor, timed(floor))
    return best_path, best_floor


# --- (a) DKG ------------------------------------------------------------------------


def dkg_rows(sizes: tuple[int, ...]) -> list[list[str]]:
    rows = []
    for n in sizes:
        t = n // 2 + 1
        runs = 3 if n <= 16 else 1
        best = float("inf")
        sim = None
        for _ in range(runs):
            start = time.perf_counter()
            sim = run_in_process(n, t)
            best = min(best, time.perf_counter() - start)
            assert sim.succeeded, sim.failures
        assert sim is not None
        target = DKG_TARGETS.get(n)
        verdict = "" if target is None else ("ok" if best < target else "MISSED")
        rows.append(
            [
                str(n),
                str(t),
                f"{best:.3f}",
                f"< {target:g}" if target else "",
                verdict,
                str(sim.traffic.messages),
                f"{sim.traffic.bytes_sent / 1024:.1f}",
                f"{sim.traffic.bytes_delivered / 1024:.1f}",
            ]
        )
    return rows


# --- (b) one node's partial ---------------------------------------------------------


def partial_rows() -> list[Row]:
    x_i = curve.random_scalar()
    prover = dleq.Prover(x_i)
    k_enc = curve.encode_point(curve.base_mul(curve.random_scalar()))
    target = rsa.generate_private_key().public_key()
    wallet = Wallet.generate()
    domain = eip712.delegate_domain(CHAIN_ID, SALT)

    def path() -> object:
        # The node's hot path as tkms.node.delegation_v1 runs it, from K on the wire.
        K = curve.parse_point(k_enc)
        s_enc, proof = prover.partial(K)
        sealed = to_hex(rsa.encrypt(target, s_enc + proof))
        message = {"index": 1, "epoch": 1, "encryptedPartial": sealed}
        return eip712.sign(wallet, domain, eip712.PARTIAL_DELEGATE_RESPONSE_PROOF, message)

    raw_key = PrivateKey(wallet.private_key_bytes())
    K0 = curve.parse_point(k_enc)
    x_b = curve.scalar_to_bytes(x_i)
    envelope = os.urandom(97)
    digest = os.urandom(32)
    hex_partial = b"0x" + os.urandom(256).hex().encode()

    def floor() -> object:
        K0.multiply(x_b)  # S_i
        r = curve.scalar_to_bytes(curve.random_scalar())
        curve.base_mul(int.from_bytes(r, "big"))  # A1 = r·G
        K0.multiply(r)  # A2 = r·K
        target.encrypt(envelope, OAEP)
        raw_key.sign_recoverable(digest, hasher=None)
        # EIP-712: the string field, the struct, the salted domain, the final digest.
        for data in (hex_partial, digest * 4, digest * 6, digest * 3):
            sha3.keccak_256(data).digest()
        return None

    def floor_constant_time() -> object:
        # The same, with the two secret-scalar multiplications on libsecp256k1's
        # constant-time ECDH path, which is what the node must use.
        curve.mul_secret_encoded(K0, x_i)  # S_i
        r = curve.random_scalar()
        curve.base_mul(r)  # A1 = r·G
        curve.mul_secret_encoded(K0, r)  # A2 = r·K
        target.encrypt(envelope, OAEP)
        raw_key.sign_recoverable(digest, hasher=None)
        for data in (hex_partial, digest * 4, digest * 6, digest * 3):
            sha3.keccak_256(data).digest()
        return None

    p, f = paired(path, floor)
    _, f_ct = paired(path, floor_constant_time)
    rows = [
        Row(
            "partial (S_i + DLEQ + RSA seal + EIP-712)",
            p,
            f,
            PARTIAL_TARGET,
            "vs variable-time floor",
        ),
        Row("  same, vs constant-time floor", p, f_ct, PARTIAL_TARGET),
    ]
    for extension in EXTENSIONS["partial"]:
        rows.extend(extension())
    return rows


# --- (c) client recombination -------------------------------------------------------


def _client_setup(
    t: int,
) -> tuple[VerifiedKeyset, rsa.RSAPrivateKey, ecies.EciesRecord, list[SealedPartial], bytes]:
    n = t + 2
    secret = curve.random_scalar()
    shares = shamir.deal_shares(secret, t, n)
    dealt = KeysetResult(
        1,
        t,
        curve.base_mul(secret),
        tuple(KeysetNode(s.index, os.urandom(20), curve.base_mul(s.value)) for s in shares),
    )
    # Checked as a client checks one (against Y, unsigned): only the verifier makes one.
    body = dealt.to_json(chain_id=1, signatures={})
    keyset = verify_keyset(body, 1, dealt.public_key_bytes)
    client_key = rsa.generate_private_key()
    plaintext = os.urandom(32)
    record = ecies.encrypt(keyset.public_key, plaintext)
    K = curve.parse_point(record.ephemeral_pubkey)
    answers = []
    for s in shares[:t]:
        s_enc, proof = dleq.Prover(s.value).partial(K)
        sealed = rsa.encrypt(client_key.public_key(), s_enc + proof)
        answers.append(SealedPartial(s.index, 1, sealed))
    return keyset, client_key, record, answers, plaintext


def _client_row(t: int) -> Row:
    keyset, key, record, answers, plaintext = _client_setup(t)
    assert decrypt_record(keyset, key, record, answers) == plaintext

    def path() -> object:
        # The client as tkms.client.recombine runs it, from the sealed answers.
        return decrypt_record(keyset, key, record, answers)

    K = curve.parse_point(record.ephemeral_pubkey)
    opened = [rsa.decrypt(key, a.encrypted_partial) for a in answers]
    points = [curve.parse_point(o[:33]) for o in opened]
    vks = [keyset.verification_keys()[a.index] for a in answers]
    lam = list(shamir.lagrange_coefficients([a.index for a in answers]).values())
    scalars = [curve.scalar_to_bytes(int.from_bytes(o[33:65], "big")) for o in opened]

    def floor() -> object:
        for a in answers:
            key.decrypt(a.encrypted_partial, OAEP)
        for vk, s_i, c in zip(vks, points, scalars, strict=True):
            # A DLEQ check's four multiplications: z·G, c·Y_i, z·K, c·S_i.
            curve.base_mul(int.from_bytes(c, "big"))
            vk.multiply(c)
            K.multiply(c)
            s_i.multiply(c)
        combined = curve.linear_combination(points, lam)
        hkdf = HKDF(hashes.SHA256(), 32, bytes(32), ecies.HKDF_INFO_DATA)
        aes = AESGCM(hkdf.derive(curve.point_x(combined)))
        return aes.decrypt(record.iv, record.ciphertext, None)

    p, f = paired(path, floor)
    return Row(f"client recombination, t = {t}", p, f, CLIENT_TARGET)


def client_rows(thresholds: tuple[int, ...]) -> list[Row]:
    rows = [_client_row(t) for t in thresholds]
    for extension in EXTENSIONS["client"]:
        rows.extend(extension())
    return rows


# --- (d) umbral-pre -----------------------------------------------------------------


def umbral_rows() -> list[Row]:
    try:
        import umbral_pre as u
    except ImportError:
        return [Row("umbral-pre not installed (pip install '.[bench]')", float("nan"))]
    sk = u.SecretKey.random()
    pk = sk.public_key()
    rsk = u.SecretKey.random()
    rpk = rsk.public_key()
    ssk = u.SecretKey.random()
    vpk = ssk.public_key()
    capsule, ciphertext = u.encrypt(pk, os.urandom(32))
    kfrags = u.generate_kfrags(
        delegating_sk=sk,
        receiving_pk=rpk,
        signer=u.Signer(ssk),
        threshold=3,
        shares=5,
        sign_delegating_key=True,
        sign_receiving_key=True,
    )
    cfrag_bytes = [bytes(u.reencrypt(capsule, k)) for k in kfrags[:3]]

    def node() -> object:
        return bytes(u.reencrypt(capsule, kfrags[0]))

    def client() -> object:
        verified = [u.CapsuleFrag.from_bytes(b).verify(capsule, vpk, pk, rpk) for b in cfrag_bytes]
        return u.decrypt_reencrypted(rsk, pk, capsule, verified, ciphertext)

    # Same estimator as the paired paths: the best of several timed runs.
    return [
        Row("umbral-pre re-encryption (one node)", min(timed(node) for _ in range(4))),
        Row(
            "umbral-pre client, t = 3 (3 cfrag checks + decrypt)",
            min(timed(client) for _ in range(4)),
        ),
    ]


# --- output -------------------------------------------------------------------------


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for r in [header, *rows]:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title, title_justify="left")
    for n, h in enumerate(header):
        table.add_column(h, justify="left" if n == 0 else "right", no_wrap=n == 0)
    for r in rows:
        table.add_row(*r)
    # Piped output would otherwise be cut to 80 columns.
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


def _cost_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for r in rows:
        ratio = "" if r.floor is None else f"{r.seconds / r.floor:.2f}×"
        verdict = ""
        if r.floor is not None and r.target is not None:
            verdict = "ok" if r.seconds / r.floor <= r.target else "MISSED"
        out.append(
            [
                r.label,
                f"{r.seconds * 1e6:,.0f}",
                "" if r.floor is None else f"{r.floor * 1e6:,.0f}",
                ratio,
                "" if r.target is None else f"≤ {r.target}×",
                verdict,
            ]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip n = 64 in (a) and (a')")
    args = parser.parse_args()
    sizes = DKG_SIZES[:-1] if args.quick else DKG_SIZES
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s)")
    _print_table(
        "(a) in-process DKG, all nodes' work, JSON on every delivery",
        ["n", "t", "wall s", "target s", "", "broadcasts", "KiB sent", "KiB delivered"],
        dkg_rows(sizes),
    )
    _print_table(
        "(a') in-process reshare n → n, all members' work, JSON on every delivery",
        RESHARE_HEADER,
        reshare_rows((16, 32) if args.quick else (16, 32, 64)),
    )
    header = ["path", "µs", "floor µs", "ratio", "target", ""]
    partial = partial_rows()
    _print_table("(b) one node's partial vs its primitive floor", header, _cost_rows(partial))
    client = client_rows((3, 11))
    _print_table("(c) client recombination vs its primitive floor", header, _cost_rows(client))
    umbral = umbral_rows()
    _print_table("(d) umbral-pre, same run", header, _cost_rows(umbral))
    dkg_http, latencies = process_rows(CHAIN_ID)
    http_rows = [Row(label, seconds) for label, seconds in latencies]
    _print_table(
        "(e) real node processes over HTTP: DKG through the relay",
        ["n", "t", "wall s", "messages relayed", "KiB relayed"],
        dkg_http,
    )
    _print_table("(e) real node processes over HTTP: latency", header, _cost_rows(http_rows))
    _print_table(
        "(e') real node processes over HTTP: reshare through the relay",
        RESHARE_HTTP_HEADER,
        reshare_process_rows(CHAIN_ID),
    )
    user_rows = [
        Row(label, seconds) for label, seconds in user_mode_rows(200 if args.quick else 400)
    ]
    _print_table("(f) a node on anvil: user mode vs gateway mode", header, _cost_rows(user_rows))
    ours_node, ours_client = partial[0].seconds, client[0].seconds
    _print_table(
        "tkms vs umbral-pre (ratio > 1: tkms slower)",
        ["comparison", "tkms µs", "umbral µs", "ratio"],
        [
            [
                "per node: partial vs re-encryption",
                f"{ours_node * 1e6:,.0f}",
                f"{umbral[0].seconds * 1e6:,.0f}",
                f"{ours_node / umbral[0].seconds:.2f}×",
            ],
            [
                "client, t = 3",
                f"{ours_client * 1e6:,.0f}",
                f"{umbral[-1].seconds * 1e6:,.0f}",
                f"{ours_client / umbral[-1].seconds:.2f}×",
            ],
        ],
    )


if __name__ == "__main__":
    main()
