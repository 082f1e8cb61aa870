"""The public outcome of a ceremony (protocol.md §3.1) and its EIP-712 signatures (§3.5).

What a ceremony or a reshare makes and signs; the check of a keyset a node
serves, shared by the SDK and the gateway, is :mod:`tkms.protocol.keyset`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tkms.crypto import curve, eip712
from tkms.crypto.encoding import ascii_decimal, to_hex
from tkms.crypto.shamir import (
    aggregate_commitments,
    evaluate_commitments_many,
    lagrange_coefficients,
    verify_verification_keys,
)
from tkms.crypto.wallet import SignatureError, Wallet, recover_address
from tkms.dkg import wire
from tkms.dkg.errors import DkgAbort, DkgMessageError


@dataclass(frozen=True, slots=True)
class KeysetNode:
    index: int
    signer: bytes
    verification_key: curve.Point


@dataclass(frozen=True)
class KeysetResult:
    """Epoch, threshold, group key ``Y`` and every node's ``(index, signer, Y_i)``."""

    epoch: int
    threshold: int
    public_key: curve.Point
    nodes: tuple[KeysetNode, ...]

    @cached_property
    def public_key_bytes(self) -> bytes:
        return curve.encode_point(self.public_key)

    def verification_keys(self) -> dict[int, curve.Point]:
        return {n.index: n.verification_key for n in self.nodes}

    def node(self, index: int) -> KeysetNode | None:
        for n in self.nodes:
            if n.index == index:
                return n
        return None

    def eip712_message(self) -> dict[str, Any]:
        """The ``Keyset`` struct in the JSON form of the vectors."""
        return {
            "epoch": self.epoch,
            "threshold": self.threshold,
            "publicKey": to_hex(self.public_key_bytes),
            "nodes": [
                {
                    "index": n.index,
                    "signer": to_hex(n.signer),
                    "verificationKey": to_hex(curve.encode_point(n.verification_key)),
                }
                for n in self.nodes
            ],
        }

    @cached_property
    def _digests(self) -> dict[int, bytes]:
        # A ceremony hashes the same keyset once per signature it checks.
        return {}

    def digest(self, chain_id: int) -> bytes:
        """The EIP-712 digest of the ``Keyset`` statement under ``keyset_domain(chain_id)``."""
        cached = self._digests.get(chain_id)
        if cached is None:
            domain = eip712.keyset_domain(chain_id)
            cached = eip712.digest(domain, eip712.KEYSET, self.eip712_message())
            self._digests[chain_id] = cached
        return cached

    def sign(self, wallet: Wallet, chain_id: int) -> bytes:
        return wallet.sign_digest(self.digest(chain_id))

    def is_consistent(self) -> bool:
        """The §3.1 check: every ``Y_i`` on one degree ``t−1`` polynomial through ``Y``."""
        return verify_verification_keys(self.public_key, self.threshold, self.verification_keys())

    def to_json(self, *, chain_id: int, signatures: Mapping[int, bytes]) -> dict[str, Any]:
        """The body of ``GET /v1/keyset`` (§3.1)."""
        message = self.eip712_message()
        return {
            "chainId": chain_id,
            "epoch": self.epoch,
            "threshold": self.threshold,
            "publicKey": message["publicKey"],
            "nodes": message["nodes"],
            "signatures": {str(i): to_hex(signatures[i]) for i in sorted(signatures)},
        }


def derive_keyset(
    epoch: int,
    threshold: int,
    commitments: Sequence[Sequence[curve.Point]],
    nodes: Sequence[tuple[int, bytes]],
) -> KeysetResult:
    """The keyset of the summed polynomials: ``Y = Σ_j C_j0`` and every ``Y_i``.

    Aggregates the qualified dealers' commitments once (``A_k = Σ_j C_jk``),
    then evaluates the aggregate at each node index: n evaluations instead of n·|QUAL|.
    """
    agg = aggregate_commitments(commitments)
    vks = evaluate_commitments_many(agg, [index for index, _ in nodes])
    public_key = agg[0]
    out = []
    for index, signer in nodes:
        vk = vks[index]
        if vk is None or public_key is None:
            # Needs dealers that cancel each other: never an honest outcome.
            raise DkgAbort("the qualified commitments evaluate to the point at infinity")
        out.append(KeysetNode(index, signer, vk))
    assert public_key is not None  # nodes is never empty
    return KeysetResult(epoch, threshold, public_key, tuple(out))


def derive_reshared_keyset(
    epoch: int,
    threshold: int,
    public_key: curve.Point,
    commitments: Mapping[int, Sequence[curve.Point]],
    nodes: Sequence[tuple[int, bytes]],
) -> KeysetResult:
    """The keyset of a reshare from the canonical subset ``S`` (the keys of ``commitments``).

    ``A_k = Σ_{j∈S} λ_j·C_jk`` (λ at 0 over the old indexes of ``S``; public
    scalars and points), ``Y'_i = A(i)``; ``A_0`` must be ``Y``.
    """
    subset = sorted(commitments)
    lam = lagrange_coefficients(subset)
    scalars = [lam[j] for j in subset]
    agg: list[curve.Point | None] = []
    for k in range(threshold):
        try:
            agg.append(curve.linear_combination([commitments[j][k] for j in subset], scalars))
        except curve.CurveError:
            agg.append(None)
    if agg[0] is None or not curve.points_equal(agg[0], public_key):
        # Each C_j0 = Y_j is checked on arrival: only an inconsistent old keyset gets here.
        raise DkgAbort("the dealers' constant terms do not interpolate to Y")
    vks = evaluate_commitments_many(agg, [index for index, _ in nodes])
    out = []
    for index, signer in nodes:
        vk = vks[index]
        if vk is None:
            raise DkgAbort("the new commitments evaluate to the point at infinity")
        out.append(KeysetNode(index, signer, vk))
    return KeysetResult(epoch, threshold, public_key, tuple(out))


@dataclass(frozen=True)
class SignedKeyset:
    chain_id: int
    keyset: KeysetResult
    signatures: Mapping[int, bytes]


def _node(data: object) -> KeysetNode:
    obj = wire.expect_object(data, {"index", "signer", "verificationKey"}, "keyset node")
    return KeysetNode(
        wire.get_index(obj, "index"),
        wire.get_hex(obj, "signer", 20),
        wire.get_point(obj, "verificationKey"),
    )


def parse_keyset(data: object) -> SignedKeyset:
    """A §3.1 keyset body; raises :class:`DkgMessageError` on any malformed part.

    This checks the shape only: callers then run :func:`check_keyset_signatures`
    and :meth:`KeysetResult.is_consistent` against the ``Y`` they trust.
    """
    keys = {"chainId", "epoch", "threshold", "publicKey", "nodes", "signatures"}
    obj = wire.expect_object(data, keys, "keyset")
    nodes = wire.get_list(obj, "nodes", _node)
    if not nodes:
        raise DkgMessageError("a keyset lists at least one node")
    wire.check_ascending([n.index for n in nodes], "node indices")
    threshold = wire.get_index(obj, "threshold")
    if threshold > len(nodes):
        raise DkgMessageError("threshold exceeds the number of nodes")
    raw_sigs = obj["signatures"]
    if not isinstance(raw_sigs, Mapping) or len(raw_sigs) > len(nodes):
        raise DkgMessageError("signatures must map node indices to signatures")
    signatures: dict[int, bytes] = {}
    for key, value in raw_sigs.items():
        index = ascii_decimal(key, max_digits=3)
        if index is None or str(index) != key:
            raise DkgMessageError("signature keys are decimal node indices")
        signatures[wire.index_item(index)] = wire.get_hex({"signature": value}, "signature", 65)
    keyset = KeysetResult(
        epoch=wire.get_int(obj, "epoch", low=0, high=2**256 - 1),
        threshold=threshold,
        public_key=wire.get_point(obj, "publicKey"),
        nodes=nodes,
    )
    chain_id = wire.get_int(obj, "chainId", low=1, high=2**256 - 1)
    return SignedKeyset(chain_id, keyset, signatures)


def check_keyset_signatures(
    keyset: KeysetResult,
    *,
    chain_id: int,
    signatures: Mapping[int, bytes],
    required: Collection[int],
) -> tuple[int, ...]:
    """The ``required`` node indices whose signature of ``keyset`` is missing or wrong.

    Empty means every required node signed this very keyset with the signer
    address the keyset lists for it; the ceremony succeeds only then.
    """
    digest = keyset.digest(chain_id)
    signers = {n.index: n.signer for n in keyset.nodes}
    failed = []
    for index in sorted(required):
        signature = signatures.get(index)
        if signature is None or index not in signers:
            failed.append(index)
            continue
        try:
            if recover_address(digest, signature) != signers[index]:
                failed.append(index)
        except SignatureError:
            failed.append(index)
    return tuple(failed)
