"""Checking an audit log or a rotated set of its files: the first broken link (docs/audit.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tkms.node.audit_format import FIELDS, GENESIS, chain_files, entry_hash, slots


@dataclass(frozen=True)
class Broken:
    path: Path
    line: int  # 1-based
    why: str


@dataclass(frozen=True)
class Verdict:
    """``entries`` checked before the first broken link (all of them when ``broken`` is None)."""

    entries: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    broken: Broken | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    @property
    def from_genesis(self) -> bool:
        """The set starts at the node's first entry (else earlier files were not given)."""
        return self.first_seq in (None, 1)


def expand(paths: Sequence[Path]) -> list[list[Path]]:
    """Files as given, one chain; a directory stands for each of its chains (one per slot)."""
    chains: list[list[Path]] = []
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            chains += [chain_files(path, slot) for slot in slots(path)]
        else:
            files.append(path)
    return ([files] if files else []) + chains


def _check(entry: Any, prev: str | None, seq: int | None) -> str | None:
    """Why this entry does not follow (prev, seq), or None."""
    if not isinstance(entry, dict) or set(entry) != {*FIELDS, "hash"}:
        return "not an audit entry (fields)"
    if not isinstance(entry["seq"], int) or not isinstance(entry["prev"], str):
        return "not an audit entry (seq, prev)"
    if seq is not None and entry["seq"] != seq + 1:
        return f"entry {entry['seq']} follows entry {seq}"
    if prev is None and entry["seq"] == 1 and entry["prev"] != GENESIS:
        return "the first entry does not start from the genesis hash"
    if prev is not None and entry["prev"] != prev:
        return "does not link to the previous entry (removed or reordered entries)"
    try:
        expected = entry_hash(entry["prev"], entry)
    except ValueError:
        return "prev is not a hex hash"
    if entry["hash"] != expected:
        return "its hash does not match its content (altered)"
    return None


def verify(files: Sequence[Path]) -> Verdict:
    """Walk one chain, file after file; stop at the first broken link."""
    prev: str | None = None
    seq: int | None = None
    first: int | None = None
    count = 0

    def verdict(broken: Broken | None) -> Verdict:
        return Verdict(count, first, seq, prev, broken)

    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return verdict(Broken(path, 0, f"cannot read: {exc.strerror}"))
        if data and not data.endswith(b"\n"):
            line = data.count(b"\n") + 1
            return verdict(Broken(path, line, "the last line is incomplete (torn write)"))
        for number, raw in enumerate(data.splitlines(), 1):
            try:
                entry = json.loads(raw)
            except ValueError:
                return verdict(Broken(path, number, "not JSON (altered)"))
            why = _check(entry, prev, seq)
            if why is not None:
                return verdict(Broken(path, number, why))
            prev, seq, count = entry["hash"], entry["seq"], count + 1
            first = first if first is not None else seq
    return verdict(None)
