"""Single-node mode: one nox-compatible node holds the whole key (``/v0/delegate``).

The gateway asks it exactly as the Nox gateway asks nox-kms and checks its
``DelegateResponseProof`` against the configured node signer before
forwarding the sealed shared secret.
"""

from __future__ import annotations

import httpx

from tkms.client.delegation import sign_delegate_request
from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet
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
        signature = sign_delegate_request(
            self.gateway, self.chain_id, ephemeral_pubkey, target_pubkey
        )
        try:
            response = await self._http.post(
                self.url + "/v0/delegate",
                params={"chain_id": str(self.chain_id), "salt": to_hex(salt)},
                headers={"Authorization": f"Bearer {signature}"},
                json={"ephemeralPubKey": ephemeral_pubkey, "targetPubKey": target_pubkey},
            )
            data = response.json()
        except httpx.TimeoutException:
            raise _unavailable("did not answer in time") from None
        except (httpx.HTTPError, ValueError):
            raise _unavailable("is unreachable or did not answer JSON") from None
        if response.status_code != 200 or not isinstance(data, dict):
            code = data.get("error") if isinstance(data, dict) else None
            raise _unavailable(f"refused: HTTP {response.status_code} {str(code)[:40]}")
        sealed = data.get("encryptedSharedSecret")
        try:
            if not isinstance(sealed, str):
                raise EncodingError("encryptedSharedSecret is not a string")
            parse_hex(sealed, name="encryptedSharedSecret")
            signer = eip712.recover(
                eip712.delegate_domain(self.chain_id, salt),
                eip712.DELEGATE_RESPONSE_PROOF,
                {"encryptedSharedSecret": sealed},
                parse_hex(data.get("proof"), name="proof", length=65),
            )
        except (EncodingError, SignatureError, eip712.Eip712Error):
            raise _unavailable("answered without a valid response proof") from None
        if signer != self.signer:
            raise _unavailable("answer is not signed by the configured node signer")
        return sealed
