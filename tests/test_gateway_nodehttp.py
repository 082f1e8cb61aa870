"""The fan-out's HTTP/1.1 codec (gateway/nodehttp.py) against real servers on loopback.

Each server is a raw asyncio one (tests/loopback_http.py) that answers one
way: well, with junk, too much, chunked, too slowly, or by closing mid-answer.
The client must return the answer, or name that node's failure by its kind,
and never leave a connection that could hand a late answer to the next request.
The same servers in front of a gateway process: tests/test_gateway_hostile_nodes.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest
import uvloop

from tests import loopback_http as lb
from tkms.gateway.node_failure import FailureKind
from tkms.gateway.nodehttp import MAX_HEAD_BYTES, NodeConnections, NodeHttpError

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter
HEADERS = [("Authorization", "EIP712 abc"), ("Content-Type", "application/json")]
LIMIT = 16 * 1024
LOOP: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop


@pytest.fixture(autouse=True, params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test on both loops: the gateway runs on uvloop, whose transports differ."""
    factory = asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop
    monkeypatch.setattr(sys.modules[__name__], "LOOP", factory)


def head(status: str = "200 OK", *extra: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", *extra]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run(
    url: str, *requests: float | None, own_timer: bool = False
) -> list[tuple[int, bytes] | NodeHttpError | str]:
    """Each request in turn on one pool, with its timeout (None: none): answer or failure.

    The timeout is the caller's cancellation (``asyncio.timeout``), or with ``own_timer``
    the client's own (``post(timeout=)``, the fan-out's)."""

    async def go() -> list[tuple[int, bytes] | NodeHttpError | str]:
        pool = NodeConnections(url)
        out: list[tuple[int, bytes] | NodeHttpError | str] = []
        try:
            for timeout in requests:
                own = timeout if own_timer else None
                try:
                    async with asyncio.timeout(None if own_timer else timeout):
                        answer = await pool.post(
                            "/v1/delegate?x=1", HEADERS, b"{}", limit=LIMIT, timeout=own
                        )
                        out.append(answer)
                except NodeHttpError as exc:
                    out.append(exc)
                except TimeoutError:
                    out.append("timeout")
        finally:
            await pool.aclose()
        return out

    with asyncio.Runner(loop_factory=LOOP) as runner:
        return runner.run(go())


def failure(outcome: object) -> tuple[FailureKind, str]:
    assert isinstance(outcome, NodeHttpError), outcome
    return outcome.failure.kind, outcome.failure.detail


Handler = Callable[[Reader, Writer], Awaitable[None]]


def counting(answer: Callable[[int, int], bytes | None]) -> tuple[Handler, list[int]]:
    """A server answering request ``k`` of connection ``c`` with ``answer(c, k)`` (None: close)."""
    connections: list[int] = []

    async def handler(reader: Reader, writer: Writer) -> None:
        c = len(connections)
        connections.append(0)
        try:
            while True:
                await lb.read_request(reader)
                connections[c] += 1
                data = answer(c, connections[c] - 1)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return handler, connections


def test_answers_on_one_kept_connection() -> None:
    handler, connections = counting(lambda c, k: head(length=9) + f'{{"k":{k:03}}}'.encode())
    with lb.serving_in_thread(handler) as url:
        outcomes = run(url, None, None, None)
    assert outcomes == [(200, b'{"k":000}'), (200, b'{"k":001}'), (200, b'{"k":002}')]
    assert connections == [3]


def test_an_error_status_is_an_answer_with_its_body() -> None:
    handler, _ = counting(lambda c, k: head("403 Forbidden", length=2) + b"{}")
    with lb.serving_in_thread(handler) as url:
        assert run(url, None) == [(403, b"{}")]


def test_interim_answers_are_skipped() -> None:
    handler, _ = counting(lambda c, k: head("100 Continue") + head(length=2) + b"{}")
    with lb.serving_in_thread(handler) as url:
        assert run(url, None, None) == [(200, b"{}"), (200, b"{}")]


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"\x00\xffnot json at all", "not HTTP/1.1"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not HTTP/1.1"),
        (b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n", "not HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\n\r\n", "not HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\n folded: header\r\n\r\n", "not HTTP/1.1"),
        (head("101 Switching Protocols"), "not HTTP/1.1"),
        (head("200 OK", "transfer-encoding: chunked") + b"2\r\n{}\r\n0\r\n\r\n", "chunked"),
        (head("200 OK", "content-length: 2", "content-length: 3") + b"{}", "Content-Length"),
        (head("200 OK", "content-length: -2") + b"{}", "Content-Length"),
        (head("200 OK", "content-length: 0x10") + b"{}", "Content-Length"),
        (head(length=LIMIT + 1), "answer too large"),
        (head("200 OK", "x-junk: " + "a" * MAX_HEAD_BYTES), "answer head too large"),
        (b"HTTP/1.1 200 OK\r\n" + b"x" * (MAX_HEAD_BYTES + 10), "answer head too large"),
    ],
)
def test_a_bad_answer_is_invalid_and_its_connection_closed(data: bytes, detail: str) -> None:
    """The node stays connected (it may send more): the client decides, and hangs up."""
    good = head(length=2) + b"{}"
    handler, connections = counting(lambda c, k: data if c == 0 else good)
    with lb.serving_in_thread(handler) as url:
        first, second = run(url, 5, 5)
    kind, text = failure(first)
    assert kind is FailureKind.INVALID and detail in text
    assert second == (200, b"{}")  # on a new connection: nothing of the junk is read again
    assert len(connections) == 2


def test_an_answer_without_content_length_is_invalid() -> None:
    """A body that ends with the connection is not one this client reads."""
    handler, _ = counting(lambda c, k: head() + b"{}")
    with lb.serving_in_thread(handler) as url:
        (outcome,) = run(url, 5)
    assert failure(outcome) == (FailureKind.INVALID, "answer without Content-Length")


def test_a_close_mid_answer_is_unreachable() -> None:
    async def cut(reader: Reader, writer: Writer) -> None:
        await lb.read_request(reader)
        writer.write(head(length=100) + b'{"partial')
        await writer.drain()
        writer.close()

    with lb.serving_in_thread(cut) as url:
        (outcome,) = run(url, 5)
    assert failure(outcome) == (FailureKind.UNREACHABLE, "connection closed mid-answer")


def test_a_close_before_any_answer_on_a_new_connection_is_unreachable() -> None:
    handler, _ = counting(lambda c, k: None)
    with lb.serving_in_thread(handler) as url:
        (outcome,) = run(url, 5)
    assert failure(outcome) == (
        FailureKind.UNREACHABLE,
        "connection closed or reset before an answer",
    )


def test_nothing_listening_is_unreachable() -> None:
    with lb.serving_in_thread(counting(lambda c, k: None)[0]) as url:
        pass  # the server is gone: its port is closed
    kind, detail = failure(run(url, 5)[0])
    assert kind is FailureKind.UNREACHABLE and detail.startswith("connect: ")


def test_a_kept_connection_closed_by_the_node_is_replaced() -> None:
    """A node that closes after each answer without saying so: no request is lost."""
    connections: list[int] = []

    async def close_after_one(reader: Reader, writer: Writer) -> None:
        await lb.read_request(reader)
        connections.append(1)
        writer.write(head(length=2) + b"{}")
        await writer.drain()
        writer.close()

    with lb.serving_in_thread(close_after_one) as url:
        assert run(url, 5, 5, 5) == [(200, b"{}")] * 3
    assert len(connections) == 3


def test_connection_close_and_extra_bytes_end_the_connection() -> None:
    answers = {
        0: head("200 OK", "Connection: keep-alive, close", "content-length: 2") + b"{}",
        1: head(length=2) + b"{}" + head(length=2) + b"[]",  # one answer too many
    }
    handler, connections = counting(lambda c, k: answers.get(c, head(length=2) + b"{}"))
    with lb.serving_in_thread(handler) as url:
        assert run(url, 5, 5, 5) == [(200, b"{}")] * 3
    assert len(connections) == 3


def test_a_slow_answer_times_out_and_is_never_read_as_the_next_one() -> None:
    async def slow_first(reader: Reader, writer: Writer) -> None:
        first = not hasattr(slow_first, "seen")
        slow_first.seen = True  # type: ignore[attr-defined]
        while True:
            try:
                await lb.read_request(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if first:
                await asyncio.sleep(0.5)
                body = b'"late"'
            else:
                body = b'"next"'
            try:
                writer.write(head(length=len(body)) + body)
                await writer.drain()
            except ConnectionError:
                break
        writer.close()

    with lb.serving_in_thread(slow_first) as url:
        outcomes = run(url, 0.1, 5, 5)
    assert outcomes == ["timeout", (200, b'"next"'), (200, b'"next"')]
    del slow_first.seen  # type: ignore[attr-defined]
    with lb.serving_in_thread(slow_first) as url:
        first, *rest = run(url, 0.1, 5, 5, own_timer=True)
    assert failure(first) == (FailureKind.TIMEOUT, "no answer in time")
    assert rest == [(200, b'"next"'), (200, b'"next"')]


def test_the_own_timer_covers_a_connection_that_never_completes() -> None:
    """A peer that takes the TCP connection but never a TLS handshake: still a timeout."""

    async def mute(reader: Reader, writer: Writer) -> None:
        await asyncio.sleep(5)

    with lb.serving_in_thread(mute) as url:
        (outcome,) = run(url.replace("http://", "https://"), 0.3, own_timer=True)
    assert failure(outcome) == (FailureKind.TIMEOUT, "no answer in time")


def test_a_trickled_answer_is_read_whole() -> None:
    async def trickle(reader: Reader, writer: Writer) -> None:
        await lb.read_request(reader)
        data = head("200 OK", "Content-Type: application/json", length=11) + b'{"a":"bcd"}'
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.001)
        await asyncio.sleep(1)

    with lb.serving_in_thread(trickle) as url:
        assert run(url, 10) == [(200, b'{"a":"bcd"}')]


def test_the_request_is_plain_http11_with_its_length() -> None:
    seen: list[bytes] = []

    async def record(reader: Reader, writer: Writer) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        seen.append(request + await reader.readexactly(2))
        writer.write(head(length=2) + b"{}")
        await writer.drain()
        await asyncio.sleep(0.2)

    with lb.serving_in_thread(record) as url:
        assert run(url, 5) == [(200, b"{}")]
    port = url.rsplit(":", 1)[1]
    assert seen == [
        b"POST /v1/delegate?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" + port.encode() + b"\r\n"
        b"Content-Length: 2\r\nAuthorization: EIP712 abc\r\n"
        b"Content-Type: application/json\r\n\r\n{}"
    ]


def test_a_line_break_in_a_header_is_refused_before_sending() -> None:
    async def go() -> None:
        pool = NodeConnections("http://127.0.0.1:9")
        with pytest.raises(ValueError):
            await pool.post("/v1/delegate", [("X", "a\r\nInjected: 1")], b"{}", limit=LIMIT)

    with asyncio.Runner(loop_factory=LOOP) as runner:
        runner.run(go())
