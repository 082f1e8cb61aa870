"""A compromised node for tests: a proxy in front of a real node that forges partials.

It holds the node's wallet (as an attacker who owns the machine would), so
its answers carry valid response signatures; only the DLEQ proof can give it
away.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.procs import free_port
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg import Deal, DkgMessage, DkgParticipant, Justification
from tkms.dkg.messages import EncryptedShare, RevealedShare, sign
from tkms.node.app import create_app
from tkms.node.config import load_node_config


def forged_envelope() -> bytes:
    """A well-formed but wrong partial: a random point and a random 'proof'."""
    fake = curve.encode_point(curve.base_mul(curve.random_scalar()))
    return (
        fake
        + curve.scalar_to_bytes(curve.random_scalar())
        + curve.scalar_to_bytes(curve.random_scalar())
    )


def build_app(upstream: str, wallet: Wallet, *, fast: tuple[int, int] | None = None) -> Starlette:
    """The forging proxy; with ``fast=(index, epoch)`` it never asks its node.

    A fast liar answers before any honest node can (it skips the work), so it
    is always among the first ``t + spare`` answers: the worst case of a lie.
    """

    async def delegate(request: Request) -> Response:
        body = await request.body()
        if fast is not None:
            return JSONResponse(
                _forged(body, request, wallet, {"index": fast[0], "epoch": fast[1]})
            )
        real = await relay_delegate(upstream, request, body)
        if real.status_code != 200:
            return Response(real.content, real.status_code, media_type="application/json")
        return JSONResponse(_forged(body, request, wallet, real.json()))

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/delegate", delegate, methods=["POST"]),
            Route("/health", health),
        ]
    )


async def relay_delegate(upstream: str, request: Request, body: bytes) -> httpx.Response:
    """``request`` (a ``POST /v1/delegate``, its ``body`` read) as its node answers it."""
    async with httpx.AsyncClient() as http:
        return await http.post(
            upstream + "/v1/delegate",
            params=dict(request.query_params),
            headers={
                "Authorization": request.headers.get("authorization", ""),
                "Content-Type": "application/json",
            },
            content=body,
            timeout=30,
        )


@contextmanager
def serve_in_thread(app: Any, port: int) -> Iterator[str]:
    """Run an ASGI app on loopback in this process, for as long as the block lasts."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _forged(body: bytes, request: Request, wallet: Wallet, answer: dict[str, Any]) -> Any:
    """``answer`` with a forged partial, sealed to the requester and validly signed."""
    target = rsa.load_public_key(parse_hex(json.loads(body)["targetPubKey"]))
    sealed = to_hex(rsa.encrypt(target, forged_envelope()))
    chain_id = int(request.query_params["chain_id"])
    salt = parse_hex(request.query_params.get("salt", "0x" + "00" * 32), length=32)
    proof = eip712.sign(
        wallet,
        eip712.delegate_domain(chain_id, salt),
        eip712.PARTIAL_DELEGATE_RESPONSE_PROOF,
        {"index": answer["index"], "epoch": answer["epoch"], "encryptedPartial": sealed},
    )
    answer["encryptedPartial"] = sealed
    answer["proof"] = to_hex(proof)
    return answer


def forging_proxy(
    upstream: str, wallet: Wallet, *, fast: tuple[int, int] | None = None
) -> AbstractContextManager[str]:
    return serve_in_thread(build_app(upstream, wallet, fast=fast), free_port())


class BadDealer(DkgParticipant):
    """Deals a wrong share to ``VICTIM``; with ``LIE`` it also justifies with a wrong one."""

    VICTIM = 3
    LIE = False

    def start(self) -> list[DkgMessage]:
        [deal] = super().start()
        assert isinstance(deal, Deal)
        victim = self.config.member(self.VICTIM)
        wrong = ecies.encrypt(
            victim.encryption_key,
            curve.scalar_to_bytes(curve.random_scalar()),
            info=self.config.share_info(self.index, self.VICTIM),
        )
        shares = tuple(
            EncryptedShare.from_record(self.VICTIM, wrong) if s.recipient == self.VICTIM else s
            for s in deal.shares
        )
        tampered = sign(replace(deal, shares=shares, signature=b""), self._identity.wallet)
        return self._emit(tampered)  # its own record matches what it sent

    def _close_complaining(self) -> list[DkgMessage]:
        messages = super()._close_complaining()
        if not self.LIE or not messages:
            return messages
        [justification] = messages
        assert isinstance(justification, Justification)
        lies = tuple(
            RevealedShare(r.recipient, curve.random_scalar()) for r in justification.revealed
        )
        tampered = sign(replace(justification, revealed=lies, signature=b""), self._identity.wallet)
        return self._emit(tampered)


class LyingDealer(BadDealer):
    LIE = True


@contextmanager
def in_process_node(env: dict[str, str], participant: type[DkgParticipant]) -> Iterator[str]:
    """A node whose DKG runs ``participant``: real routes, our own (cheating) process."""
    config = load_node_config(env)
    app = create_app(config)
    app.state.threshold.dkg.participant_factory = participant
    with serve_in_thread(app, config.server.port) as url:
        yield url
