"""Asking KMS nodes directly for partials (what the gateway does; tests and tools too).

Each answer's ``PartialDelegateResponseProof`` must recover to the signer the
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

from tkms.client.delegation import sign_delegate_request
from tkms.client.recombine import SealedPartial
from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet


@dataclass
class PartialsRound:
    answers: list[SealedPartial] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)


def check_partial_answer(
    data: Any, *, index: int, signer: bytes, chain_id: int, salt: bytes
) -> SealedPartial:
    """Validate one node's §3.2 answer; raises ValueError saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("answer is not a JSON object")
    if data.get("index") != index:
        raise ValueError(f"answered as index {data.get('index')!r}")
    epoch = data.get("epoch")
    sealed = data.get("encryptedPartial")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError("epoch is not a non-negative integer")
    if not isinstance(sealed, str):
        raise ValueError("encryptedPartial is not a string")
    try:
        proof = parse_hex(data.get("proof"), name="proof", length=65)
        sealed_bytes = parse_hex(sealed, name="encryptedPartial")
        recovered = eip712.recover(
            eip712.delegate_domain(chain_id, salt),
            eip712.PARTIAL_DELEGATE_RESPONSE_PROOF,
            {"index": index, "epoch": epoch, "encryptedPartial": sealed},
            proof,
        )
    except (EncodingError, SignatureError, eip712.Eip712Error) as exc:
        raise ValueError(f"response proof: {exc}") from None
    if recovered != signer:
        raise ValueError("response proof is not signed by the node's wallet")
    return SealedPartial(index, epoch, sealed_bytes)


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
) -> PartialsRound:
    """Ask every node ``index → (url, signer)`` at once; collect answers and failures."""
    salt = secrets.token_bytes(32) if salt is None else salt
    signature = sign_delegate_request(gateway, chain_id, ephemeral_pubkey, target_pubkey)
    body = {"ephemeralPubKey": ephemeral_pubkey, "targetPubKey": target_pubkey}
    result = PartialsRound()
    http = client or httpx.AsyncClient(timeout=timeout)

    async def ask(index: int, url: str, signer: bytes) -> None:
        try:
            response = await http.post(
                url.rstrip("/") + "/v1/delegate",
                params={"chain_id": str(chain_id), "salt": to_hex(salt)},
                headers={"Authorization": f"Bearer {signature}"},
                json=body,
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
        except ValueError as exc:
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
