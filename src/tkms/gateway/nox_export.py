"""The export of a nox deployment's records, as ``tkms migrate-records`` reads it.

JSON lines, one record a line (docs/binding.md, "Records imported from a nox deployment"):
``{"handle", "ciphertext", "iv", "ephemeralPubKey"}`` (0x-hex, what a nox gateway's v0
material carries), optionally ``"solidityType"`` (it must be the handle's own type code),
``"owner"`` and ``"application"`` (addresses; absent: the zero address, as the runner's
results are stored: on a linked chain the reader's right is ``isViewer``, never the store's)
and ``"createdAt"`` (Unix seconds; absent: the time of the import). Blank lines are
skipped. Nothing in a line is secret: the ciphertext is sealed to the KMS key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from tkms.crypto import curve
from tkms.crypto.encoding import EncodingError, parse_address, parse_hex
from tkms.gateway.records import InvalidRecord, StoredRecord
from tkms.protocol.handle import HandleError, SolidityType, parse_handle

NO_ADDRESS = bytes(20)
TAG_LENGTH = 16


class ExportError(ValueError):
    """A line of the export is not a record (its line number is in the message)."""


@dataclass(frozen=True, slots=True)
class ImportedRecord:
    line: int
    record: StoredRecord


def _optional_address(item: dict[str, object], name: str) -> bytes:
    value = item.get(name)
    return NO_ADDRESS if value is None else parse_address(value, name=name)


def parse_line(text: str, chain_id: int, now: int) -> StoredRecord:
    """One record of ``chain_id``; ValueError (EncodingError, HandleError, …) if not."""
    item = json.loads(text)
    if not isinstance(item, dict):
        raise ValueError("a line must be a JSON object")
    parsed = parse_handle(item.get("handle"), chain_id=chain_id)
    named = item.get("solidityType")
    if named is not None and SolidityType.parse(named) != parsed.solidity_type:
        raise ValueError("solidityType is not the handle's type")
    ephemeral = parse_hex(item.get("ephemeralPubKey"), name="ephemeralPubKey", length=33)
    curve.parse_point(ephemeral)
    ciphertext = parse_hex(item.get("ciphertext"), name="ciphertext")
    if len(ciphertext) < TAG_LENGTH:
        raise ValueError("ciphertext is shorter than its AES-GCM tag")
    iv = parse_hex(item.get("iv"), name="iv", length=12)
    created_at = item.get("createdAt", now)
    if not isinstance(created_at, int) or isinstance(created_at, bool):
        raise ValueError("createdAt must be an integer")
    return StoredRecord(
        parsed.to_bytes(),
        chain_id,
        parsed.solidity_type,
        _optional_address(item, "owner"),
        _optional_address(item, "application"),
        created_at,
        ciphertext,
        ephemeral,
        iv,
    )


def read_export(lines: Iterable[str], chain_id: int, now: int) -> list[ImportedRecord]:
    """Every record of an export, or ExportError naming the first bad line (nothing is
    stored from a file that has one: the operator fixes it and runs again)."""
    records: list[ImportedRecord] = []
    seen: dict[bytes, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = parse_line(text, chain_id, now)
        except (ValueError, EncodingError, HandleError, InvalidRecord, curve.CurveError) as exc:
            raise ExportError(f"line {number}: {exc}") from None
        first = seen.setdefault(record.handle, number)
        if first != number:
            raise ExportError(f"line {number}: handle already on line {first}")
        records.append(ImportedRecord(number, record))
    return records
