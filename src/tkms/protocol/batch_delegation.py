"""The batch partial delegation (docs/batch-delegation.md): both ends' view of the wire.

``POST /v1/delegate/batch?chain_id=&salt=`` asks a node for its partials of
many ephemeral keys ``K_j`` at once, all sealed to one target RSA key: one
gateway signature (``BatchDelegateAuthorization`` over the exact strings, in
``ProtocolDelegate``/``1``/chainId with no salt, so one signature serves every
node) and one answer signed once (``PartialBatchDelegateResponseProof`` under
the request's salt). Each ``encryptedPartial`` is exactly protocol.md §3.2's
``RSA-OAEP(enc(S_i) ‖ c ‖ z)`` for its key, in request order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tkms.crypto import eip712
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet, keccak256
from tkms.protocol.delegation import DelegationAnswerError, SealedPartial

BATCH_PATH = "/v1/delegate/batch"


@dataclass(frozen=True)
class BatchRequest:
    chain_id: int
    ephemeral_pubkeys: tuple[str, ...]
    target_pubkey: str
    signature: str  # the gateway's BatchDelegateAuthorization, 0x-hex
    # What a user-mode node checks besides the signature (runner_fields); not signed.
    context: Mapping[str, Any] | None = None

    @property
    def body(self) -> dict[str, Any]:
        return {
            **(self.context or {}),
            "ephemeralPubKeys": list(self.ephemeral_pubkeys),
            "targetPubKey": self.target_pubkey,
        }

    @property
    def authorization(self) -> str:
        return f"Bearer {self.signature}"

    def target(self, salt: bytes) -> str:
        return f"{BATCH_PATH}?chain_id={self.chain_id}&salt={to_hex(salt)}"


def batch_message(ephemeral_pubkeys: Sequence[str], target_pubkey: str) -> dict[str, Any]:
    return {"ephemeralPubKeys": list(ephemeral_pubkeys), "targetPubKey": target_pubkey}


def batch_request(
    gateway: Wallet,
    chain_id: int,
    ephemeral_pubkeys: Sequence[str],
    target_pubkey: str,
    context: Mapping[str, Any] | None = None,
) -> BatchRequest:
    signature = eip712.sign(
        gateway,
        eip712.delegate_domain(chain_id),
        eip712.BATCH_DELEGATE_AUTHORIZATION,
        batch_message(ephemeral_pubkeys, target_pubkey),
    )
    return BatchRequest(
        chain_id, tuple(ephemeral_pubkeys), target_pubkey, to_hex(signature), context
    )


@dataclass(frozen=True)
class OperandRecord:
    """What a user-mode node needs of one operand's record: its binding inputs."""

    handle: bytes
    iv: bytes
    ciphertext: bytes
    binding_signature: bytes | None = None  # a runner result's ResultBinding


def runner_fields(authorization: str, records: Sequence[OperandRecord]) -> dict[str, Any]:
    """The user-mode fields of a batch (docs/batch-delegation.md "User mode"): the runner's
    statement as it sent it, and per key the binding inputs (never a ciphertext: its digest).
    A node in gateway mode ignores them."""
    operands = []
    for r in records:
        item = {
            "handle": to_hex(r.handle),
            "iv": to_hex(r.iv),
            "ciphertextDigest": to_hex(keccak256(r.ciphertext)),
        }
        if r.binding_signature is not None:
            item["bindingSignature"] = to_hex(r.binding_signature)
        operands.append(item)
    return {"purpose": "runner", "authorization": authorization, "operands": operands}


@dataclass(frozen=True)
class SealedBatch:
    """One node's checked batch answer: the strings as signed, and each as a SealedPartial."""

    index: int
    epoch: int
    encrypted_partials: tuple[str, ...]
    proof: str
    partials: tuple[SealedPartial, ...]


def check_batch_answer(
    data: Any, *, index: int, signer: bytes, chain_id: int, salt: bytes, count: int
) -> SealedBatch:
    """A node's batch answer: ``count`` partials, signed by ``signer`` under ``salt``.

    Raises :class:`DelegationAnswerError`. The envelopes are sealed to the
    requester: only it can open them and check their DLEQ proofs.
    """
    if not isinstance(data, dict):
        raise DelegationAnswerError("answer is not a JSON object")
    if data.get("index") != index:
        raise DelegationAnswerError(f"answered as index {data.get('index')!r}")
    epoch = data.get("epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise DelegationAnswerError("epoch is not a non-negative integer")
    sealed = data.get("encryptedPartials")
    if not isinstance(sealed, list) or not all(isinstance(s, str) for s in sealed):
        raise DelegationAnswerError("encryptedPartials is not a list of strings")
    if len(sealed) != count:
        raise DelegationAnswerError(f"{len(sealed)} partials for {count} keys")
    try:
        proof = parse_hex(data.get("proof"), name="proof", length=65)
        raw = [parse_hex(s, name="encryptedPartial") for s in sealed]
        recovered = eip712.recover(
            eip712.delegate_domain(chain_id, salt),
            eip712.PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF,
            {"index": index, "epoch": epoch, "encryptedPartials": sealed},
            proof,
        )
    except (EncodingError, SignatureError, eip712.Eip712Error) as exc:
        raise DelegationAnswerError(f"response proof: {exc}") from None
    if recovered != signer:
        raise DelegationAnswerError("response proof is not signed by the node's wallet")
    partials = tuple(SealedPartial(index, epoch, r) for r in raw)
    return SealedBatch(index, epoch, tuple(sealed), to_hex(proof), partials)
