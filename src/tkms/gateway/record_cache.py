"""Records read lately, kept in memory: a record never changes once stored.

The stores are write-once (``gateway/storage.py``: the database's own triggers
refuse UPDATE and DELETE), so a record read once is the record for good. Each
read of a handle went to a worker thread for the database (the hop and the
GIL hand-over cost more than SQLite's lookup by key) and rebuilt the
:class:`~tkms.gateway.records.StoredRecord` with its checks. The cache keeps
what was read, bounded by the bytes of the ciphertexts it holds, least recently
used first out. A handle not found is never kept (it may be stored a moment
later); the checks that decide whether a reader may see the record run before
it is looked up, as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from tkms.gateway.records import StoredRecord

DEFAULT_BYTES = 16 * 1024 * 1024
_OVERHEAD = 512  # the object, its other fields, the dict entry


class RecordCache:
    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._records: OrderedDict[bytes, StoredRecord] = OrderedDict()
        self._lock = threading.Lock()  # put() may run in a database worker thread

    def __len__(self) -> int:
        return len(self._records)

    def get(self, handle: bytes) -> StoredRecord | None:
        with self._lock:
            record = self._records.get(handle)
            if record is not None:
                self._records.move_to_end(handle)
            return record

    def put(self, record: StoredRecord) -> None:
        size = _size(record)
        if size > self.max_bytes // 16:  # one large value would push out many small ones
            return
        with self._lock:
            if record.handle in self._records:
                return
            self._records[record.handle] = record
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._records.popitem(last=False)
                self.bytes -= _size(old)


def _size(record: StoredRecord) -> int:
    return len(record.ciphertext) + _OVERHEAD
