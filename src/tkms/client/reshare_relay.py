"""Running a reshare as its relay (``tkms reshare``): same ``Y``, epoch + 1, a new committee.

The relay reads the old keyset from the old committee (every node that
answers must serve the same one), takes those nodes as dealers, reads the new
members' identities, fixes the reshare (``ReshareConfig``: old keyset, dealers,
new threshold and members, fresh nonce, expiry) and has the admin sign it
(``ReshareStart``); then it carries the rounds to every participant, old and
new (a node that stays is one participant with two indexes). As for a DKG it
sees only signed public packages. ``interceptor`` lets tests play a hostile relay.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tkms.client.errors import CeremonyError
from tkms.client.relay import (
    CeremonyOutcome,
    Committee,
    Interceptor,
    Progress,
    _identities,
    _round,
    _rounds,
)
from tkms.crypto import eip712
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg.keyset import KeysetResult
from tkms.dkg.reshare_config import ReshareConfig
from tkms.protocol.keyset import KeysetError, verify_keyset


@dataclass
class ReshareOutcome:
    config: ReshareConfig
    urls: dict[int, str]
    """Participant number (the keys of the maps below) → its URL."""
    keyset: dict[str, Any] | None = None
    progress: CeremonyOutcome | None = None
    qualified: list[int] = field(default_factory=list)
    disqualified: list[int] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.keyset is not None

    @property
    def errors(self) -> dict[int, str]:
        return self.progress.errors if self.progress is not None else {}


async def old_keyset(
    http: httpx.AsyncClient, committee: Committee, trusted: bytes | None = None
) -> tuple[KeysetResult, list[int]]:
    """The newest keyset the old committee serves, and the indexes of the nodes serving it.

    Each body is checked as a client checks one (:func:`verify_keyset`: every
    member's signature, or consistency with ``trusted``): a node cannot make
    the relay reshare a keyset the committee never signed. A node still on an
    older epoch (it missed the last switch) is not a dealer; it may be a new member.
    """

    async def one(url: str) -> KeysetResult | None:
        try:
            response = await http.get(
                url.rstrip("/") + "/v1/keyset", params={"chain_id": str(committee.chain_id)}
            )
            if response.status_code != 200:
                return None
            return verify_keyset(response.json(), committee.chain_id, trusted).keyset
        except (httpx.HTTPError, ValueError, KeysetError):
            return None

    found = await asyncio.gather(*(one(n.url) for n in committee.nodes))
    served = [(n.index, k) for n, k in zip(committee.nodes, found, strict=True) if k is not None]
    if not served:
        raise CeremonyError("no node of the old committee serves a valid keyset")
    newest = max(k.epoch for _, k in served)
    digests = {k.digest(committee.chain_id) for _, k in served if k.epoch == newest}
    if len(digests) > 1:
        raise CeremonyError(f"the old committee serves different keysets of epoch {newest}")
    keyset = next(k for _, k in served if k.epoch == newest)
    listed = {n.index for n in keyset.nodes}
    return keyset, sorted(i for i, k in served if k.epoch == newest and i in listed)


async def run_reshare_async(
    old: Committee,
    new: Committee,
    admin: Wallet,
    threshold: int,
    *,
    dealers: Sequence[int] | None = None,
    trusted: bytes | None = None,
    timeout: float = 60.0,
    lifetime: float = 600.0,
    interceptor: Interceptor | None = None,
    progress: Progress | None = None,
) -> ReshareOutcome:
    if old.chain_id != new.chain_id:
        raise CeremonyError("the old and new committee files name different chains")
    async with httpx.AsyncClient(timeout=timeout) as http:
        keyset, holders = await old_keyset(http, old, trusted)
        chosen = sorted(dealers) if dealers is not None else holders
        members = await _identities(http, new)
        try:
            config = ReshareConfig(
                chain_id=old.chain_id,
                old_keyset=keyset,
                old_epoch=keyset.epoch,
                new_epoch=keyset.epoch + 1,
                dealers=tuple(chosen),
                new_threshold=threshold,
                new_members=members,
                nonce=secrets.token_bytes(32),
                expires_at=int(time.time() + lifetime),
            )
        except ValueError as exc:
            raise CeremonyError(f"invalid reshare: {exc}") from None
        urls = _participants(old, new, set(chosen))
        outcome = ReshareOutcome(config, urls)
        # The DKG relay's bookkeeping (errors, rejected, bytes) is reused as is.
        tally = outcome.progress = CeremonyOutcome(config)  # type: ignore[arg-type]
        domain = eip712.dkg_domain(config.chain_id)
        start_sig = eip712.sign(admin, domain, eip712.RESHARE_START, config.start_statement())
        start_body = {"config": config.to_json(), "authorization": to_hex(start_sig)}
        answers = await _round(
            http, urls, "/v1/reshare/start", lambda _i: start_body, tally, progress, "start"
        )
        answers = await _rounds(
            http, urls, "/v1/reshare/round", config.session_id, admin, answers, tally, progress,
            interceptor,
        )  # fmt: skip
        _conclude(outcome, answers)
        return outcome


def _participants(old: Committee, new: Committee, dealers: set[int]) -> dict[int, str]:
    """Every node that deals or receives, once (a node that stays is in both files)."""
    seen: list[str] = []
    for node in old.nodes:
        if node.index in dealers:
            seen.append(node.url.rstrip("/"))
    for node in new.nodes:
        url = node.url.rstrip("/")
        if url not in seen:
            seen.append(url)
    return dict(enumerate(seen, start=1))


def _conclude(outcome: ReshareOutcome, answers: dict[int, dict[str, Any]]) -> None:
    tally = outcome.progress
    assert tally is not None
    done = {k: a for k, a in answers.items() if a.get("phase") == "done" and a.get("keyset")}
    distinct = {json.dumps(a["keyset"], sort_keys=True) for a in done.values()}
    receivers = [a for a in done.values() if a.get("newIndex") is not None]
    if len(distinct) == 1 and len(receivers) == len(outcome.config.new_members):
        outcome.keyset = next(iter(done.values()))["keyset"]
        outcome.qualified = sorted({q for a in done.values() for q in a.get("qualified", [])})
        outcome.disqualified = sorted({q for a in done.values() for q in a.get("disqualified", [])})
    elif len(distinct) > 1:
        for k in done:
            tally.errors.setdefault(k, "nodes finished with different keysets")


def run_reshare(
    old: Committee, new: Committee, admin: Wallet, threshold: int, **kwargs: Any
) -> ReshareOutcome:
    return asyncio.run(run_reshare_async(old, new, admin, threshold, **kwargs))
