"""OpenAPI descriptions of endpoints that read their raw request themselves.

Our handlers take the raw query, header and body (the checks and their order
are the protocol's, not a framework's), so FastAPI cannot infer what they
read; these describe it, so that ``/openapi.json`` is true and a fuzzer
(schemathesis) can aim at every part of a request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

HEX = {"type": "string", "pattern": "^(0x)?[0-9a-fA-F]*$"}


ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}
ERRORS = {
    status: {"description": why, "content": {"application/json": {"schema": ERROR}}}
    for status, why in (
        ("4XX", "refused: malformed, unauthorized, unknown or too large (the error code says)"),
        ("501", "this mode is not configured on this service"),
        ("503", "not ready (no completed key generation) or not enough nodes answered"),
    )
}
"""The one error shape of every endpoint, as web/errors.py answers it."""


def fields(**types: Any) -> dict[str, Any]:
    """A JSON object whose named fields are all required; a str value names a JSON type."""
    properties = {k: ({"type": v} if isinstance(v, str) else v) for k, v in types.items()}
    return {"type": "object", "properties": properties, "required": list(types)}


def operation(
    *,
    path: Sequence[str] = (),
    query: Sequence[str] = (),
    authorization: bool = False,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``openapi_extra`` for a route: its parameters and its JSON body."""
    parameters: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in path
    ]
    parameters += [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in query
    ]
    if authorization:
        parameters.append(
            {
                "name": "Authorization",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            }
        )
    extra: dict[str, Any] = {"parameters": parameters, "responses": ERRORS}
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": dict(body)}},
        }
    return extra


DELEGATE = operation(
    query=("chain_id", "salt"),
    authorization=True,
    body=fields(ephemeralPubKey=HEX, targetPubKey=HEX),
)
"""``POST /v0/delegate`` and ``POST /v1/delegate`` (protocol.md §2, §3.2)."""
