"""The one JSON parse of request input (bodies, and the JSON inside tokens).

``json.loads`` raises ``RecursionError`` on deep nesting (``[`` × 50,000), and
``ValueError`` (``UnicodeDecodeError`` included) on everything else that is not
JSON, an integer of more than 4,300 digits among them. Every service reads
request JSON through here, so each of those is the documented 400
``malformed_json`` and never an unexpected exception.
"""

from __future__ import annotations

import json
from typing import Any

from tkms.web.errors import ApiError


class JsonError(ValueError):
    """Not JSON, or nested too deeply to parse."""


def loads(data: bytes | str) -> Any:
    """``json.loads``, with every way it fails on hostile input as :class:`JsonError`."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise JsonError("not valid JSON") from None


def parse_json(body: bytes) -> Any:
    """A request body: any JSON value, or 400 ``malformed_json``."""
    try:
        return loads(body)
    except JsonError:
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (400 ``invalid_body`` otherwise)."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return data
