"""``tkms migrate-records``: a nox deployment's records into a tkms gateway's database, and
their bindings registered once at every node of the committee (docs/binding.md).

Two steps, each idempotent, so a run that stopped anywhere is simply run again:

1. every record of the export is stored (write-once: a handle already stored with the same
   record is "unchanged"; with another record it is a conflict, reported, and its binding
   is not registered);
2. the bindings of the stored records are sent, in signed batches of at most
   ``MAX_ENTRIES``, to every node; a node answers each entry ``created``, ``unchanged`` or
   ``conflicted`` (it holds another record's binding for the handle: the first is kept).

Exit code 0 only if every record is stored and every node holds every binding.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tkms.cli_output import console, fail
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.gateway.nox_export import ExportError, ImportedRecord, read_export
from tkms.gateway.records import RecordExists, StorageError, StoredRecord
from tkms.gateway.storage import SqlRecordStore, open_record_store
from tkms.keyfiles import read_hex
from tkms.protocol.binding_registration import (
    MAX_ENTRIES,
    BindingEntry,
    record_of,
    registration_body,
    summary,
)

REGISTER_PATH = "/v1/bindings/register"
ADMIN_KEY_ENV = "TKMS_ADMIN_KEY"  # as `tkms dkg`


@dataclass
class NodeTally:
    created: int = 0
    unchanged: int = 0
    conflicted: list[str] = field(default_factory=list)
    error: str | None = None


def _same(a: StoredRecord, b: StoredRecord) -> bool:
    return (a.ephemeral_pubkey, a.iv, a.ciphertext) == (b.ephemeral_pubkey, b.iv, b.ciphertext)


def store_records(
    store: SqlRecordStore, records: list[ImportedRecord], progress: Progress
) -> tuple[list[BindingEntry], int, int, list[str]]:
    """(entries to register, created, unchanged, conflicts): write-once, compared if stored."""
    task = progress.add_task("store", total=len(records))
    entries: list[BindingEntry] = []
    created = unchanged = 0
    conflicts: list[str] = []
    for item in records:
        r = item.record
        try:
            store.put(r)
            created += 1
        except RecordExists:
            existing = store.get(r.handle)
            if existing is None or not _same(existing, r):
                conflicts.append(f"line {item.line}: {to_hex(r.handle)} holds another record")
                progress.advance(task)
                continue
            unchanged += 1
        entries.append(
            BindingEntry(r.handle, record_of(r.handle, r.ephemeral_pubkey, r.iv, r.ciphertext))
        )
        progress.advance(task)
    return entries, created, unchanged, conflicts


def _post(http: httpx.Client, url: str, body: dict[str, object]) -> tuple[int, int, list[str]]:
    response = http.post(url.rstrip("/") + REGISTER_PATH, json=body)
    try:
        data = response.json()
    except ValueError:
        raise RuntimeError(f"HTTP {response.status_code}, not JSON") from None
    if response.status_code != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        raise RuntimeError(f"HTTP {response.status_code} {error}: {message}")
    return summary(data)


def register_bindings(
    nodes: dict[int, str],
    chain_id: int,
    admin: Wallet,
    entries: list[BindingEntry],
    progress: Progress,
    *,
    ttl: int,
    batch: int,
) -> dict[int, NodeTally]:
    """Every batch signed once, sent to every node; a node that fails is skipped after it."""
    tallies = {index: NodeTally() for index in nodes}
    tasks = {i: progress.add_task(f"node {i}", total=len(entries)) for i in nodes}
    with httpx.Client(timeout=60.0) as http:
        for start in range(0, len(entries), batch):
            chunk = entries[start : start + batch]
            expires_at = int(time.time()) + ttl
            body = registration_body(admin, chain_id, chunk, secrets.token_bytes(32), expires_at)
            for index, url in nodes.items():
                tally = tallies[index]
                if tally.error is not None:
                    continue
                try:
                    created, unchanged, conflicted = _post(http, url, body)
                except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                    tally.error = str(exc) or type(exc).__name__
                    continue
                tally.created += created
                tally.unchanged += unchanged
                tally.conflicted += conflicted
                progress.advance(tasks[index], len(chunk))
    return tallies


def _admin(key_file: Path | None) -> Wallet:
    """The admin key from its file or TKMS_ADMIN_KEY, never the command line (``ps``)."""
    try:
        if key_file is not None:
            return Wallet(read_hex(key_file))
        value = os.environ.get(ADMIN_KEY_ENV, "").strip()
        if value:
            return Wallet(parse_hex(value, name=ADMIN_KEY_ENV, length=32))
    except (OSError, ValueError) as exc:
        fail(f"admin key: {exc}")
    fail(f"admin key: give --admin-key-file (a file holding the hex key) or set {ADMIN_KEY_ENV}")


def migrate_records(
    export: Annotated[
        Path,
        typer.Option(help='JSON lines {"handle", "ciphertext", "iv", "ephemeralPubKey"} of nox'),
    ],
    database: Annotated[
        str, typer.Option(help="the tkms gateway's database: a SQLite path or postgresql:// URL")
    ],
    committee: Annotated[
        Path, typer.Option(help='committee.json: {"chainId", "nodes": [{"index", "url"}]}')
    ],
    admin_key_file: Annotated[
        Path | None,
        typer.Option(help="file holding the committee admin key (hex), or set TKMS_ADMIN_KEY"),
    ] = None,
    batch: Annotated[
        int, typer.Option(min=1, max=MAX_ENTRIES, help="bindings per signed request")
    ] = MAX_ENTRIES,
    ttl: Annotated[
        int, typer.Option(min=60, max=24 * 3600, help="seconds each signed batch stays valid")
    ] = 3600,
) -> None:
    """Import a nox deployment's records and register their bindings at every node, once."""
    from tkms.client.relay import CeremonyError, Committee

    admin = _admin(admin_key_file)
    try:
        members = Committee.load(committee)
    except CeremonyError as exc:
        fail(str(exc))
    try:
        with export.open(encoding="utf-8") as lines:
            records = read_export(lines, members.chain_id, int(time.time()))
    except OSError as exc:
        fail(f"{export}: {exc.strerror}")
    except (ExportError, UnicodeDecodeError) as exc:
        fail(f"{export}: {exc}")
    nodes = {n.index: n.url for n in members.nodes}
    console.print(
        f"migrating {len(records)} record(s) of chain {members.chain_id} to {len(nodes)} node(s)"
    )
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn())
    try:
        store = open_record_store(database)
    except StorageError as exc:
        fail(f"database: {exc}")
    with store, Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        try:
            entries, created, unchanged, conflicts = store_records(store, records, progress)
        except StorageError as exc:
            fail(f"database: {exc}", 1)
        tallies = register_bindings(
            nodes, members.chain_id, admin, entries, progress, ttl=ttl, batch=batch
        )
    console.print(f"records: {created} stored, {unchanged} unchanged, {len(conflicts)} conflicted")
    for line in conflicts:
        console.print(f"  [yellow]conflict[/] {line}")
    failed = bool(conflicts)
    for index, tally in sorted(tallies.items()):
        if tally.error is not None:
            failed = True
            console.print(f"node {index}: [bold red]failed[/] {tally.error}")
            continue
        console.print(
            f"node {index}: {tally.created} registered, {tally.unchanged} unchanged, "
            f"{len(tally.conflicted)} conflicted"
        )
        for handle in tally.conflicted:
            failed = True
            console.print(f"  [yellow]conflict[/] {handle} holds another record's binding")
    if failed:
        raise typer.Exit(1)
