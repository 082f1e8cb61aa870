"""The fast path (tkms.web.fastpath) answers its routes as FastAPI and our layers did.

Against a real node process: its delegate routes are fast routes, everything
else still goes through FastAPI. No timing here: bench/servers.py measures.
"""

from __future__ import annotations

import re

import httpx
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response

from tests.procs import Service
from tkms.node.delegate_route import _headers
from tkms.web.common import _COMPACT, json_response
from tkms.web.fastpath import query_params, query_values


@given(st.text(alphabet="ab=&%+2F0é; ", max_size=40))
def test_query_params_match_starlettes(text: str) -> None:
    raw = text.encode("latin-1", "replace")
    assert query_params(raw).multi_items() == QueryParams(raw).multi_items()


@given(st.text(alphabet="ab=&%+2F0é; ", max_size=40))
def test_query_values_are_what_query_params_get_answers(text: str) -> None:
    """The delegate routes read their query as a dict: the value Starlette's ``get`` gives
    for every name, repeated names (the last wins) and escapes included."""
    raw = text.encode("latin-1", "replace")
    params = QueryParams(raw)
    values = query_values(raw)
    assert set(values) == set(params.keys())
    assert all(values[name] == params.get(name) for name in values)


_HEADER_NAMES = st.sampled_from([b"content-type", b"authorization", b"host", b"x-other"])


@given(st.lists(st.tuples(_HEADER_NAMES, st.binary(max_size=6)), max_size=6))
def test_the_delegate_routes_read_headers_as_starlette(raw: list[tuple[bytes, bytes]]) -> None:
    """(Content-Type, Authorization) from the scope's list, as ``request.headers.get``:
    the first of each name, absent ones "" and None."""
    headers = Headers(raw=raw)
    expected = (headers.get("content-type", ""), headers.get("authorization"))
    assert _headers({"headers": raw}) == expected


@given(
    st.sampled_from([100, 200, 201, 204, 304, 400, 404, 413, 500, 503]),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3),
    st.none() | st.sampled_from(["gateway;dur=0.125", "gateway;dur=1.500, kms;dur=7.250"]),
)
def test_json_response_is_starlettes(
    status: int, data: dict[str, object], timing: str | None
) -> None:
    """json_response builds its headers itself: the same bytes as Starlette's Response
    (with the gateway's Server-Timing, as a headers mapping gives it)."""
    ours = json_response(data, status, timing=timing)
    headers = None if timing is None else {"Server-Timing": timing}
    body = _COMPACT.encode(data).encode()
    theirs = Response(body, status, media_type="application/json", headers=headers)
    assert (ours.status_code, ours.body, ours.raw_headers) == (
        theirs.status_code,
        theirs.body,
        theirs.raw_headers,
    )
    assert ours.background is None
    assert ours.headers["content-type"] == "application/json"


def _count(text: str, route: str, method: str, status: int) -> float:
    pattern = (
        r"^tkms_node_http_requests_total\{"
        rf'method="{method}",route="{re.escape(route)}",status="{status}"\}} (\S+)$'
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_refusals_keep_their_shape_and_metrics(v0_node: Service) -> None:
    with httpx.Client(base_url=v0_node.url, timeout=10) as client:
        before = client.get("/metrics").text
        json_headers = {"content-type": "application/json"}
        # Refused by the route's own checks: counted under its template.
        unsigned = client.post("/v0/delegate", content=b"{}", headers=json_headers)
        assert unsigned.status_code in (400, 401, 403)
        assert set(unsigned.json()) == {"error", "message"}
        wrong_type = client.post("/v0/delegate", content=b"{}")
        assert wrong_type.status_code == 415
        assert wrong_type.json()["error"] == "unsupported_media_type"
        # Refused before the route (the body limit): "unmatched", as Metrics counts it.
        huge = client.post("/v0/delegate", content=b"x" * (128 * 1024), headers=json_headers)
        assert huge.status_code == 413
        assert huge.json()["error"] == "payload_too_large"
        # Not a fast route's method: FastAPI's 405, in the JSON shape.
        wrong_method = client.get("/v0/delegate")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"] == "method_not_allowed"
        malformed = client.post("/v1/delegate", content=b"{", headers=json_headers)
        assert malformed.status_code in (400, 503)
        assert set(malformed.json()) == {"error", "message"}
        # The keyset (a fast GET): this node holds no share, so the route's own refusal.
        keyset = client.get("/v1/keyset")
        assert keyset.status_code in (400, 503)
        assert set(keyset.json()) == {"error", "message"}
        after = client.get("/metrics").text
    for route, method, status, n in [
        ("/v0/delegate", "POST", unsigned.status_code, 1),
        ("/v0/delegate", "POST", 415, 1),
        ("unmatched", "POST", 413, 1),
        ("/v0/delegate", "GET", 405, 1),
        ("/v1/keyset", "GET", keyset.status_code, 1),
    ]:
        grown = _count(after, route, method, status) - _count(before, route, method, status)
        assert grown == n, (route, method, status)
    errors = re.search(
        r'^tkms_node_errors_total\{code="unsupported_media_type"\} (\S+)$', after, re.MULTILINE
    )
    assert errors is not None and float(errors.group(1)) >= 1
