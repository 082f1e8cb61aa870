"""The node's audit log: one hash-chained entry per delegation served or refused (docs/audit.md).

The route fills an :class:`AuditNote` as the request is checked (chain, epoch,
the recovered gateway signer, the raw K and target key) and :meth:`AuditLog.record`
turns it into an entry: fingerprints only, never a secret, share, partial,
shared secret or plaintext (none of them is ever in a note).

Writes never stall the event loop: ``record`` hashes the entry and appends
its line to a buffer under a lock held for microseconds; a writer thread
writes and fsyncs the buffer every ``FLUSH_ENTRIES`` entries or
``FLUSH_SECONDS`` after the first entry it holds, whichever comes first, and at
shutdown, and starts a new file when the current one reaches ``max_bytes``. With
nothing buffered the thread sleeps until an entry comes (no timer: an idle node
does not wake it five times a second). At start the log reads its
last entry back, so a restarted node continues the chain.

Each worker process holds one *slot* (an ``flock``-ed lock file) and writes
its own chain, ``audit-<slot>-<n>.jsonl``: two processes never interleave
lines of one chain, and a restarted worker takes a free slot up again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter

from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.metric_labels import Children
from tkms.node.audit_format import (
    FORMAT,
    GENESIS,
    chain_files,
    file_name,
    fingerprint_of,
)

log = logging.getLogger("tkms.node.audit")
FLUSH_ENTRIES = 50
FLUSH_SECONDS = 0.2
MAX_SLOTS = 256
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per entry
_FINGERPRINTS_KEPT = 1024


@dataclass
class AuditNote:
    """What a delegation request said, filled in as each check passes (None: not reached)."""

    version: str
    chain_id: int | None = None
    epoch: int | None = None
    handle: str | None = None  # user mode: the request's handle, once it parses
    requester: bytes | None = None
    ephemeral_pubkey: str | None = None  # as sent: only its fingerprint is logged
    target_pubkey: str | None = None
    # Their bytes, once a check decoded them (the entry does not decode them again).
    ephemeral_raw: bytes | None = None
    target_raw: bytes | None = None


def _raw(text: str | None, decoded: bytes | None = None) -> bytes | None:
    """The value's bytes: as a check decoded them, else decoded here (None: not hex)."""
    if decoded is not None:
        return decoded
    if text is None:
        return None
    try:
        return parse_hex(text, name="value")
    except EncodingError:
        return None


class _Fingerprints:
    """``audit_format.fingerprint``, kept for the values seen last: a user's target key
    and a record's K come back with every read of it, and a SHA-256 through OpenSSL
    (its context fetched per call) is most of an entry's hashing. Public values only;
    emptied when full (a bound, not an eviction policy)."""

    def __init__(self, kept: int = _FINGERPRINTS_KEPT) -> None:
        self._kept = kept
        self._seen: dict[bytes, str] = {}

    def __call__(self, data: bytes | None) -> str | None:
        if data is None:
            return None
        found = self._seen.get(data)
        if found is None:
            if len(self._seen) >= self._kept:
                self._seen.clear()
            found = self._seen[data] = fingerprint_of(data)
        return found


class AuditLog:
    """One chain of entries in ``directory``; :meth:`open` before use, :meth:`close` at the end."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        flush_entries: int = FLUSH_ENTRIES,
        flush_seconds: float = FLUSH_SECONDS,
        clock: Any = time.time,
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.flush_entries = flush_entries
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._lock = threading.Lock()  # the chain and the buffer (the event loop's side)
        self._io = threading.Lock()  # the file: one flush at a time (writer thread, close)
        self._pending: list[bytes] = []
        self._wake = threading.Event()  # the buffer is full, or the log closes
        self._buffered = threading.Event()  # the buffer holds an entry (set by the first)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._slot_lock: IO[bytes] | None = None
        self.slot = -1
        self._number = 0
        self._seq = 0
        self._prev = GENESIS
        self._prev_raw = bytes.fromhex(GENESIS)  # the same hash, as the next one hashes it
        self._failing = False
        self._fingerprint = _Fingerprints()

    # --- life cycle ------------------------------------------------------------

    def open(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.slot, self._slot_lock = self._take_slot()
        files = chain_files(self.directory, self.slot)
        self._number = 1
        for path in reversed(files):
            last = _last_entry(path)
            if last is not None:
                self._seq, self._prev = int(last["seq"]), str(last["hash"])
                self._prev_raw = bytes.fromhex(self._prev)
                break
        if files:
            self._number = int(files[-1].name.rsplit("-", 1)[1].split(".")[0])
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        log.info("audit log %s slot %d from entry %d", self.directory, self.slot, self._seq + 1)

    def _take_slot(self) -> tuple[int, IO[bytes]]:
        for slot in range(MAX_SLOTS):
            fd = os.open(self.directory / f"slot-{slot}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
            handle = os.fdopen(fd, "wb")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return slot, handle
        raise OSError(f"all {MAX_SLOTS} audit slots of {self.directory} are taken")

    def close(self) -> None:
        """Write what is buffered, fsync, and stop the writer (the node's shutdown)."""
        self._closed.set()
        self._buffered.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._slot_lock is not None:
            self._slot_lock.close()
            self._slot_lock = None

    # --- the hot path ------------------------------------------------------------

    def record(self, note: AuditNote, decision: str, reason: str | None) -> None:
        """Chain one entry and buffer it; the writer thread does the I/O."""
        requester = None if note.requester is None else to_hex(note.requester)
        # Keys in sorted order, so that this dict's JSON *is* the canonical form
        # (audit_format.canonical) without a sort: one json.dumps per entry.
        target = self._fingerprint(_raw(note.target_pubkey, note.target_raw))
        k = self._fingerprint(_raw(note.ephemeral_pubkey, note.ephemeral_raw))
        at = round(self._clock(), 3)
        with self._lock:
            self._seq += 1
            entry = {
                "chain": note.chain_id,
                "decision": decision,
                "epoch": note.epoch,
                "handle": note.handle,
                "k": k,
                "prev": self._prev,
                "reason": reason,
                "requester": requester,
                "seq": self._seq,
                "target": target,
                "time": at,
                "v": FORMAT,
                "version": note.version,
            }
            body = _COMPACT.encode(entry).encode()  # what json.dumps(separators=…) gives
            digest = hashlib.sha256(self._prev_raw + body).digest()
            self._prev, self._prev_raw = digest.hex(), digest
            self._pending.append(body[:-1] + b',"hash":"' + self._prev.encode() + b'"}\n')
            if len(self._pending) == 1:
                self._buffered.set()
            if len(self._pending) >= self.flush_entries:
                self._wake.set()

    # --- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while not self._closed.is_set():
            self._buffered.wait()  # no timer while nothing is buffered
            self._wake.wait(self.flush_seconds)  # the first entry waits at most this long
            self._wake.clear()
            # Before the buffer is taken: an entry after the take sets it again.
            self._buffered.clear()
            self.flush()

    def flush(self) -> None:
        with self._io:
            with self._lock:
                lines, self._pending = self._pending, []
            if not lines:
                return
            try:
                self._write(lines)
            except _WriteFailed as failed:
                # Keep what is not on disk (the chain stays whole) and say so once; the
                # next flush retries from there.
                with self._lock:
                    self._pending[:0] = lines[failed.durable :]
                self._buffered.set()  # retried after flush_seconds, as any buffered entry
                if not self._failing:
                    log.error("audit log write failed: %s", failed.reason)
                self._failing = True
                return
            self._failing = False

    def _write(self, lines: list[bytes]) -> None:
        """Append and fsync, one file at a time; a batch that fails is cut off again."""
        done = 0
        while done < len(lines):
            try:
                fd, size = self._current()
            except OSError as exc:
                raise _WriteFailed(done, exc) from None
            end = done
            while end < len(lines) and size < self.max_bytes:
                size += len(lines[end])
                end += 1
            data = b"".join(lines[done:end])
            start = size - len(data)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # no torn line for the retry to follow
                raise _WriteFailed(done, exc) from None
            done = end
            if size >= self.max_bytes:  # full: the next line starts the next file
                os.close(fd)
                self._fd = None
                self._number += 1

    def _current(self) -> tuple[int, int]:
        """The open file's descriptor and size; a full file is left for the next number."""
        if self._fd is None:
            while True:
                path = self.directory / file_name(self.slot, self._number)
                if not path.exists() or path.stat().st_size < self.max_bytes:
                    break
                self._number += 1
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd, os.fstat(self._fd).st_size


class _WriteFailed(Exception):
    def __init__(self, durable: int, exc: OSError) -> None:
        super().__init__()
        self.durable = durable  # lines of the batch that are on disk
        self.reason = exc.strerror or type(exc).__name__


class Decisions:
    """Where a route reports each decision: the Prometheus count, and the log if there is one."""

    def __init__(self, registry: CollectorRegistry, audit: AuditLog | None) -> None:
        self.audit = audit
        self._count = Children(
            Counter(
                "tkms_node_delegation_decisions_total",
                "Delegations served or refused, by protocol version, decision and reason",
                ["version", "decision", "reason"],
                registry=registry,
            )
        )

    def record(self, note: AuditNote, decision: str, reason: str | None) -> None:
        self._count(note.version, decision, reason or "ok").inc()
        if self.audit is not None:
            self.audit.record(note, decision, reason)


def _last_entry(path: Path) -> dict[str, Any] | None:
    """The file's last complete entry; a torn last line (a crash mid-write) is cut off."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        log.warning("audit log %s: cutting a torn last line (%d bytes)", path, len(data) - keep)
        with path.open("r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    lines = data.splitlines()
    if not lines:
        return None
    entry: dict[str, Any] = json.loads(lines[-1])
    return entry
