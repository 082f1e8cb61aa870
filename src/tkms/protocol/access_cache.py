"""Verified ``DataAccessAuthorization`` tokens, kept for the next request with the same one.

A client reuses its token for up to an hour, and every read sends it to the
gateway and, in ``user`` mode, to each node asked: decoding it (base64, JSON,
the EIP-712 hash and an ECDSA recovery, ~290 µs) was done again each time for
the same bytes. :class:`VerifiedTokens` keeps the outcome of that check for the
exact header value and the domain (chain, NoxCompute) it was checked in, in a
bounded LRU. What it keeps, and why that is safe:

* only a :class:`~tkms.protocol.access.VerifiedDataAccess` (ECDSA recovered to
  ``userAddress``): a refused token is checked again every time, and so is one
  only ERC-1271 can accept (a contract's answer can change from one block to
  the next);
* the key is the whole header string: a token that differs by one byte is a
  miss, decoded and checked from scratch;
* the window is not kept: ``notBefore``/``expiresAt`` are checked against the
  caller's ``now`` on every call, a hit included, so a kept token past its
  expiry is refused as ``expired``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from tkms.protocol.access import (
    SignedDataAccess,
    VerifiedDataAccess,
    check_window,
    decode_data_access,
    verified,
)

# A token is ~1.2 kB with an RSA-2048 key, at most MAX_TOKEN_LENGTH (8 KiB): 2048 of
# them are ~2.5 MB, 16 MiB at worst. An entry pushed out only costs a new check.
DEFAULT_ENTRIES = 2048

_Key = tuple[str, int, bytes]


class VerifiedTokens:
    """A bounded LRU of verified tokens; safe to share between threads (the gateway's)."""

    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[_Key, VerifiedDataAccess] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, header: str | None, *, chain_id: int, verifying_contract: bytes) -> bool:
        """Whether a :meth:`decode` of ``header`` would be a hit (no recovery: cheap)."""
        return header is not None and (header, chain_id, verifying_contract) in self._entries

    def cached(
        self, header: str | None, *, chain_id: int, verifying_contract: bytes, now: int
    ) -> SignedDataAccess | None:
        """The kept token for ``header``, its window checked now (else the refusal); None
        when it is not kept: then :meth:`decode` checks it (a caller may do that on a thread,
        as the recovery is ~0.3 ms, and a hit is not worth one: one lookup either way)."""
        if header is None:
            return None
        key = (header, chain_id, verifying_contract)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
        if hit is None:
            return None
        access = hit.signed.access
        check_window(access.not_before, access.expires_at, now)
        return hit.signed

    def decode(
        self, header: str | None, *, chain_id: int, verifying_contract: bytes, now: int
    ) -> SignedDataAccess:
        """:func:`~tkms.protocol.access.decode_data_access`, its signature check kept."""
        if header is None:
            return decode_data_access(
                header, chain_id=chain_id, verifying_contract=verifying_contract, now=now
            )
        hit = self.cached(header, chain_id=chain_id, verifying_contract=verifying_contract, now=now)
        if hit is not None:
            return hit
        key = (header, chain_id, verifying_contract)
        signed = decode_data_access(
            header, chain_id=chain_id, verifying_contract=verifying_contract, now=now
        )
        value = verified(signed)
        if value is not None:
            with self._lock:
                self._entries[key] = value
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return signed
