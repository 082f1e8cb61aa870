"""The CPU cost per request of the HTTP protocol layer: uvicorn's httptools protocol
against tkms's bounded one (``tkms.web.limits``), without sockets or the app.

    .venv/bin/python bench/http_protocol.py

Each case drives one keep-alive connection through a fake transport: it feeds
the bytes of the node's ``POST /v0/delegate`` request (the headers and body
bench/delegate.py sends), lets the event loop run the request's task (a
trivial ASGI app answering 200 with a small JSON body) and waits for the
response. Interleaved rounds (bench/common.py), so foreign load hits both
alike; the difference of the two is what the bounds cost per request.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bench.common import fmt_us, load_summary, measure_interleaved, print_table
from bench.delegate_fixture import CHAIN_ID, Fixture
from tkms.web.limits import HttpLimits, LimitedHttpToolsProtocol

BATCH = 200  # requests per timed call


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.responses = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 9000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if bytes(data).endswith(b"}"):
            self.responses += 1

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    body = b'{"ok":true}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def case(loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, request: bytes) -> Any:
    transport = FakeTransport()
    protocol.connection_made(transport)

    async def batch() -> None:
        for _ in range(BATCH):
            expected = transport.responses + 1
            protocol.data_received(request)  # type: ignore[attr-defined]
            while transport.responses < expected:
                await asyncio.sleep(0)
        assert not transport.closing

    return lambda: loop.run_until_complete(batch())


def main() -> None:
    print(f"machine: {load_summary()}")
    fx = Fixture.create()
    request = (
        b"POST /v0/delegate?chain_id=%d HTTP/1.1\r\nHost: 127.0.0.1:9000\r\n"
        b"User-Agent: wrk\r\nContent-Type: application/json\r\nAuthorization: %s\r\n"
        b"Content-Length: %d\r\n\r\n" % (CHAIN_ID, fx.authorization.encode(), len(fx.body))
    ) + fx.body
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    config = Config(app, log_level="error", access_log=False)
    config.load()
    state = ServerState()
    cases = {
        "uvicorn HttpToolsProtocol": case(
            loop, HttpToolsProtocol(config, state, {}, loop), request
        ),
        "tkms LimitedHttpToolsProtocol": case(
            loop, LimitedHttpToolsProtocol(config, state, {}, loop, limits=HttpLimits()), request
        ),
    }
    timings = measure_interleaved(cases, rounds=15, target=0.1)
    base = timings["uvicorn HttpToolsProtocol"].median_us / BATCH
    rows = []
    for name, t in timings.items():
        per = t.median_us / BATCH
        rows.append([name, fmt_us(per), fmt_us(t.min_us / BATCH), fmt_us(per - base)])
    print_table(
        f"HTTP protocol layer, one keep-alive POST /v0/delegate ({len(request)} bytes)",
        ["protocol", "median µs/req", "min µs/req", "over uvicorn µs"],
        rows,
        caption="parser + request task + trivial ASGI app + response, fake transport",
    )


if __name__ == "__main__":
    main()
