"""Checking what the gateway signed, and opening it (the SDK's crypto, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tkms.client.errors import NotEnoughPartials, UntrustedResponse
from tkms.client.recombine import open_partial
from tkms.client.trust import GatewayTrust
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.shamir import combine_points
from tkms.crypto.wallet import SignatureError
from tkms.protocol.binding import ciphertext_digest, is_bound
from tkms.protocol.delegation import DelegationAnswerError, check_partial_answer
from tkms.protocol.handle import Handle, HandleError, SolidityType, parse_handle
from tkms.protocol.keyset import VerifiedKeyset
from tkms.protocol.result_binding import parse_binding_signature, result_binding_signer

MAX_PARTIALS = 255
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class Encrypted:
    """A new handle and its 137-byte proof (what a contract call takes); str() is the handle."""

    handle: str
    proof: str
    solidity_type: SolidityType

    def __str__(self) -> str:
        return self.handle


@dataclass(frozen=True)
class Acl:
    """Who may read a handle: its owner, explicit admins and viewers, or everyone."""

    handle: str
    owner: str
    admins: tuple[str, ...]
    viewers: tuple[str, ...]
    public: bool

    def can_read(self, address: str) -> bool:
        who = address.lower()
        return self.public or who == self.owner or who in self.admins or who in self.viewers


def _hex(payload: Mapping[str, Any], name: str, length: int | None = None) -> bytes:
    try:
        return parse_hex(payload.get(name), name=name, length=length)
    except EncodingError as exc:
        raise UntrustedResponse(f"gateway answer: {exc}") from None


def check_created(
    payload: Mapping[str, Any],
    trust: GatewayTrust,
    kind: SolidityType,
    owner: bytes,
    app: bytes,
) -> Encrypted:
    """A ``HandleWithProof`` payload for the value we sent: right type, chain and proof."""
    try:
        handle = parse_handle(payload.get("handle"), chain_id=trust.chain_id)
    except HandleError as exc:
        raise UntrustedResponse(f"gateway answer: handle: {exc}") from None
    if handle.solidity_type != kind or not handle.unique:
        raise UntrustedResponse("the new handle does not carry the type we sent")
    proof = _hex(payload, "proof", 137)
    created_at = int.from_bytes(proof[40:72], "big")
    if proof[:20] != owner or proof[20:40] != app:
        raise UntrustedResponse("the handle proof names another owner or application")
    try:
        signer = eip712.recover(
            eip712.nox_compute_domain(trust.chain_id, trust.verifying_contract),
            eip712.HANDLE_PROOF,
            {"handle": handle.to_bytes(), "owner": owner, "app": app, "createdAt": created_at},
            proof[72:],
        )
    except (SignatureError, eip712.Eip712Error):
        raise UntrustedResponse("the handle proof signature is invalid") from None
    if signer != trust.gateway_signer:
        raise UntrustedResponse("the handle proof is not signed by the trusted gateway")
    return Encrypted(handle.hex, to_hex(proof), kind)


def _record(
    payload: Mapping[str, Any], handle: Handle, trust: GatewayTrust, *, threshold: bool
) -> tuple[ecies.EciesRecord, curve.Point | None]:
    """The record of an answer, once it is known to be the record the handle names, and
    its ephemeral key parsed (None: a v0 record without one), which a threshold answer's
    DLEQ checks take: parsed once here, not again by the caller.

    The binding (docs/binding.md) is checked before anything is decrypted: a
    gateway that serves another record under a handle is caught here. v0
    material carries K as an extra field outside nox's signed statement (the
    binding vouches for it); without it the binding cannot be checked.
    """
    if not isinstance(payload.get("handle"), str) or payload["handle"].lower() != handle.hex:
        raise UntrustedResponse("the gateway answered for another handle")
    ephemeral, point = b"", None
    if not threshold and trust.require_binding and payload.get("ephemeralPubKey") is None:
        raise UntrustedResponse(
            "the answer carries no ephemeralPubKey, so the handle's binding cannot be checked"
            " (a Nox gateway's records are unbound: require_binding=False)"
        )
    if threshold or trust.require_binding or payload.get("ephemeralPubKey") is not None:
        ephemeral = _hex(payload, "ephemeralPubKey", 33)
        try:
            point = curve.parse_point(ephemeral)
        except curve.CurveError:
            raise UntrustedResponse("gateway answer: ephemeralPubKey is not a point") from None
    record = ecies.EciesRecord(ephemeral, _hex(payload, "iv", 12), _hex(payload, "ciphertext"))
    if trust.require_binding:
        _check_binding(payload, handle.to_bytes(), record, trust)
    return record, point


def _check_binding(
    payload: Mapping[str, Any], handle: bytes, record: ecies.EciesRecord, trust: GatewayTrust
) -> None:
    """The handle names this record: bound by tkms, or a result whose binding the trusted
    runner signed (``bindingSignature``, outside the gateway's statement: it needs none)."""
    digest = ciphertext_digest(record.ciphertext)
    if is_bound(handle, record.ephemeral_pubkey, record.iv, digest):
        return
    try:
        signature = parse_binding_signature(payload.get("bindingSignature"))
    except EncodingError as exc:
        raise UntrustedResponse(f"gateway answer: {exc}") from None
    if signature is None:
        raise UntrustedResponse("the record the gateway served does not belong to this handle")
    if trust.runner is None:
        raise UntrustedResponse(
            "the record is a runner's result and no runner address is trusted (runner_address=)"
        )
    signer = result_binding_signer(handle, record.ephemeral_pubkey, record.iv, digest, signature)
    if signer != trust.runner:
        raise UntrustedResponse(
            "the record the gateway served is not the one the runner bound to this handle"
        )


@dataclass
class ThresholdRound:
    """What one ``HandleThresholdMaterial`` answer brought: the record, good partials, failures."""

    record: ecies.EciesRecord
    good: dict[int, curve.Point] = field(default_factory=dict)
    failures: dict[int, str] = field(default_factory=dict)


def _signed_exclude(payload: Mapping[str, Any], exclude: Collection[int]) -> None:
    """The gateway signed in exactly the exclude set we asked for (docs/gateway.md)."""
    signed = payload.get("exclude")
    if not exclude and signed is None:
        return
    if signed != sorted(exclude) or any(isinstance(i, bool) for i in signed):
        raise UntrustedResponse("the gateway's answer does not carry the exclude list we sent")


def open_threshold_round(
    payload: Mapping[str, Any],
    handle: Handle,
    keyset: VerifiedKeyset,
    private_key: rsa.RSAPrivateKey,
    salt: bytes,
    trust: GatewayTrust,
    *,
    exclude: Collection[int] = (),
    have: Collection[int] = (),
) -> ThresholdRound:
    """Check each partial's node signature and DLEQ proof, up to ``t`` good ones in all.

    ``have`` are the nodes whose good partials an earlier answer brought: theirs
    are skipped here. A partial of an excluded node means the gateway did not
    do what it signed: the whole answer is untrusted.
    """
    _signed_exclude(payload, exclude)
    record, ephemeral = _record(payload, handle, trust, threshold=True)
    assert ephemeral is not None  # a threshold record has one, or _record refused it
    result = ThresholdRound(record)
    partials = payload.get("partials")
    epoch = payload.get("epoch")
    if not isinstance(partials, list) or len(partials) > MAX_PARTIALS:
        raise UntrustedResponse("gateway answer: partials must be a list")
    for item in partials:
        index = item.get("index") if isinstance(item, dict) else None
        node = keyset.node(index) if isinstance(index, int) else None
        if node is None or not isinstance(item, dict):
            raise UntrustedResponse("gateway answer: a partial names no node of the keyset")
        if node.index in exclude:
            raise UntrustedResponse(f"gateway answer: a partial of excluded node {node.index}")
        if node.index in have or node.index in result.good:
            continue
        if len(have) + len(result.good) >= keyset.threshold:
            break
        try:
            sealed = check_partial_answer(
                {**item, "epoch": epoch},
                index=node.index,
                signer=node.signer,
                chain_id=trust.chain_id,
                salt=salt,
            )
            result.good[node.index] = open_partial(keyset, private_key, ephemeral, sealed)
        except (DelegationAnswerError, UntrustedResponse) as exc:
            result.failures[node.index] = str(exc)
    return result


def decrypt_threshold(
    keyset: VerifiedKeyset, record: ecies.EciesRecord, good: Mapping[int, curve.Point]
) -> bytes:
    """Combine ``t`` good partials (protocol.md §3.4) and open the record."""
    chosen = dict(sorted(good.items())[: keyset.threshold])
    if len(chosen) < keyset.threshold:
        raise NotEnoughPartials(keyset.threshold, len(chosen), {})
    shared_x = curve.point_x(combine_points(chosen))
    try:
        return ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)
    except ecies.EciesError:
        raise UntrustedResponse("the ciphertext does not open with the combined key") from None


def open_single(
    payload: Mapping[str, Any],
    handle: Handle,
    private_key: rsa.RSAPrivateKey,
    trust: GatewayTrust,
) -> bytes:
    """The v0 material: RSA-open ``x(S)``, then AES-GCM (nox-compat.md)."""
    record, _ = _record(payload, handle, trust, threshold=False)
    try:
        shared_x = rsa.decrypt(private_key, _hex(payload, "encryptedSharedSecret"))
        if len(shared_x) != 32:
            raise UntrustedResponse("the sealed shared secret is not 32 bytes")
        return ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)
    except rsa.RsaDecryptError:
        raise UntrustedResponse("the shared secret does not open with our RSA key") from None
    except ecies.EciesError:
        raise UntrustedResponse("the ciphertext does not open with the shared secret") from None


def parse_acl(payload: Mapping[str, Any], handle: str) -> Acl:
    if payload.get("handle") != handle:
        raise UntrustedResponse("the gateway answered for another handle")
    entries = payload.get("entries")
    owner = payload.get("owner")
    if not isinstance(entries, list) or not isinstance(owner, str):
        raise UntrustedResponse("gateway answer: malformed ACL")
    roles: dict[str, list[str]] = {"admin": [], "viewer": [], "public": []}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("role") not in roles:
            raise UntrustedResponse("gateway answer: malformed ACL entry")
        roles[entry["role"]].append(str(entry.get("account")).lower())
    return Acl(
        handle, owner.lower(), tuple(roles["admin"]), tuple(roles["viewer"]), bool(roles["public"])
    )
