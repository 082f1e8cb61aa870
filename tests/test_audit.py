"""The node's audit log (docs/audit.md) over a real node process, and ``tkms audit verify``.

One node process with a v0 key and a state directory (no ceremony: its v1
route refuses with 503 dkg_incomplete, which is logged as well) serves and
refuses delegations; the log it writes is checked, tampered with in copies,
rotated and continued across restarts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CHAIN_ID, NodeKeys
from tests.procs import Service, free_port, start, wait_healthy
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.node.audit import AuditLog, AuditNote, _Fingerprints
from tkms.node.audit_format import GENESIS, chain_files, fingerprint
from tkms.node.audit_verify import verify
from tkms.protocol.delegation import V0_PATH, V1_PATH, delegate_request


class AuditedNode:
    def __init__(self, root: Path, keys: NodeKeys, **extra: str) -> None:
        self.root, self.keys, self.extra = root, keys, extra
        self.audit = root / "state" / "audit"
        self.service: Service | None = None

    def start(self) -> Service:
        port = free_port()
        env = {
            **self.keys.env(port),
            "TKMS_NODE_STATE_DIR": str(self.root / "state"),
            "TKMS_NODE_SEALING_KEY": to_hex(b"\x11" * 32),
            **self.extra,
        }
        self.service = start(["node"], env, self.root / "node.log", port, append=True)
        try:
            wait_healthy(self.service)
        except BaseException:
            self.service.stop()
            raise
        return self.service

    def stop(self) -> None:
        assert self.service is not None
        self.service.stop()  # SIGTERM: the lifespan's shutdown writes the buffer

    def post(self, path: str, gateway: Wallet, target: str, ephemeral: str | None = None) -> Any:
        assert self.service is not None
        k_enc = ephemeral or to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
        request = delegate_request(gateway, CHAIN_ID, k_enc, target)
        return httpx.post(
            self.service.url + request.target(path, secrets.token_bytes(32)),
            json=request.body,
            headers={"Authorization": request.authorization},
            timeout=10,
        )

    def entries(self) -> list[dict[str, Any]]:
        return [
            json.loads(line)
            for path in chain_files(self.audit, 0)
            for line in path.read_text().splitlines()
        ]


def cli_verify(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tkms", "audit", "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def user_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key()


@pytest.fixture(scope="module")
def story(
    node_keys: NodeKeys, user_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AuditedNode, dict[str, Any]]]:
    """Served, bad signature (401), bad key (400), v1 without a share (503); then stopped."""
    node = AuditedNode(Path(tmp_path_factory.mktemp("audit")), node_keys)
    node.start()
    try:  # stopped here, or when an answer is not the expected one
        target = to_hex(rsa.public_key_der(user_key))
        k_enc = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
        stranger = Wallet.generate()
        served = node.post(V0_PATH, node_keys.gateway, target, k_enc)
        assert served.status_code == 200, served.text
        assert node.post(V0_PATH, stranger, target).status_code == 401
        assert node.post(V0_PATH, node_keys.gateway, "0xdeadbeef").status_code == 400
        assert node.post(V1_PATH, node_keys.gateway, target).status_code == 503
        metrics = httpx.get(node.service.url + "/metrics").text  # type: ignore[union-attr]
    finally:
        node.stop()
    sealed = parse_hex(served.json()["encryptedSharedSecret"])
    facts = {
        "target": target,
        "k": k_enc,
        "stranger": stranger,
        "shared_x": rsa.decrypt(user_key, sealed),
        "metrics": metrics,
    }
    yield node, facts


def test_every_decision_is_an_entry(story: tuple[AuditedNode, dict[str, Any]]) -> None:
    node, facts = story
    entries = node.entries()
    summary = [(e["version"], e["decision"], e["reason"]) for e in entries]
    assert summary == [
        ("v0", "served", None),
        ("v0", "refused", "unauthorized_signer"),
        ("v0", "refused", "invalid_target_pubkey"),
        ("v1", "refused", "dkg_incomplete"),
    ]
    served, wrong_signer, bad_key, v1 = entries
    gateway = to_hex(node.keys.gateway.address)
    assert served["requester"] == gateway and bad_key["requester"] == gateway
    assert wrong_signer["requester"] == to_hex(facts["stranger"].address)
    assert served["target"] == hashlib.sha256(parse_hex(facts["target"])).hexdigest()
    assert served["k"] == hashlib.sha256(parse_hex(facts["k"])).hexdigest()
    assert served["chain"] == CHAIN_ID and served["handle"] is None and served["epoch"] is None
    assert v1["requester"] is None  # refused before the signature was looked at
    assert [e["seq"] for e in entries] == [1, 2, 3, 4] and served["prev"] == GENESIS
    for line in (
        'tkms_node_delegation_decisions_total{decision="served",reason="ok",version="v0"} 1.0',
        'decision="refused",reason="unauthorized_signer",version="v0"} 1.0',
        'decision="refused",reason="dkg_incomplete",version="v1"} 1.0',
    ):
        assert line in facts["metrics"]


def test_nothing_secret_is_in_the_log(story: tuple[AuditedNode, dict[str, Any]]) -> None:
    node, facts = story
    text = "".join(p.read_text() for p in node.audit.iterdir()).lower()
    kms_key = curve.scalar_to_bytes(node.keys.kms_key).hex()
    wallet_key = node.keys.node_wallet.private_key_bytes().hex()
    for secret in (kms_key, wallet_key, facts["shared_x"].hex()):
        assert secret not in text
    assert parse_hex(facts["target"]).hex() not in text  # fingerprints, not the key itself


def test_verify_passes_then_finds_tampering(
    story: tuple[AuditedNode, dict[str, Any]], tmp_path: Path
) -> None:
    node, _ = story
    (log,) = chain_files(node.audit, 0)
    ok = cli_verify(log)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "4 entries" in ok.stdout
    assert cli_verify(node.audit).returncode == 0  # the directory form

    lines = log.read_bytes().splitlines(keepends=True)
    flipped = bytearray(log.read_bytes())
    at = flipped.index(b'"unauthorized_signer"') + 3
    flipped[at] ^= 0x01  # one bit of entry 2's reason
    swapped = lines[0] + lines[2] + lines[1] + lines[3]
    cases = {
        "flipped": (bytes(flipped), 2, "altered"),
        "removed": (lines[0] + lines[2] + lines[3], 2, "follows entry 1"),
        "reordered": (swapped, 2, "follows entry 1"),
        "torn": (b"".join(lines)[:-5], 4, "incomplete"),
    }
    for name, (data, line, why) in cases.items():
        copy = tmp_path / f"{name}.jsonl"
        copy.write_bytes(data)
        result = cli_verify(copy)
        assert result.returncode == 1, name
        assert f"{copy}:{line}:" in result.stdout and why in result.stdout, result.stdout


def test_a_removed_entry_with_its_seq_renumbered_still_breaks_the_chain(
    story: tuple[AuditedNode, dict[str, Any]], tmp_path: Path
) -> None:
    """Renumbering hides the gap in seq, not in the hashes."""
    node, _ = story
    (log,) = chain_files(node.audit, 0)
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    del entries[1]
    for i, entry in enumerate(entries, 1):
        entry["seq"] = i
    copy = tmp_path / "renumbered.jsonl"
    copy.write_text("".join(json.dumps(e) + "\n" for e in entries))
    verdict = verify([copy])
    assert verdict.broken is not None and verdict.broken.line == 2
    assert "previous entry" in verdict.broken.why


def test_rotation_and_restarts_keep_one_chain(node_keys: NodeKeys, tmp_path: Path) -> None:
    node = AuditedNode(tmp_path, node_keys, TKMS_NODE_AUDIT_MAX_BYTES="1024")
    target = to_hex(rsa.public_key_der(rsa.generate_private_key()))
    for round_ in range(2):
        node.start()
        try:
            for _ in range(6):
                assert node.post(V0_PATH, node_keys.gateway, target).status_code == 200
        finally:
            node.stop()
        assert len(node.entries()) == 6 * (round_ + 1)
    files = chain_files(node.audit, 0)
    assert len(files) >= 4  # ~480-byte entries, 1 KiB files
    verdict = verify(files)
    assert verdict.ok and verdict.entries == 12 and verdict.from_genesis
    for before, after in itertools.pairwise(files):
        last = json.loads(before.read_text().splitlines()[-1])
        first = json.loads(after.read_text().splitlines()[0])
        assert first["prev"] == last["hash"] and first["seq"] == last["seq"] + 1
    result = cli_verify(*files[1:])  # the oldest file rotated away: still checks, says so
    assert result.returncode == 0 and "earlier not given" in result.stdout
    result = cli_verify(files[0], *files[2:])  # a missing file in the middle
    assert result.returncode == 1 and f"{files[2]}:1:" in result.stdout


def test_writes_are_batched_by_count_and_by_time(tmp_path: Path) -> None:
    def written(directory: Path) -> int:
        return sum(len(p.read_bytes().splitlines()) for p in chain_files(directory, 0))

    by_count = AuditLog(tmp_path / "count", max_bytes=2**20, flush_entries=5, flush_seconds=60)
    by_count.open()
    try:
        for _ in range(4):
            by_count.record(AuditNote("v0"), "served", None)
        time.sleep(0.3)
        assert written(tmp_path / "count") == 0  # neither 5 entries nor 60 s yet
        by_count.record(AuditNote("v0"), "served", None)
        deadline = time.monotonic() + 5
        while written(tmp_path / "count") < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert written(tmp_path / "count") == 5
    finally:
        by_count.close()

    by_time = AuditLog(tmp_path / "time", max_bytes=2**20, flush_entries=1000, flush_seconds=0.1)
    by_time.open()
    try:
        by_time.record(AuditNote("v1"), "refused", "invalid_signature")
        time.sleep(0.5)
        assert written(tmp_path / "time") == 1
        # Idle in between (the writer sleeps with no timer): the next entry still goes out.
        by_time.record(AuditNote("v1"), "served", None)
        deadline = time.monotonic() + 5
        while written(tmp_path / "time") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert written(tmp_path / "time") == 2
    finally:
        by_time.close()


def test_two_logs_in_one_directory_take_two_slots(tmp_path: Path) -> None:
    """What two workers of one node do: two chains, never interleaved."""
    first = AuditLog(tmp_path, max_bytes=2**20)
    second = AuditLog(tmp_path, max_bytes=2**20)
    first.open()
    second.open()
    try:
        assert (first.slot, second.slot) == (0, 1)
        first.record(AuditNote("v0"), "served", None)
        second.record(AuditNote("v0"), "served", None)
    finally:
        first.close()
        second.close()
    for slot in (0, 1):
        assert verify(chain_files(tmp_path, slot)).entries == 1


def test_a_failed_write_is_cut_off_and_retried(tmp_path: Path) -> None:
    """A full disk (here: RLIMIT_FSIZE) in the middle of a batch leaves no torn line."""
    log = AuditLog(tmp_path, max_bytes=2**20, flush_entries=10**6, flush_seconds=3600)
    log.open()
    path = tmp_path / "audit-0-000001.jsonl"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    try:
        for _ in range(3):
            log.record(AuditNote("v0"), "served", None)
        log.flush()
        size = path.stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
        for _ in range(3):
            log.record(AuditNote("v0"), "refused", "invalid_signature")
        log.flush()  # fails after 100 bytes: cut back to the 3 entries on disk
        assert path.stat().st_size == size
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        log.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
        log.close()
    verdict = verify([path])
    assert verdict.ok and verdict.entries == 6


def test_kept_fingerprints_are_the_entry_format_s(tmp_path: Path) -> None:
    """The log keeps the fingerprints of the target keys and K it saw last (each read of a
    record repeats them): every entry still names them by audit_format.fingerprint, also
    once the kept set was emptied for being full."""
    log = AuditLog(tmp_path, max_bytes=2**20)
    log._fingerprint = _Fingerprints(kept=2)
    log.open()
    values = [secrets.token_bytes(33) for _ in range(3)]
    try:
        for value in [*values, *values, values[0]]:
            note = AuditNote("v1", ephemeral_raw=value, target_raw=value[::-1])
            log.record(note, "served", None)
    finally:
        log.close()
    lines = b"".join(p.read_bytes() for p in chain_files(tmp_path, 0)).splitlines()
    entries = [json.loads(line) for line in lines]
    for entry, value in zip(entries, [*values, *values, values[0]], strict=True):
        assert entry["k"] == fingerprint(value)
        assert entry["target"] == fingerprint(value[::-1])
    assert verify(chain_files(tmp_path, 0)).ok
