"""One delegation exchange with a KMS node (protocol.md §3.2, nox-compat.md), both ends' view.

The request is built here, for the gateway and for the tools that ask nodes
directly: ``DelegateAuthorization`` over the exact strings sent (its domain
has no salt, so one signature serves every node), the ``{ephemeralPubKey,
targetPubKey}`` body and the ``chain_id``/``salt`` query. The answers are
checked here too: a v1 partial's ``PartialDelegateResponseProof`` and a v0
sealed secret's ``DelegateResponseProof``, each under the request's salt, so
that the proof binds the answer to the one request it answers.

Failures raise :class:`DelegationAnswerError`; each caller maps it to its own
error (the SDK's ``UntrustedResponse``, the gateway's node failure or 503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.delegation_digests import partial_answer_digest
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet, keccak256, recover_address
from tkms.protocol.errors import ProtocolError

V0_PATH = "/v0/delegate"
V1_PATH = "/v1/delegate"


class DelegationAnswerError(ProtocolError):
    """A node's answer to a delegation request is malformed or not signed by that node."""


@dataclass(frozen=True)
class DelegateRequest:
    """What a delegation request carries besides its salt (the same for every node)."""

    chain_id: int
    ephemeral_pubkey: str
    target_pubkey: str
    signature: str  # the gateway's DelegateAuthorization, 0x-hex

    @property
    def body(self) -> dict[str, str]:
        return {"ephemeralPubKey": self.ephemeral_pubkey, "targetPubKey": self.target_pubkey}

    @property
    def authorization(self) -> str:
        """The value of the ``Authorization`` header."""
        return f"Bearer {self.signature}"

    def query(self, salt: bytes) -> dict[str, str]:
        return {"chain_id": str(self.chain_id), "salt": to_hex(salt)}

    def target(self, path: str, salt: bytes) -> str:
        """``path?chain_id=…&salt=…`` (both values are URL-safe as they are)."""
        return f"{path}?chain_id={self.chain_id}&salt={to_hex(salt)}"


def sign_delegate_request(
    gateway: Wallet, chain_id: int, ephemeral_pubkey: str, target_pubkey: str
) -> str:
    """The gateway's ``DelegateAuthorization`` signature over these exact strings."""
    message = {"ephemeralPubKey": ephemeral_pubkey, "targetPubKey": target_pubkey}
    return to_hex(
        eip712.sign(
            gateway, eip712.delegate_domain(chain_id), eip712.DELEGATE_AUTHORIZATION, message
        )
    )


def delegate_request(
    gateway: Wallet, chain_id: int, ephemeral_pubkey: str, target_pubkey: str
) -> DelegateRequest:
    signature = sign_delegate_request(gateway, chain_id, ephemeral_pubkey, target_pubkey)
    return DelegateRequest(chain_id, ephemeral_pubkey, target_pubkey, signature)


def user_fields(
    handle: bytes,
    iv: bytes,
    ciphertext: bytes,
    authorization: str,
    purpose: str = "user",
    binding_signature: bytes | None = None,
) -> dict[str, str]:
    """What a ``user``-mode node checks besides the gateway's signature
    (docs/node-authorization.md): the handle, its record's binding inputs (never the
    ciphertext: its digest) and the user's ``Authorization`` value as sent (the runner's
    for purpose ``runner``); ``binding_signature``: a runner result's ResultBinding
    signature, what binds a handle from the chain to its record. A node in ``gateway``
    mode ignores them."""
    fields = {
        "purpose": purpose,
        "handle": to_hex(handle),
        "iv": to_hex(iv),
        "ciphertextDigest": to_hex(keccak256(ciphertext)),
    }
    if purpose != "public":
        fields["authorization"] = authorization
    if binding_signature is not None:
        fields["bindingSignature"] = to_hex(binding_signature)
    return fields


@dataclass(frozen=True)
class SealedPartial:
    """One node's checked v1 answer: index, epoch, the RSA-sealed envelope (not yet opened)."""

    index: int
    epoch: int
    encrypted_partial: bytes


def check_partial_answer(
    data: Any, *, index: int, signer: bytes, chain_id: int, salt: bytes
) -> SealedPartial:
    """One node's §3.2 answer, signed by ``signer`` under ``salt``.

    Raises :class:`DelegationAnswerError` saying what is wrong. The envelope
    itself is sealed to the requester: only it can open it and check its proof.
    """
    if not isinstance(data, dict):
        raise DelegationAnswerError("answer is not a JSON object")
    if data.get("index") != index:
        raise DelegationAnswerError(f"answered as index {data.get('index')!r}")
    epoch = data.get("epoch")
    sealed = data.get("encryptedPartial")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise DelegationAnswerError("epoch is not a non-negative integer")
    if not isinstance(sealed, str):
        raise DelegationAnswerError("encryptedPartial is not a string")
    try:
        proof = parse_hex(data.get("proof"), name="proof", length=65)
        sealed_bytes = parse_hex(sealed, name="encryptedPartial")
        # The straight-line digest the node signs with: the gateway checks t + spare of
        # these per read and the client t, so the generic struct walk showed in profiles.
        recovered = recover_address(
            partial_answer_digest(chain_id, salt, index, epoch, sealed), proof
        )
    except (EncodingError, SignatureError, eip712.Eip712Error) as exc:
        raise DelegationAnswerError(f"response proof: {exc}") from None
    if recovered != signer:
        raise DelegationAnswerError("response proof is not signed by the node's wallet")
    return SealedPartial(index, epoch, sealed_bytes)


@dataclass(frozen=True)
class SealedSharedSecret:
    """A v0 answer whose proof verified: the sealed ``x(S)`` as signed, and who signed it."""

    encrypted_shared_secret: str
    proof: bytes
    signer: bytes


def check_shared_secret_answer(data: Any, *, chain_id: int, salt: bytes) -> SealedSharedSecret:
    """A v0 answer's ``DelegateResponseProof`` under ``salt``; the caller compares the signer.

    Raises :class:`DelegationAnswerError` when the answer has no valid proof.
    """
    sealed = data.get("encryptedSharedSecret") if isinstance(data, dict) else None
    try:
        if not isinstance(sealed, str):
            raise EncodingError("encryptedSharedSecret is not a string")
        parse_hex(sealed, name="encryptedSharedSecret")
        proof = parse_hex(data.get("proof"), name="proof", length=65)
        signer = eip712.recover(
            eip712.delegate_domain(chain_id, salt),
            eip712.DELEGATE_RESPONSE_PROOF,
            {"encryptedSharedSecret": sealed},
            proof,
        )
    except (EncodingError, SignatureError, eip712.Eip712Error) as exc:
        raise DelegationAnswerError(f"response proof: {exc}") from None
    return SealedSharedSecret(sealed, proof, signer)
