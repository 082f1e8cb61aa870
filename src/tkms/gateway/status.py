"""``POST /v0/public/handles/status``: which handles of a batch have a record (nox-compat.md).

dApps and the Hardhat plugin poll it until the results of a computation are
published. The body is ``{"handles": [...]}``; the chain is the first
handle's and every handle must be of it; an empty list, a mixed or
unparsable one is 400, more than the chain's ``MAX_HANDLES_PER_REQUEST`` is
400 ``batch_too_large`` (checked before the rest is parsed). The answer lists
``{handle, resolved}`` in request order (duplicates included), signed as
``HandleStatusReport``; the database is asked once per batch, never once per
handle. No ACL is asked: whether a handle has a record tells nothing of its
value, and nox answers it to anyone.
"""

from __future__ import annotations

from collections.abc import Callable

from tkms.crypto import eip712
from tkms.crypto.encoding import to_hex
from tkms.gateway.public import read_handle
from tkms.gateway.service import Answer, GatewayService
from tkms.gateway.wire import signed
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json_object
from tkms.web.params import parse_salt


class HandleStatus:
    """The route's logic; ``max_handles``: a chain id's largest batch."""

    def __init__(self, service: GatewayService, max_handles: Callable[[int], int]) -> None:
        self._service = service
        self._max_handles = max_handles

    async def statuses(self, salt_raw: str | None, body: bytes) -> Answer:
        service = self._service
        salt = parse_salt(salt_raw)
        data = parse_json_object(body)
        raw = data.get("handles")
        if not isinstance(raw, list):
            raise ApiError(400, "bad_request", "handles must be a list of handles")
        if not raw:
            raise ApiError(400, "bad_request", "handles is empty")
        chain, first = read_handle(service.chains, raw[0], "handles[0]")
        limit = self._max_handles(chain.chain_id)
        if len(raw) > limit:
            raise ApiError(
                400, "batch_too_large", f"{len(raw)} handles, at most {limit} per request"
            )
        handles = [first.to_bytes()]
        for i, item in enumerate(raw[1:], start=1):
            other, parsed = read_handle(service.chains, item, f"handles[{i}]")
            if other is not chain:
                raise ApiError(
                    400,
                    "bad_request",
                    f"handles[{i}] is of chain {parsed.chain_id}, handles[0] of {chain.chain_id}:"
                    " one chain per batch",
                )
            handles.append(parsed.to_bytes())
        stored = await service._db(service.store.existing, list(dict.fromkeys(handles)))
        payload = {"statuses": [{"handle": to_hex(h), "resolved": h in stored} for h in handles]}
        return Answer(
            signed(chain.wallet, chain.chain_id, salt, eip712.HANDLE_STATUS_REPORT, payload)
        )
