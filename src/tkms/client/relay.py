"""Running a DKG ceremony as its relay (``tkms dkg``).

The relay gathers each node's public identity, fixes the ceremony (chain,
epoch, threshold, members, fresh nonce, expiry ``lifetime`` seconds ahead),
has the admin sign all of it (``DkgStart``),
then carries every round's messages to every node. It sees only signed public
packages: it can delay or drop, and the nodes notice forgery and
equivocation. ``interceptor`` lets tests play a hostile relay or dealer.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tkms.client.errors import CeremonyError
from tkms.crypto import eip712
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg import CeremonyConfig, CommitteeMember, DkgMessageError

ROUND_NAMES = ("deal", "complain", "justify", "sign keyset")
Interceptor = Callable[[int, int, list[dict[str, Any]]], list[dict[str, Any]]]
"""(round, recipient index, messages) → the messages that recipient gets."""
Progress = Callable[[str, int, int], None]
"""(round name, nodes answered, nodes asked)."""


@dataclass(frozen=True)
class CommitteeNode:
    index: int
    url: str


@dataclass(frozen=True)
class Committee:
    chain_id: int
    nodes: tuple[CommitteeNode, ...]

    @classmethod
    def load(cls, path: Path) -> Committee:
        try:
            data = json.loads(path.read_text())
            nodes = tuple(CommitteeNode(int(n["index"]), str(n["url"])) for n in data["nodes"])
            return cls(int(data["chainId"]), tuple(sorted(nodes, key=lambda n: n.index)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CeremonyError(f"{path}: not a committee file ({exc})") from None


@dataclass
class CeremonyOutcome:
    config: CeremonyConfig
    keyset: dict[str, Any] | None = None
    phases: dict[int, str] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, list[str]] = field(default_factory=dict)
    complaints: dict[int, list[int]] = field(default_factory=dict)
    """Complainer → accused dealers, as broadcast (public: an operator wants to see them)."""
    qualified: list[int] = field(default_factory=list)
    """Dealers whose polynomials make up the key, as the finishing nodes report it."""
    messages: int = 0
    bytes_relayed: int = 0

    @property
    def succeeded(self) -> bool:
        return self.keyset is not None


async def _post(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(url, json=body)
    data = response.json()
    if response.status_code != 200:
        raise CeremonyError(
            f"HTTP {response.status_code} {data.get('error')}: {data.get('message')}"
        )
    if not isinstance(data, dict):
        raise CeremonyError("answer is not a JSON object")
    return data


async def _identities(http: httpx.AsyncClient, committee: Committee) -> tuple[CommitteeMember, ...]:
    async def one(node: CommitteeNode) -> CommitteeMember:
        response = await http.get(node.url.rstrip("/") + "/v1/dkg/identity")
        data = response.json()
        if response.status_code != 200:
            raise CeremonyError(f"node {node.index}: {data.get('message')}")
        return CommitteeMember.from_json({"index": node.index, **data})

    try:
        return tuple(await asyncio.gather(*(one(n) for n in committee.nodes)))
    except (httpx.HTTPError, DkgMessageError, ValueError) as exc:
        raise CeremonyError(f"cannot read the committee's identities: {exc}") from None


async def run_ceremony_async(
    committee: Committee,
    admin: Wallet,
    threshold: int,
    *,
    epoch: int = 1,
    timeout: float = 60.0,
    lifetime: float = 600.0,
    interceptor: Interceptor | None = None,
    progress: Progress | None = None,
) -> CeremonyOutcome:
    async with httpx.AsyncClient(timeout=timeout) as http:
        members = await _identities(http, committee)
        try:
            config = CeremonyConfig(
                committee.chain_id,
                epoch,
                threshold,
                members,
                secrets.token_bytes(32),
                int(time.time() + lifetime),
            )
        except ValueError as exc:
            raise CeremonyError(f"invalid ceremony: {exc}") from None
        outcome = CeremonyOutcome(config)
        domain = eip712.dkg_domain(config.chain_id)
        start_sig = eip712.sign(admin, domain, eip712.DKG_START, config.start_statement())
        urls = {n.index: n.url.rstrip("/") for n in committee.nodes}
        start_body = {"config": config.to_json(), "authorization": to_hex(start_sig)}
        answers = await _round(
            http, urls, "/v1/dkg/start", lambda _i: start_body, outcome, progress, "start"
        )
        answers = await _rounds(
            http, urls, "/v1/dkg/round", config.session_id, admin, answers, outcome, progress,
            interceptor,
        )  # fmt: skip
        _conclude(outcome, answers)
        return outcome


async def _round(
    http: httpx.AsyncClient,
    urls: dict[int, str],
    path: str,
    body_for: Callable[[int], dict[str, Any]],
    outcome: CeremonyOutcome,
    progress: Progress | None,
    name: str,
) -> dict[int, dict[str, Any]]:
    done = 0
    answers: dict[int, dict[str, Any]] = {}

    async def one(index: int, url: str) -> None:
        nonlocal done
        body = body_for(index)
        outcome.messages += len(body.get("messages", ()))
        outcome.bytes_relayed += len(json.dumps(body))
        try:
            answer = await _post(http, url + path, body)
        except (httpx.HTTPError, ValueError, CeremonyError) as exc:
            outcome.errors[index] = (
                f"{name}: {exc if isinstance(exc, CeremonyError) else type(exc).__name__}"
            )
        else:
            outcome.phases[index] = str(answer.get("phase"))
            if answer.get("rejected"):
                outcome.rejected.setdefault(index, []).extend(map(str, answer["rejected"]))
            if answer.get("phase") == "failed":
                outcome.errors[index] = f"{name}: {answer.get('error')}"
            else:
                answers[index] = answer
        done += 1
        if progress is not None:
            progress(name, done, len(urls))

    await asyncio.gather(*(one(i, u) for i, u in urls.items()))
    return answers


async def _rounds(
    http: httpx.AsyncClient,
    urls: dict[int, str],
    path: str,
    session_id: bytes,
    admin: Wallet,
    answers: dict[int, dict[str, Any]],
    outcome: CeremonyOutcome,
    progress: Progress | None,
    interceptor: Interceptor | None,
) -> dict[int, dict[str, Any]]:
    """Rounds 1-4 of a DKG or a reshare (the same four): each node gets every message
    the others answered the round before, under the admin's ``DkgStep``; only the nodes
    still answering go on. ``answers``: those of the start."""
    domain = eip712.dkg_domain(outcome.config.chain_id)
    for number, name in enumerate(ROUND_NAMES, start=1):
        broadcast = [m for a in answers.values() for m in a.get("messages", [])]
        for m in broadcast:
            if m.get("type") == "complaint" and m.get("accused"):
                outcome.complaints[int(m["sender"])] = list(m["accused"])
        step = {"sessionId": session_id, "round": number}
        sig = to_hex(eip712.sign(admin, domain, eip712.DKG_STEP, step))

        def body_for(
            index: int,
            number: int = number,
            sig: str = sig,
            broadcast: list[dict[str, Any]] = broadcast,
        ) -> dict[str, Any]:
            delivered = broadcast if interceptor is None else interceptor(number, index, broadcast)
            return {
                "sessionId": to_hex(session_id),
                "round": number,
                "messages": delivered,
                "authorization": sig,
            }

        alive = {i: u for i, u in urls.items() if i in answers}
        answers = await _round(http, alive, path, body_for, outcome, progress, name)
    return answers


def _conclude(outcome: CeremonyOutcome, answers: dict[int, dict[str, Any]]) -> None:
    keysets = {i: a.get("keyset") for i, a in answers.items() if a.get("phase") == "done"}
    distinct = {json.dumps(k, sort_keys=True) for k in keysets.values()}
    if keysets and len(distinct) == 1 and len(keysets) >= outcome.config.threshold:
        keyset = next(iter(keysets.values()))
        assert isinstance(keyset, dict)
        outcome.keyset = keyset
        outcome.qualified = sorted(
            {
                q
                for a in answers.values()
                if a.get("phase") == "done"
                for q in a.get("qualified", [])
            }
        )
    elif len(distinct) > 1:
        for i in keysets:
            outcome.errors.setdefault(i, "nodes finished with different keysets")


def run_ceremony(
    committee: Committee, admin: Wallet, threshold: int, **kwargs: Any
) -> CeremonyOutcome:
    return asyncio.run(run_ceremony_async(committee, admin, threshold, **kwargs))


def trusted_public_key(outcome: CeremonyOutcome) -> bytes:
    if outcome.keyset is None:
        raise CeremonyError("the ceremony did not complete")
    return parse_hex(outcome.keyset["publicKey"], length=33)


__all__: Sequence[str] = [
    "CeremonyError",
    "CeremonyOutcome",
    "Committee",
    "CommitteeNode",
    "run_ceremony",
    "run_ceremony_async",
    "trusted_public_key",
]
