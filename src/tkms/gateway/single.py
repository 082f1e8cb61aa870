"""Single-node mode: one nox-compatible node holds the whole key (``/v0/delegate``).

The gateway asks it exactly as the Nox gateway asks nox-kms and checks its
``DelegateResponseProof`` against the configured node signer before
forwarding the sealed shared secret.
"""

from __future__ import annotations

import httpx

from tkms.crypto.wallet import Wallet
from tkms.protocol.delegation import (
    V0_PATH,
    DelegationAnswerError,
    check_shared_secret_answer,
    delegate_request,
)
from tkms.web.errors import ApiError


def _unavailable(why: str) -> ApiError:
    return ApiError(503, "kms_unavailable", f"the KMS node {why}")


class SingleNode:
    def __init__(
        self, url: str, signer: bytes, gateway: Wallet, chain_id: int, *, timeout: float
    ) -> None:
        self.url = url.rstrip("/")
        self.signer = signer
        self.gateway = gateway
        self.chain_id = chain_id
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def delegate(self, ephemeral_pubkey: str, target_pubkey: str, salt: bytes) -> str:
        """The sealed ``x(S)`` (hex as the node signed it), or a 503 saying what went wrong."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout)
        request = delegate_request(self.gateway, self.chain_id, ephemeral_pubkey, target_pubkey)
        try:
            response = await self._http.post(
                self.url + V0_PATH,
                params=request.query(salt),
                headers={"Authorization": request.authorization},
                json=request.body,
            )
            data = response.json()
        except httpx.TimeoutException:
            raise _unavailable("did not answer in time") from None
        except (httpx.HTTPError, ValueError):
            raise _unavailable("is unreachable or did not answer JSON") from None
        if response.status_code != 200 or not isinstance(data, dict):
            code = data.get("error") if isinstance(data, dict) else None
            raise _unavailable(f"refused: HTTP {response.status_code} {str(code)[:40]}")
        try:
            checked = check_shared_secret_answer(data, chain_id=self.chain_id, salt=salt)
        except DelegationAnswerError:
            raise _unavailable("answered without a valid response proof") from None
        if checked.signer != self.signer:
            raise _unavailable("answer is not signed by the configured node signer")
        return checked.encrypted_shared_secret
