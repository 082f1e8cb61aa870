"""The transports' HTTP/1.1 codec (transport/http1.py) over real loopback sockets.

Each server here writes an answer's bytes as given, in pieces with pauses
between them (so that the client sees every split a network can make), from
tests/loopback_http.py's server on an event loop of its own thread; the blocking
transport (transport/http11_sync.py) reads them, as the synchronous SDK does,
and the asyncio one (transport/http11.py) where the two differ in how they read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests import loopback_http as lb
from tkms.transport.http11 import Http11
from tkms.transport.http11_sync import Http11Sync, TransportFailure

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: 1\r\n\r\n"
CHUNKED = CHUNKED_HEAD + b"4;ext=1\r\nabcd\r\n10\r\n" + b"e" * 16 + b"\r\n0\r\nx-t: 2\r\n\r\n"


def writing(*answers: bytes, pieces: int = 7, close: bool = False) -> Handler:
    """A server answering its connection's requests with ``answers`` in turn, each in
    ``pieces`` writes; it closes after the last one with ``close``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for data in answers:
            await lb.read_request(reader)
            step = max(1, len(data) // pieces)
            for at in range(0, len(data), step):
                writer.write(data[at : at + step])
                await writer.drain()
                await asyncio.sleep(0.005)
        if close:
            writer.close()
        else:
            await asyncio.sleep(30)

    return handler


def test_every_framing_is_read_and_only_a_whole_one_kept() -> None:
    sized = lb.answer(b'{"a":1}')
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: x\r\n\r\n"
    with lb.serving_in_thread(writing(CHUNKED, interim + sized, CHUNKED)) as url:
        http = Http11Sync(url, timeout=5)
        first = http.request("GET", "/", {}, {}, None)
        assert (first.status, first.body, first.headers["x-a"]) == (200, b"abcd" + b"e" * 16, "1")
        assert len(http._idle) == 1  # chunked and whole: kept
        assert http.request("GET", "/", {}, {}, None).body == b'{"a":1}'  # past the 1xx
        assert http.request("GET", "/", {}, {}, None).body == b"abcd" + b"e" * 16
        assert len(http._idle) == 1  # the one connection, three times
        http.close()
    no_body = b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n"
    http10 = b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"
    for data, body in ((no_body, b""), (http10, b"ok"), (lb.answer(b"{}", close=True), b"{}")):
        with lb.serving_in_thread(writing(data)) as url:
            http = Http11Sync(url, timeout=5)
            assert http.request("GET", "/", {}, {}, None).body == body
            # A 204's body is none whatever its headers say; a 1.0 answer, or one that
            # says close, is not kept.
            assert len(http._idle) == (1 if data is no_body else 0)
            http.close()
    # No length: the body is what comes before the server's close; never kept.
    until_close = b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 3000
    with lb.serving_in_thread(writing(until_close, close=True)) as url:
        http = Http11Sync(url, timeout=5)
        assert http.request("GET", "/", {}, {}, None).body == b"z" * 3000
        assert not http._idle


def test_the_async_transport_reads_the_same() -> None:
    async def main(url: str) -> None:
        http = Http11(url, timeout=5)
        for _ in range(2):
            answer = await http.request("GET", "/", {}, {}, None)
            assert answer.body == b"abcd" + b"e" * 16
        assert len(http._idle) == 1
        await http.aclose()

    with lb.serving_in_thread(writing(CHUNKED, CHUNKED)) as url:
        asyncio.run(main(url))


BROKEN = {
    "not a status line": b"HTTP/2 200 OK\r\n\r\n",
    "a header line without a colon": b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 0\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
    "a length that is no number": b"HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\na",
    "gzip": b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "chunked and a length": CHUNKED_HEAD.replace(b"x-a: 1", b"content-length: 3") + b"0\r\n\r\n",
    "a bad chunk size": CHUNKED_HEAD + b"zz\r\n",
    "a chunk without its CRLF": CHUNKED_HEAD + b"2\r\nabcd\r\n0\r\n\r\n",
    "switching protocols": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    "a status under 100": b"HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n",
    "a head without end": b"HTTP/1.1 200 OK\r\n" + b"x-a: 1\r\n" * 3000,
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_answer_is_a_protocol_error(case: str) -> None:
    with lb.serving_in_thread(writing(BROKEN[case], pieces=2)) as url:
        http = Http11Sync(url, timeout=5)
        with pytest.raises(TransportFailure, match="RemoteProtocolError"):
            http.request("GET", "/", {}, {}, None)
        assert not http._idle


def test_an_answer_cut_short_is_a_protocol_error_and_a_chunked_one_is_bounded() -> None:
    for cut in (lb.answer(b"x" * 100)[:-10], CHUNKED[:-3], b"HTTP/1.1 200 OK\r\nx-a"):
        cut_short = pytest.raises(TransportFailure, match="closed mid-answer")
        with lb.serving_in_thread(writing(cut, close=True)) as url, cut_short:
            Http11Sync(url, timeout=5).request("GET", "/", {}, {}, None)
    big = CHUNKED_HEAD + b"1000\r\n" + b"x" * 4096 + b"\r\n0\r\n\r\n"
    too_big = pytest.raises(TransportFailure, match="answer over 4095 bytes")
    with lb.serving_in_thread(writing(big)) as url, too_big:
        Http11Sync(url, timeout=5, max_answer_bytes=4095).request("GET", "/", {}, {}, None)
    unsized = b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 5000
    too_big = pytest.raises(TransportFailure, match="answer over 4096 bytes")
    with lb.serving_in_thread(writing(unsized)) as url, too_big:
        Http11Sync(url, timeout=5, max_answer_bytes=4096).request("GET", "/", {}, {}, None)


def test_no_field_can_smuggle_a_header_into_the_request() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await lb.read_request(reader))
            writer.write(lb.answer(b"{}"))
            await writer.drain()

    with lb.serving_in_thread(record) as url:
        http = Http11Sync(url, timeout=5)
        for headers in ({"x-a": "1\r\nx-b: 2"}, {"x a": "1"}, {"x-a": "\x00"}, {"x-a": "é"}):
            with pytest.raises(TransportFailure, match="RemoteProtocolError"):
                http.request("GET", "/", {}, headers, None)
        with pytest.raises(TransportFailure, match="RemoteProtocolError"):
            http.request("GET", "/a b", {}, {}, None)
        # A query is percent-encoded, so its values are safe whatever they hold.
        assert http.request("GET", "/", {"q": "1\r\nx-b: 2"}, {}, None).status == 200
        assert seen == [
            b"GET /?q=1%0D%0Ax-b%3A+2 HTTP/1.1\r\nHost: " + url[7:].encode() + b"\r\n"
            b"Accept: */*\r\n\r\n"
        ]
