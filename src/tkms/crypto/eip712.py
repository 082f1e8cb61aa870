"""EIP-712 typed-data hashing, signing and recovery for every tkms statement.

The hot path hashes with precomputed type hashes and cached domain separators
and signs with libsecp256k1; :mod:`tkms.crypto.eip712_reference` computes the
same digest with eth-account, and the tests hold the two byte-identical on the vectors.
Messages take the JSON form of the wire: hex strings for ``bytes``,
``bytes32`` and ``address``, ints for ``uint256``, bools for ``bool``, lists
of dicts for arrays of structs and lists of values for arrays of atomic types
(``uint256[]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import Wallet, keccak256, recover_address

Fields = tuple[tuple[str, str], ...]


class Eip712Error(ValueError):
    """A message does not fit its statement's types."""


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    version: str
    chain_id: int
    verifying_contract: bytes | None = None
    salt: bytes | None = None


@dataclass(frozen=True)
class Statement:
    """A primary struct type and the struct types it references."""

    primary: str
    structs: Mapping[str, Fields]
    encode_type: str = field(init=False)
    type_hashes: Mapping[str, bytes] = field(init=False)
    # The structs whose fields are all ``string`` (the delegation statements):
    # hash_struct takes a shorter path for them.
    string_structs: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hashes = {name: keccak256(self._encode_type(name).encode()) for name in self.structs}
        object.__setattr__(self, "encode_type", self._encode_type(self.primary))
        object.__setattr__(self, "type_hashes", hashes)
        strings = {
            name: tuple(f for f, _ in fields)
            for name, fields in self.structs.items()
            if fields and all(typ == "string" for _, typ in fields)
        }
        object.__setattr__(self, "string_structs", strings)

    def _deps(self, name: str, found: set[str]) -> set[str]:
        for _, typ in self.structs[name]:
            base = typ.removesuffix("[]")
            if base in self.structs and base not in found:
                found.add(base)
                self._deps(base, found)
        return found

    def _encode_type(self, name: str) -> str:
        order = [name, *sorted(self._deps(name, set()) - {name})]
        return "".join(f"{n}({','.join(f'{t} {f}' for f, t in self.structs[n])})" for n in order)


def _statement(primary: str, *structs: tuple[str, Fields]) -> Statement:
    return Statement(primary, dict(structs))


DELEGATE_AUTHORIZATION = _statement(
    "DelegateAuthorization",
    ("DelegateAuthorization", (("ephemeralPubKey", "string"), ("targetPubKey", "string"))),
)
DELEGATE_RESPONSE_PROOF = _statement(
    "DelegateResponseProof", ("DelegateResponseProof", (("encryptedSharedSecret", "string"),))
)
PARTIAL_DELEGATE_RESPONSE_PROOF = _statement(
    "PartialDelegateResponseProof",
    (
        "PartialDelegateResponseProof",
        (("index", "uint256"), ("epoch", "uint256"), ("encryptedPartial", "string")),
    ),
)
KEYSET = _statement(
    "Keyset",
    (
        "Keyset",
        (
            ("epoch", "uint256"),
            ("threshold", "uint256"),
            ("publicKey", "bytes"),
            ("nodes", "KeysetNode[]"),
        ),
    ),
    (
        "KeysetNode",
        (("index", "uint256"), ("signer", "address"), ("verificationKey", "bytes")),
    ),
)
DATA_ACCESS_AUTHORIZATION = _statement(
    "DataAccessAuthorization",
    (
        "DataAccessAuthorization",
        (
            ("userAddress", "address"),
            ("encryptionPubKey", "string"),
            ("notBefore", "uint256"),
            ("expiresAt", "uint256"),
        ),
    ),
)
HANDLE_CRYPTO_MATERIAL = _statement(
    "HandleCryptoMaterial",
    (
        "HandleCryptoMaterial",
        (
            ("handle", "string"),
            ("ciphertext", "string"),
            ("encryptedSharedSecret", "string"),
            ("iv", "string"),
        ),
    ),
)
HANDLE_THRESHOLD_MATERIAL = _statement(
    "HandleThresholdMaterial",
    (
        "HandleThresholdMaterial",
        (
            ("handle", "string"),
            ("ciphertext", "string"),
            ("iv", "string"),
            ("ephemeralPubKey", "string"),
            ("epoch", "uint256"),
            ("threshold", "uint256"),
            ("partials", "PartialShare[]"),
        ),
    ),
    (
        "PartialShare",
        (("index", "uint256"), ("encryptedPartial", "string"), ("proof", "string")),
    ),
)
HANDLE_THRESHOLD_MATERIAL_EXCLUDING = _statement(
    "HandleThresholdMaterialExcluding",
    (
        "HandleThresholdMaterialExcluding",
        (
            *HANDLE_THRESHOLD_MATERIAL.structs["HandleThresholdMaterial"],
            ("exclude", "uint256[]"),
        ),
    ),
    ("PartialShare", HANDLE_THRESHOLD_MATERIAL.structs["PartialShare"]),
)
"""The answer of ``GET /v1/secrets/{h}?exclude=…`` (docs/gateway.md): the nodes it left out."""
HANDLE_WITH_PROOF = _statement(
    "HandleWithProof", ("HandleWithProof", (("handle", "string"), ("proof", "string")))
)
HANDLE_PROOF = _statement(
    "HandleProof",
    (
        "HandleProof",
        (
            ("handle", "bytes32"),
            ("owner", "address"),
            ("app", "address"),
            ("createdAt", "uint256"),
        ),
    ),
)

# Operator statements of tkms itself (not in protocol.md: they never reach a Nox client).
# DkgStart names the whole ceremony (the chain is the domain's), so that an
# admin's wallet shows what it signs and no field can be swapped under it.
DKG_START = _statement(
    "DkgStart",
    (
        "DkgStart",
        (
            ("sessionId", "bytes32"),
            ("epoch", "uint256"),
            ("threshold", "uint256"),
            ("members", "DkgMember[]"),
            ("nonce", "bytes32"),
            ("expiresAt", "uint256"),
        ),
    ),
    ("DkgMember", (("index", "uint256"), ("signer", "address"), ("encryptionKey", "bytes"))),
)
DKG_STEP = _statement("DkgStep", ("DkgStep", (("sessionId", "bytes32"), ("round", "uint256"))))
# ReshareStart names the old keyset (its Keyset digest, epoch, key and threshold), the
# dealers and the whole new committee; its rounds reuse DkgStep with the reshare's session id.
RESHARE_START = _statement(
    "ReshareStart",
    (
        "ReshareStart",
        (
            ("sessionId", "bytes32"),
            ("publicKey", "bytes"),
            ("oldKeysetDigest", "bytes32"),
            ("oldEpoch", "uint256"),
            ("oldThreshold", "uint256"),
            ("dealers", "uint256[]"),
            ("newEpoch", "uint256"),
            ("newThreshold", "uint256"),
            ("newMembers", "DkgMember[]"),
            ("nonce", "bytes32"),
            ("expiresAt", "uint256"),
        ),
    ),
    ("DkgMember", (("index", "uint256"), ("signer", "address"), ("encryptionKey", "bytes"))),
)

# BindingRegistration: the admin's word that these handles name these records (records
# imported from a nox deployment, docs/binding.md); entriesDigest = keccak256 over
# handle ‖ record of every entry in order (protocol/binding_registration.py).
BINDING_REGISTRATION = _statement(
    "BindingRegistration",
    (
        "BindingRegistration",
        (
            ("entriesDigest", "bytes32"),
            ("count", "uint256"),
            ("nonce", "bytes32"),
            ("expiresAt", "uint256"),
        ),
    ),
)

# --- gateway ACL (tkms extensions of the Handle Gateway; nox keeps its ACL on-chain) ---

ACL_GRANT = _statement(
    "AclGrant",
    (
        "AclGrant",
        (
            ("handle", "bytes32"),
            ("role", "string"),
            ("account", "address"),
            ("grantedBy", "address"),
            ("notBefore", "uint256"),
            ("expiresAt", "uint256"),
        ),
    ),
)
"""Signed by the owner or an admin of ``handle``, domain ``Handle Gateway`` + verifyingContract."""
HANDLE_ACL = _statement(
    "HandleAcl",
    ("HandleAcl", (("handle", "string"), ("owner", "string"), ("entries", "AclEntry[]"))),
    ("AclEntry", (("role", "string"), ("account", "string"))),
)
"""The gateway's signed answer of ``GET /v1/acl/{handle}`` and ``POST /v1/acl/grant``."""
ACL_READ = _statement(
    "AclRead",
    (
        "AclRead",
        (
            ("handle", "bytes32"),
            ("reader", "address"),
            ("notBefore", "uint256"),
            ("expiresAt", "uint256"),
        ),
    ),
)
"""Signed by the owner or an admin to list a handle's ACL (``GET /v1/acl/{handle}``)."""

# --- the runner (nox-compat.md "The runner"; docs/runner.md) ---------------------------

OPERAND_ACCESS_AUTHORIZATION = _statement(
    "OperandAccessAuthorization",
    (
        "OperandAccessAuthorization",
        (
            ("chainId", "uint256"),
            ("blockNumber", "uint256"),
            ("caller", "address"),
            ("transactionHash", "string"),
            ("operands", "string[]"),
            ("rsaPublicKey", "string"),
        ),
    ),
)
"""The runner's ``GET /v0|v1/compute/operands``, domain ``Handle Gateway``/chainId (no salt)."""
RESULT_PUBLISHING_AUTHORIZATION = _statement(
    "ResultPublishingAuthorization",
    (
        "ResultPublishingAuthorization",
        (
            ("chainId", "uint256"),
            ("blockNumber", "uint256"),
            ("caller", "address"),
            ("transactionHash", "string"),
        ),
    ),
)
"""The runner's ``POST /v0/compute/results``, in the same domain."""
RESULT_BINDING = _statement(
    "ResultBinding", ("ResultBinding", (("handle", "bytes32"), ("record", "bytes32")))
)
"""The runner's signature binding a result handle (from the chain) to the record it
published: ``record`` is protocol/binding.py's ``record_digest`` (docs/binding.md), in the
runner's domain ``Handle Gateway``/``1``/chainId (no salt)."""
COMPUTE_OPERANDS = _statement(
    "ComputeOperands",
    ("ComputeOperands", (("operands", "HandleCryptoMaterial[]"),)),
    ("HandleCryptoMaterial", HANDLE_CRYPTO_MATERIAL.structs["HandleCryptoMaterial"]),
)
RESULT_PUBLISHING_REPORT = _statement(
    "ResultPublishingReport", ("ResultPublishingReport", (("message", "string"),))
)

# --- batch partial delegation (docs/batch-delegation.md, an extension of protocol.md §3) ---

BATCH_DELEGATE_AUTHORIZATION = _statement(
    "BatchDelegateAuthorization",
    (
        "BatchDelegateAuthorization",
        (("ephemeralPubKeys", "string[]"), ("targetPubKey", "string")),
    ),
)
"""The gateway's one signature over a whole batch, domain ``ProtocolDelegate`` (no salt)."""
PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF = _statement(
    "PartialBatchDelegateResponseProof",
    (
        "PartialBatchDelegateResponseProof",
        (("index", "uint256"), ("epoch", "uint256"), ("encryptedPartials", "string[]")),
    ),
)
"""A node's one signature over its whole batch answer, ``ProtocolDelegate`` + the salt."""
COMPUTE_THRESHOLD_OPERANDS = _statement(
    "ComputeThresholdOperands",
    (
        "ComputeThresholdOperands",
        (
            ("epoch", "uint256"),
            ("threshold", "uint256"),
            ("operands", "ThresholdOperand[]"),
            ("batches", "NodeBatch[]"),
        ),
    ),
    (
        "ThresholdOperand",
        (
            ("handle", "string"),
            ("ciphertext", "string"),
            ("iv", "string"),
            ("ephemeralPubKey", "string"),
        ),
    ),
    ("NodeBatch", (("index", "uint256"), ("encryptedPartials", "string[]"), ("proof", "string"))),
)
"""The gateway's answer of ``GET /v1/compute/operands`` (docs/runner.md)."""

# --- public decryption and readiness polling (nox-compat.md, Handle Gateway v0.6) ---

PUBLIC_DECRYPTION_RESULT = _statement(
    "PublicDecryptionResult", ("PublicDecryptionResult", (("decryptionProof", "string"),))
)
"""The gateway's signed answer of ``GET /v0/public/{handle}`` (``Handle Gateway`` domain)."""
DECRYPTION_PROOF = _statement(
    "DecryptionProof",
    ("DecryptionProof", (("handle", "bytes32"), ("decryptedResult", "bytes"))),
)
"""In the ``NoxCompute`` domain: what ``validateDecryptionProof`` checks on chain."""
HANDLE_STATUS_REPORT = _statement(
    "HandleStatusReport",
    ("HandleStatusReport", (("statuses", "HandleResolution[]"),)),
    ("HandleResolution", (("handle", "string"), ("resolved", "bool"))),
)
"""The gateway's signed answer of ``POST /v0/public/handles/status``."""

STATEMENTS: Mapping[str, Statement] = {
    s.primary: s
    for s in (
        DELEGATE_AUTHORIZATION,
        DELEGATE_RESPONSE_PROOF,
        PARTIAL_DELEGATE_RESPONSE_PROOF,
        KEYSET,
        DATA_ACCESS_AUTHORIZATION,
        HANDLE_CRYPTO_MATERIAL,
        HANDLE_THRESHOLD_MATERIAL,
        HANDLE_THRESHOLD_MATERIAL_EXCLUDING,
        HANDLE_WITH_PROOF,
        HANDLE_PROOF,
        DKG_START,
        DKG_STEP,
        RESHARE_START,
        BINDING_REGISTRATION,
        ACL_GRANT,
        HANDLE_ACL,
        ACL_READ,
        OPERAND_ACCESS_AUTHORIZATION,
        RESULT_PUBLISHING_AUTHORIZATION,
        COMPUTE_OPERANDS,
        RESULT_PUBLISHING_REPORT,
        BATCH_DELEGATE_AUTHORIZATION,
        PARTIAL_BATCH_DELEGATE_RESPONSE_PROOF,
        COMPUTE_THRESHOLD_OPERANDS,
        RESULT_BINDING,
        PUBLIC_DECRYPTION_RESULT,
        DECRYPTION_PROOF,
        HANDLE_STATUS_REPORT,
    )
}


# --- domains -----------------------------------------------------------------

_KECCAK_VERSION_1 = keccak256(b"1")


def delegate_domain(chain_id: int, salt: bytes | None = None) -> Domain:
    return Domain("ProtocolDelegate", "1", chain_id, salt=salt)


def keyset_domain(chain_id: int) -> Domain:
    return Domain("ProtocolKeyset", "1", chain_id)


def gateway_domain(
    chain_id: int, *, salt: bytes | None = None, verifying_contract: bytes | None = None
) -> Domain:
    return Domain("Handle Gateway", "1", chain_id, verifying_contract, salt)


def dkg_domain(chain_id: int) -> Domain:
    return Domain("tkms DKG", "1", chain_id)


def nox_compute_domain(chain_id: int, verifying_contract: bytes) -> Domain:
    return Domain("NoxCompute", "1", chain_id, verifying_contract)


@lru_cache(maxsize=64)
def _domain_type_hash(has_contract: bool, has_salt: bool) -> bytes:
    parts = ["string name", "string version", "uint256 chainId"]
    if has_contract:
        parts.append("address verifyingContract")
    if has_salt:
        parts.append("bytes32 salt")
    return keccak256(f"EIP712Domain({','.join(parts)})".encode())


@lru_cache(maxsize=256)
def _name_hash(name: str) -> bytes:
    return keccak256(name.encode())


@lru_cache(maxsize=4096)
def _static_domain_separator(domain: Domain) -> bytes:
    return _compute_domain_separator(domain)


def _compute_domain_separator(domain: Domain) -> bytes:
    has_contract = domain.verifying_contract is not None
    has_salt = domain.salt is not None
    parts = [
        _domain_type_hash(has_contract, has_salt),
        _name_hash(domain.name),
        _KECCAK_VERSION_1 if domain.version == "1" else keccak256(domain.version.encode()),
        _uint256(domain.chain_id),
    ]
    if domain.verifying_contract is not None:
        parts.append(_address(domain.verifying_contract))
    if domain.salt is not None:
        if len(domain.salt) != 32:
            raise Eip712Error("domain salt is 32 bytes")
        parts.append(domain.salt)
    return keccak256(b"".join(parts))


@lru_cache(maxsize=4096)
def _salted_domain_head(
    name: str, version: str, chain_id: int, verifying_contract: bytes | None
) -> bytes:
    """What a salted domain hashes before its salt: the same for every request of a chain."""
    parts = [
        _domain_type_hash(verifying_contract is not None, True),
        _name_hash(name),
        _KECCAK_VERSION_1 if version == "1" else keccak256(version.encode()),
        _uint256(chain_id),
    ]
    if verifying_contract is not None:
        parts.append(_address(verifying_contract))
    return b"".join(parts)


def domain_separator(domain: Domain) -> bytes:
    salt = domain.salt
    if salt is None:
        return _static_domain_separator(domain)
    # A salted domain is usually one request's: caching it would only churn, but
    # its head is the chain's. Exact types only: True must not hit chain 1's entry.
    contract = domain.verifying_contract
    if (
        type(salt) is bytes
        and type(domain.chain_id) is int
        and type(domain.name) is str
        and type(domain.version) is str
        and (contract is None or type(contract) is bytes)
    ):
        head = _salted_domain_head(domain.name, domain.version, domain.chain_id, contract)
        if len(salt) != 32:
            raise Eip712Error("domain salt is 32 bytes")
        return keccak256(head + salt)
    return _compute_domain_separator(domain)


# --- struct hashing ----------------------------------------------------------


def _uint256(value: object) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
        raise Eip712Error("uint256 value out of range")
    return value.to_bytes(32, "big")


def _address(value: bytes) -> bytes:
    if len(value) != 20:
        raise Eip712Error("an address is 20 bytes")
    return bytes(12) + value


def _utf8(value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800"
        raise Eip712Error("string field is not valid Unicode") from None


_ATOMIC = frozenset({"uint256", "address", "bytes32", "string", "bool"})


def _encode_field(statement: Statement, typ: str, value: Any) -> bytes:
    if typ == "string":
        if not isinstance(value, str):
            raise Eip712Error("string field must be a str")
        return keccak256(_utf8(value))
    if typ == "uint256":
        return _uint256(value)
    if typ == "bool":
        if not isinstance(value, bool):
            raise Eip712Error("bool field must be a bool")
        return _uint256(int(value))
    if typ == "address":
        return _address(value if isinstance(value, bytes) else parse_hex(value, name="address"))
    if typ == "bytes":
        return keccak256(value if isinstance(value, bytes) else parse_hex(value, name="bytes"))
    if typ == "bytes32":
        raw = value if isinstance(value, bytes) else parse_hex(value, name="bytes32", length=32)
        if len(raw) != 32:
            raise Eip712Error("bytes32 is 32 bytes")
        return raw
    if typ.endswith("[]"):
        if not isinstance(value, Sequence) or isinstance(value, str | bytes):
            raise Eip712Error("array field must be a list")
        inner = typ[:-2]
        if inner in statement.structs:
            return keccak256(b"".join(hash_struct(statement, item, inner) for item in value))
        if inner in _ATOMIC:  # an array of atomic values: keccak of their encodings
            return keccak256(b"".join(_encode_field(statement, inner, item) for item in value))
    raise Eip712Error(f"unsupported EIP-712 type {typ}")


def hash_struct(statement: Statement, message: Mapping[str, Any], name: str | None = None) -> bytes:
    name = name or statement.primary
    strings = statement.string_structs.get(name)
    if strings is not None:  # same checks, same order, fewer calls
        parts = [statement.type_hashes[name]]
        for f in strings:
            try:
                value = message[f]
            except KeyError as missing:
                raise Eip712Error(f"{name} misses field {missing}") from None
            if not isinstance(value, str):
                raise Eip712Error("string field must be a str")
            parts.append(keccak256(_utf8(value)))
        return keccak256(b"".join(parts))
    try:
        encoded = [_encode_field(statement, typ, message[f]) for f, typ in statement.structs[name]]
    except KeyError as missing:
        raise Eip712Error(f"{name} misses field {missing}") from None
    return keccak256(statement.type_hashes[name] + b"".join(encoded))


def digest(domain: Domain, statement: Statement, message: Mapping[str, Any]) -> bytes:
    """keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(message))."""
    return keccak256(b"\x19\x01" + domain_separator(domain) + hash_struct(statement, message))


def sign(wallet: Wallet, domain: Domain, statement: Statement, message: Mapping[str, Any]) -> bytes:
    return wallet.sign_digest(digest(domain, statement, message))


def recover(
    domain: Domain, statement: Statement, message: Mapping[str, Any], signature: bytes
) -> bytes:
    """The signer's 20-byte address; raises SignatureError or Eip712Error."""
    return recover_address(digest(domain, statement, message), signature)
