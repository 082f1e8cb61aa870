"""The audit log's entry format and its hash chain (docs/audit.md), shared by writer and verifier.

An entry is one JSON line. Its ``hash`` is SHA-256 over the previous entry's
hash (32 bytes) and the entry's canonical JSON without ``hash`` (keys sorted,
no spaces, ASCII): so any change to an entry, a removed entry or two entries
swapped breaks the link of the next one. The first entry of a node's log
links to 32 zero bytes; the first entry of a rotated file links to the last
entry of the file before, so a rotated set is one chain.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

FORMAT = 1
GENESIS = "00" * 32
FILE_PATTERN = re.compile(r"audit-(\d+)-(\d{6})\.jsonl")
"""``audit-<slot>-<number>.jsonl``: one chain per slot (per worker process), numbered files."""

FIELDS = (
    "v",
    "seq",
    "time",
    "version",
    "chain",
    "epoch",
    "handle",
    "requester",
    "target",
    "k",
    "decision",
    "reason",
    "prev",
)


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers: every field but ``hash``, canonical JSON."""
    body = {key: value for key, value in entry.items() if key != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def entry_hash(prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev) + canonical(entry)).hexdigest()


def fingerprint(data: bytes | None) -> str | None:
    """SHA-256 of a public value (the target key's DER, K): names it without repeating it."""
    return None if data is None else fingerprint_of(data)


def fingerprint_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_name(slot: int, number: int) -> str:
    return f"audit-{slot}-{number:06d}.jsonl"


def chain_files(directory: Path, slot: int) -> list[Path]:
    """A slot's files, in chain order."""
    found = []
    for path in directory.iterdir():
        match = FILE_PATTERN.fullmatch(path.name)
        if match is not None and int(match.group(1)) == slot:
            found.append((int(match.group(2)), path))
    return [path for _, path in sorted(found)]


def slots(directory: Path) -> list[int]:
    found = {int(m.group(1)) for p in directory.iterdir() if (m := FILE_PATTERN.fullmatch(p.name))}
    return sorted(found)
