"""Kept ACL answers (chain/acl_cache.py) and the chain head read once a second (chain/head.py).

The cache alone on a clock of the test's; then the node's ``ChainReader`` and the
gateway's ``ChainAcl`` over a real anvil with NoxCompute: a refusal is never kept
(a grant counts at once), a true answer is served with anvil stopped until its TTL
ends (then 503 ``chain_unavailable``), and a TTL of 0 reads the chain every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.chainnet import CHAIN_ID, ChainNet, start_chain
from tkms.chain.acl_cache import AclCache
from tkms.chain.head import RecentHead
from tkms.gateway.chain_acl import ChainAcl
from tkms.node.user_checks import ChainReader
from tkms.web.errors import ApiError

Reader = ChainReader | ChainAcl


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _read(answer: bool, reads: list[int]):  # type: ignore[no-untyped-def]
    async def read() -> bool:
        reads.append(1)
        return answer

    return read


def test_only_true_answers_are_kept_for_the_ttl() -> None:
    clock = Clock()
    cache = AclCache(ttl=10, clock=clock)
    reads: list[int] = []

    async def run() -> None:
        assert not await cache.ask("no", _read(False, reads))
        assert not await cache.ask("no", _read(False, reads))  # a refusal is read again
        assert await cache.ask("yes", _read(True, reads))
        assert await cache.ask("yes", _read(False, reads))  # kept: not read
        assert len(reads) == 3
        clock.now += 10  # its TTL is over: read again, and this time the chain says no
        assert not await cache.ask("yes", _read(False, reads))
        assert len(reads) == 4 and len(cache) == 0

    asyncio.run(run())


def test_the_cache_is_bounded_least_recently_used_first_out() -> None:
    cache = AclCache(ttl=10, max_entries=2, clock=Clock())
    cache.keep("a")
    cache.keep("b")
    assert cache.holds("a")  # a is now the most recently used
    cache.keep("c")
    assert len(cache) == 2
    assert cache.holds("a") and cache.holds("c") and not cache.holds("b")


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = AclCache(ttl=0, clock=Clock())
    reads: list[int] = []
    for _ in range(3):
        assert asyncio.run(cache.ask("yes", _read(True, reads)))
    assert len(reads) == 3 and len(cache) == 0


def test_the_keys_name_chain_contract_handle_and_account() -> None:
    cache = AclCache(ttl=10, clock=Clock())
    reads: list[int] = []

    async def run() -> None:
        await cache.is_viewer(1, b"c", b"h", b"a", _read(True, reads))
        await cache.is_viewer(1, b"c", b"h", b"a", _read(True, reads))
        for other in ((2, b"c", b"h", b"a"), (1, b"d", b"h", b"a"), (1, b"c", b"g", b"a")):
            await cache.is_viewer(*other, _read(True, reads))
        await cache.is_viewer(1, b"c", b"h", b"b", _read(True, reads))
        await cache.is_publicly_decryptable(1, b"c", b"h", _read(True, reads))
        await cache.is_publicly_decryptable(1, b"c", b"h", _read(True, reads))

    asyncio.run(run())
    assert len(reads) == 6


def test_the_head_is_read_at_most_once_a_second_and_a_failure_is_not_kept() -> None:
    clock = Clock()
    heads = iter([7, 8])
    calls: list[int] = []

    async def read() -> int:
        calls.append(1)
        await asyncio.sleep(0.01)
        value = next(heads, None)
        if value is None:
            raise ApiError(503, "chain_unavailable", "down")
        return value

    head = RecentHead(read, clock=clock)

    async def run() -> None:
        assert await asyncio.gather(head(), head(), head()) == [7, 7, 7]  # one shared read
        clock.now += 0.9
        assert await head() == 7
        clock.now += 0.1
        assert await head() == 8
        clock.now += 1
        for _ in range(2):  # each asker after a failure reads again
            with pytest.raises(ApiError):
                await head()

    asyncio.run(run())
    assert len(calls) == 4


# --- over anvil ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain() -> Iterator[ChainNet]:
    net = start_chain()
    yield net
    net.rpc.close()
    net.anvil.stop()


def _readers(chain: ChainNet, ttl: float, clock: Clock | None = None) -> tuple[Reader, Reader]:
    url, contract = chain.anvil.url, chain.nox.address

    def cache() -> AclCache:
        return AclCache(ttl=ttl) if clock is None else AclCache(ttl=ttl, clock=clock)

    node = ChainReader(CHAIN_ID, url, contract, timeout=1.0, connect=0.5, acl_cache=cache())
    gateway = ChainAcl(url, contract, CHAIN_ID, timeout=1.0, connect_timeout=0.5, acl_cache=cache())
    return node, gateway


def test_a_grant_after_a_refusal_counts_at_once(chain: ChainNet) -> None:
    handle = chain.registered(chain.alice)
    bob = chain.bob.address

    async def run() -> None:
        readers = _readers(chain, ttl=60)
        try:
            for reader in readers:
                assert not await reader.is_viewer(handle, bob)
                assert not await reader.is_publicly_decryptable(handle)
            await asyncio.to_thread(chain.nox.add_viewer, chain.alice, handle, bob)
            await asyncio.to_thread(chain.nox.allow_public_decryption, chain.alice, handle)
            for reader in readers:  # the same readers: their refusals were not kept
                assert await reader.is_viewer(handle, bob)
                assert await reader.is_publicly_decryptable(handle)
        finally:
            for reader in readers:
                await reader.aclose()

    asyncio.run(run())


def test_a_kept_answer_needs_no_chain_until_its_ttl_ends(chain: ChainNet) -> None:
    """Very last: it stops anvil. The TTL runs on the test's clock."""
    handle = chain.registered(chain.alice)
    alice = chain.alice.address
    chain.nox.allow_public_decryption(chain.alice, handle)
    clock = Clock()

    async def unavailable(reader: Reader) -> None:
        for ask in (reader.is_viewer(handle, alice), reader.is_publicly_decryptable(handle)):
            with pytest.raises(ApiError) as info:
                await ask
            assert (info.value.status, info.value.code) == (503, "chain_unavailable")

    async def run() -> None:
        kept = _readers(chain, ttl=60, clock=clock)
        uncached = _readers(chain, ttl=0)
        readers = (*kept, *uncached)
        try:
            for reader in readers:
                assert await reader.is_viewer(handle, alice)
                assert await reader.is_publicly_decryptable(handle)
            await asyncio.to_thread(chain.anvil.stop)
            for reader in uncached:  # TTL 0: every check is a read, and there is no chain
                await unavailable(reader)
            clock.now += 59.9
            for reader in kept:  # served from the cache: no read, so no chain is needed
                assert await reader.is_viewer(handle, alice)
                assert await reader.is_publicly_decryptable(handle)
            clock.now += 0.1
            for reader in kept:  # the TTL is over: read again, and there is no chain
                await unavailable(reader)
        finally:
            for reader in readers:
                await reader.aclose()

    asyncio.run(run())
