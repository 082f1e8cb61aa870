"""A malicious gateway's database: rewrite the row of a handle (the gateway owns its store).

The stores refuse UPDATE by trigger (gateway/storage.py); whoever runs the
gateway can drop the trigger, which is what this does, as that attacker would.
"""

from __future__ import annotations

import sqlite3

import psycopg

from tkms.crypto import ecies

_COLUMNS = "ephemeral_pubkey, iv, ciphertext"


def _postgres(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def read_record(database: str, handle: bytes) -> ecies.EciesRecord:
    query = f"SELECT {_COLUMNS} FROM gateway_records WHERE handle = "  # noqa: S608 - fixed
    if _postgres(database):
        with psycopg.connect(database) as conn:
            row = conn.execute(query + "%s", (handle,)).fetchone()
    else:
        with sqlite3.connect(database) as conn:
            row = conn.execute(query + "?", (handle,)).fetchone()
    assert row is not None, "no such record"
    return ecies.EciesRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]))


def rewrite_record(database: str, handle: bytes, record: ecies.EciesRecord) -> None:
    """Make ``handle`` name ``record``: its K, iv and ciphertext replace the stored ones."""
    values = (record.ephemeral_pubkey, record.iv, record.ciphertext, handle)
    if _postgres(database):
        with psycopg.connect(database) as conn:
            conn.execute("DROP TRIGGER IF EXISTS gateway_records_append_only ON gateway_records")
            conn.execute(
                "UPDATE gateway_records SET ephemeral_pubkey = %s, iv = %s, ciphertext = %s"
                " WHERE handle = %s",
                values,
            )
        return
    conn = sqlite3.connect(database)
    try:
        conn.execute("DROP TRIGGER IF EXISTS gateway_records_no_update")
        changed = conn.execute(
            "UPDATE gateway_records SET ephemeral_pubkey = ?, iv = ?, ciphertext = ?"
            " WHERE handle = ?",
            values,
        ).rowcount
        conn.commit()
    finally:
        conn.close()
    assert changed == 1
