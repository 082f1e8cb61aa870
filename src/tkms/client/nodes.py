"""Asking KMS nodes directly for partials (what the gateway does; tests and tools too).

The request and the check of each answer are :mod:`tkms.protocol.delegation`'s:
each answer's ``PartialDelegateResponseProof`` must recover to the signer the
keyset lists for that index; an answer that fails anything is recorded as a
failure of that node and never stops the others.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tkms.crypto.wallet import Wallet
from tkms.protocol.delegation import (
    V1_PATH,
    DelegationAnswerError,
    SealedPartial,
    check_partial_answer,
    delegate_request,
)


@dataclass
class PartialsRound:
    answers: list[SealedPartial] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)


async def fetch_partials(
    nodes: Mapping[int, tuple[str, bytes]],
    gateway: Wallet,
    chain_id: int,
    ephemeral_pubkey: str,
    target_pubkey: str,
    *,
    timeout: float = 2.0,
    salt: bytes | None = None,
    client: httpx.AsyncClient | None = None,
    context: Mapping[str, Any] | None = None,
) -> PartialsRound:
    """Ask every node ``index → (url, signer)`` at once; collect answers and failures.

    ``context``: what a user-mode node checks besides the signature (user_fields)."""
    salt = secrets.token_bytes(32) if salt is None else salt
    request = delegate_request(gateway, chain_id, ephemeral_pubkey, target_pubkey)
    result = PartialsRound()
    http = client or httpx.AsyncClient(timeout=timeout)

    async def ask(index: int, url: str, signer: bytes) -> None:
        try:
            response = await http.post(
                url.rstrip("/") + V1_PATH,
                params=request.query(salt),
                headers={"Authorization": request.authorization},
                json={**(context or {}), **request.body},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            result.failures[index] = f"unreachable ({type(exc).__name__})"
            return
        try:
            data = response.json()
        except ValueError:
            result.failures[index] = f"HTTP {response.status_code} without JSON"
            return
        if response.status_code != 200:
            code = data.get("error") if isinstance(data, dict) else None
            result.failures[index] = f"HTTP {response.status_code} {code}"
            return
        try:
            answer = check_partial_answer(
                data, index=index, signer=signer, chain_id=chain_id, salt=salt
            )
        except DelegationAnswerError as exc:
            result.failures[index] = str(exc)
            return
        result.answers.append(answer)

    try:
        await asyncio.gather(*(ask(i, url, signer) for i, (url, signer) in nodes.items()))
    finally:
        if client is None:
            await http.aclose()
    result.answers.sort(key=lambda a: a.index)
    return result
