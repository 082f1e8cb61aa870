"""SimpleCors (tkms.web.cors) adds what Starlette's CORSMiddleware adds, byte for byte.

For any configuration the middleware takes (every origin or a list, a regex,
credentials, exposed headers), any request Origin (none, allowed, refused,
repeated) and any answer's headers (with or without the ones CORS sets), the
``http.response.start`` message SimpleCors sends is the middleware's. Over
HTTP, tests/test_gateway_fastpath.py compares the gateway's reads with its
stack. No timing here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware

from tkms.web.cors import SimpleCors

ORIGINS = ["https://dapp.example", "https://other.example", "null", "http://x:1"]
NAMES = [b"vary", b"access-control-allow-origin", b"access-control-expose-headers", b"x-a"]


async def _unused(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the app behind is never called")


configs = st.fixed_dictionaries(
    {
        "allow_origins": st.sampled_from([["*"], [], ORIGINS[:1], ORIGINS[:2]]),
        "allow_origin_regex": st.sampled_from([None, r"https://.*\.example"]),
        "allow_credentials": st.booleans(),
        "expose_headers": st.sampled_from(
            [[], ["Server-Timing"], ["Server-Timing", "Retry-After"]]
        ),
    }
)
origins = st.lists(st.sampled_from(ORIGINS), max_size=2)
answer_headers = st.lists(
    st.tuples(st.sampled_from(NAMES), st.sampled_from([b"Origin", b"*", b"Accept", b"1"])),
    max_size=3,
)


def _sent(send_with: Any, headers: list[tuple[bytes, bytes]]) -> list[Any]:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    start = {"type": "http.response.start", "status": 200, "headers": list(headers)}
    body = {"type": "http.response.body", "body": b"{}"}
    asyncio.run(_both(send_with, send, start, body))
    return sent


async def _both(send_with: Any, send: Any, start: Any, body: Any) -> None:
    await send_with(start, send)
    await send_with(body, send)


@given(configs, origins, answer_headers, st.booleans())
def test_simple_cors_is_the_middlewares(
    config: dict[str, Any],
    origin: list[str],
    headers: list[tuple[bytes, bytes]],
    plain: bool,
) -> None:
    cors = CORSMiddleware(_unused, **config)
    request = [(b"host", b"x"), *((b"origin", o.encode()) for o in origin)]
    answer = [(b"content-length", b"2"), (b"content-type", b"application/json")]
    if not plain:
        answer += headers
    ours = SimpleCors(cors)
    theirs = _sent(lambda m, s: cors.send(m, s, Headers(raw=list(request))), answer)
    assert _sent(lambda m, s: ours.send(m, s, request), answer) == theirs
