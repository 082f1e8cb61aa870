"""Records kept once read (gateway/record_cache.py): bounded by bytes, oldest out first."""

from __future__ import annotations

import secrets

from tests.test_storage import make_record
from tkms.gateway.record_cache import RecordCache


def test_a_record_read_is_kept_and_served_as_it_was() -> None:
    cache, record = RecordCache(), make_record()
    assert cache.get(record.handle) is None
    cache.put(record)
    assert cache.get(record.handle) is record


def test_the_cache_is_bounded_by_bytes_least_recent_first() -> None:
    cache = RecordCache(max_bytes=16 * 2048)
    records = [make_record("bytes", ciphertext=secrets.token_bytes(1024)) for _ in range(40)]
    for record in records:
        cache.put(record)
        cache.get(records[0].handle)  # the first is always the most recent
    assert cache.bytes <= cache.max_bytes
    assert 0 < len(cache) < len(records)
    assert cache.get(records[0].handle) is records[0]
    assert cache.get(records[1].handle) is None  # pushed out first
    assert cache.get(records[-1].handle) is records[-1]


def test_a_value_too_large_for_its_share_is_not_kept() -> None:
    cache = RecordCache(max_bytes=16 * 1024)
    big = make_record("bytes", ciphertext=secrets.token_bytes(2048))
    cache.put(big)
    assert cache.get(big.handle) is None and cache.bytes == 0
