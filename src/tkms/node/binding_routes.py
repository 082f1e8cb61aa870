"""``POST /v1/bindings/register``: the admin registers, once, the bindings of records
imported from a nox deployment (docs/binding.md, "Records imported from a nox deployment").

Checks, in order, every refusal a documented 4xx JSON error: the body's shape (400
``invalid_body``); the registry exists and the admin is configured (403
``registration_disabled``); the window is open, ``TKMS_NODE_BINDING_REGISTRATION=open``
(403 ``registration_closed``: closed by default, so a registration happens only while the
operator holds it open for the migration); the chain is served (400 ``unknown_chain``);
every handle is of that chain (400 ``invalid_handle``); the admin's signature (401
``invalid_signature``, ``unauthorized_signer``); not expired (403 ``registration_expired``)
and at most 24 h ahead (400 ``invalid_registration``). Then every entry is written once:
same record ``unchanged``, another record ``conflicted`` (the first kept).

A replayed registration is harmless (every entry then answers ``unchanged``), so no nonce
is remembered: the nonce only makes two registrations of the same entries distinct.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, recover_address
from tkms.node.bindings import BindingRegistry, RegistryError
from tkms.protocol.binding_registration import (
    MAX_ENTRIES,
    MAX_LIFETIME,
    RECORD_LENGTH,
    BindingEntry,
    registration_digest,
)
from tkms.protocol.handle import HandleError, parse_handle
from tkms.web import openapi
from tkms.web.common import json_response, require_json
from tkms.web.errors import ApiError
from tkms.web.jsonbody import parse_json

log = logging.getLogger("tkms.node.bindings")
PATH = "/v1/bindings/register"
PREFIX = "/v1/bindings/"
BODY_LIMIT = 256 * 1024
"""MAX_ENTRIES entries of ~150 bytes of JSON each, and the envelope."""


def _integer(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise ApiError(400, "invalid_body", f"{name} must be a non-negative integer")
    return value


def _entries(raw: object, chain_id: int) -> list[BindingEntry]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ENTRIES:
        raise ApiError(400, "invalid_body", f"entries must be a list of 1 to {MAX_ENTRIES}")
    entries, seen = [], set()
    for item in raw:
        if not isinstance(item, dict):
            raise ApiError(400, "invalid_body", "each entry must be {handle, record}")
        try:
            handle = parse_handle(item.get("handle"), chain_id=chain_id).to_bytes()
        except HandleError as exc:
            raise ApiError(400, "invalid_handle", str(exc)) from None
        try:
            record = parse_hex(item.get("record"), name="record", length=RECORD_LENGTH)
        except EncodingError as exc:
            raise ApiError(400, "invalid_body", str(exc)) from None
        if handle in seen:
            raise ApiError(400, "invalid_body", f"handle {to_hex(handle)} is listed twice")
        seen.add(handle)
        entries.append(BindingEntry(handle, record))
    return entries


class BindingRegistration:
    """The route's checks; ``clock`` gives Unix seconds (a seam for tests of expiry)."""

    def __init__(
        self,
        registry: BindingRegistry | None,
        admin: bytes | None,
        chains: Collection[int],
        *,
        open_: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.admin = admin
        self.chains = frozenset(chains)
        self.open = open_
        self._clock = clock

    def __repr__(self) -> str:
        return f"BindingRegistration(open={self.open}, registry={self.registry!r})"

    def register(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "request body must be a JSON object")
        if self.registry is None or self.admin is None:
            raise ApiError(
                403,
                "registration_disabled",
                "this node has no state directory or no TKMS_NODE_DKG_ADMIN_ADDRESS",
            )
        if not self.open:
            raise ApiError(
                403,
                "registration_closed",
                "binding registration is closed (TKMS_NODE_BINDING_REGISTRATION=open)",
            )
        chain_id = body.get("chainId")
        if (
            not isinstance(chain_id, int)
            or isinstance(chain_id, bool)
            or chain_id not in self.chains
        ):
            raise ApiError(400, "unknown_chain", "chainId is not a chain this node serves")
        entries = _entries(body.get("entries"), chain_id)
        try:
            nonce = parse_hex(body.get("nonce"), name="nonce", length=32)
            signature = parse_hex(body.get("authorization"), name="authorization", length=65)
        except EncodingError as exc:
            raise ApiError(400, "invalid_body", str(exc)) from None
        expires_at = _integer(body.get("expiresAt"), "expiresAt")
        digest = registration_digest(chain_id, entries, nonce, expires_at)
        try:
            signer = recover_address(digest, signature)
        except SignatureError:
            raise ApiError(401, "invalid_signature", "admin authorization is invalid") from None
        if signer != self.admin:
            raise ApiError(401, "unauthorized_signer", "not signed by the committee admin")
        now = self._clock()
        if expires_at <= now:
            raise ApiError(403, "registration_expired", "the registration has expired")
        if expires_at > now + MAX_LIFETIME:
            raise ApiError(
                400, "invalid_registration", f"expiresAt is more than {MAX_LIFETIME} s ahead"
            )
        try:
            outcome = self.registry.register(chain_id, entries, int(now))
        except RegistryError as exc:
            log.error("binding registry: %s", exc)
            raise ApiError(503, "state_unavailable", "cannot record the bindings") from None
        log.info(
            "chain %d: %d binding(s) registered, %d unchanged, %d conflicted",
            chain_id,
            outcome.created,
            outcome.unchanged,
            len(outcome.conflicted),
        )
        return {
            "created": outcome.created,
            "unchanged": outcome.unchanged,
            "conflicted": [to_hex(h) for h in outcome.conflicted],
        }


def add_binding_routes(app: FastAPI, service: BindingRegistration) -> None:
    @app.post(
        PATH,
        openapi_extra=openapi.operation(
            body=openapi.fields(
                chainId="integer",
                entries="array",
                nonce=openapi.HEX,
                expiresAt="integer",
                authorization=openapi.HEX,
            )
        ),
    )
    async def register(request: Request) -> Response:
        require_json(request)
        body = parse_json(await request.body())
        # The write is fsynced: off the event loop, so delegations keep being served.
        return json_response(await asyncio.to_thread(service.register, body))
