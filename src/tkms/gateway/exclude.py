"""``GET /v1/secrets/{handle}?exclude=…``: the nodes a client asks the gateway to leave out.

A client that opened the partials of a first answer and caught some nodes
lying (a partial whose DLEQ proof fails: only the client can tell) asks again
without them; the gateway then chooses among the other nodes and signs the
set it honoured into its answer (docs/gateway.md). Every refusal here is a
400 ``invalid_exclude`` or ``too_many_excluded`` saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from tkms.web.errors import ApiError

MAX_EXCLUDE_LENGTH = 1024  # 255 indexes of three digits and their commas fit
MAX_INDEX = 255


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_exclude", message)


def parse_exclude(values: Sequence[str], committee: Collection[int]) -> frozenset[int]:
    """The excluded node indexes, each once and each a node of ``committee``.

    ``values`` are the request's ``exclude`` query values: none (or one empty
    value) excludes nobody; more than one is refused, not merged.
    """
    if not values:
        return frozenset()
    if len(values) > 1:
        raise _invalid("give exclude once, as a comma-separated list")
    raw = values[0]
    if len(raw) > MAX_EXCLUDE_LENGTH:
        raise _invalid(f"exclude is longer than {MAX_EXCLUDE_LENGTH} characters")
    if raw == "":
        return frozenset()
    seen: set[int] = set()
    for item in raw.split(","):
        # ASCII decimal without sign or leading zero: "٤", "+4", "04" are not indexes.
        if not (item.isascii() and item.isdigit()) or item[0] == "0" or len(item) > 3:
            raise _invalid(f"exclude must be comma-separated node indexes 1..{MAX_INDEX}")
        index = int(item)
        if index > MAX_INDEX:
            raise _invalid(f"exclude must be comma-separated node indexes 1..{MAX_INDEX}")
        if index in seen:
            raise _invalid(f"node {index} is excluded twice")
        if index not in committee:
            raise _invalid(f"node {index} is not in the committee")
        seen.add(index)
    return frozenset(seen)


def check_enough_left(exclude: Collection[int], committee: Collection[int], threshold: int) -> None:
    """400 when fewer than ``threshold`` nodes would be left to ask."""
    left = len(set(committee) - set(exclude))
    if left < threshold:
        raise ApiError(
            400,
            "too_many_excluded",
            f"excluding {len(exclude)} of {len(committee)} nodes leaves {left}, "
            f"fewer than the threshold {threshold}",
        )
