"""The runner's logic without I/O (docs/runner.md): fetch operands, publish results.

As :mod:`tkms.client.gateway_core`, each operation is a generator of HTTP
requests, driven by :class:`tkms.client.runner.Runner` (sync) or
:class:`~tkms.client.runner.AsyncRunner`. The runner signs its statements
in the unsalted ``Handle Gateway`` domain and checks every answer:

- the gateway's signature under the salt drawn for that very request;
- threshold mode (``/v1/compute/operands``): the keyset against the trusted
  ``Y``, each node's batch signature against its keyset signer (under our
  salt), every partial's DLEQ proof against ``Y_i``, then the combination
  (protocol.md §3.4) of the first ``t`` valid partials of each operand;
- single-node mode (``/v0/compute/operands``): the sealed ``x(S)`` opens and
  the record authenticates under it.

Results are encrypted here with ECIES to ``Y`` (the chain's
``kmsPublicKey()`` when the runner has a chain) and tagged
``keccak256(handle ‖ value as a 32-byte word)``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tkms.client.errors import InvalidInput, UntrustedResponse, untrusted
from tkms.client.gateway_core import Flow, GatewayCore, HttpRequest, _salt
from tkms.client.recombine import decrypt_record
from tkms.crypto import curve, ecies, eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import keccak256
from tkms.protocol.batch_delegation import check_batch_answer
from tkms.protocol.binding import ciphertext_digest
from tkms.protocol.handle import HandleError, parse_handle
from tkms.protocol.keyset import VerifiedKeyset
from tkms.protocol.result_binding import sign_result_binding
from tkms.protocol.solidity import PlainInput, PlainValue, decode_value, encode_value

_REPORT = re.compile(r"([0-9]+) created, ([0-9]+) unchanged, ([0-9]+) conflicted")


@dataclass(frozen=True)
class Operand:
    handle: str
    plaintext: bytes  # at the type's natural width
    value: PlainValue


@dataclass(frozen=True)
class PublishReport:
    created: int
    unchanged: int
    conflicted: int
    message: str


@dataclass(frozen=True)
class RunContext:
    """What the runner's statements name: the block and transaction it serves, and who called."""

    block_number: int
    transaction_hash: str = "0x" + "00" * 32
    caller: bytes = bytes(20)


def value_tag(handle: bytes, plaintext: bytes) -> bytes:
    if len(plaintext) > 32:
        raise InvalidInput("a result's value tag needs a value of at most 32 bytes")
    return keccak256(handle + plaintext.rjust(32, b"\0"))


class RunnerCore:
    """One runner wallet's requests; its RSA key lives as long as it does (as nox's).

    The key is the core's decryption material's, taken at first use: made in the
    background from the runner's creation, or read from its material file.
    """

    def __init__(self, core: GatewayCore, *, sign_results: bool = True) -> None:
        self.core = core
        # Each result's ResultBinding (docs/binding.md): what lets a viewer with
        # require_binding and every user-mode node accept the record under its handle.
        self.sign_results = sign_results

    @cached_property
    def _rsa(self) -> tuple[rsa.RSAPrivateKey, str]:
        material, _ = self.core.material()
        return material.rsa_key, material.encryption_pubkey

    @property
    def rsa_key(self) -> rsa.RSAPrivateKey:
        return self._rsa[0]

    @property
    def rsa_public(self) -> str:
        return self._rsa[1]

    def _header(self, statement: eip712.Statement, message: dict[str, Any]) -> str:
        domain = eip712.gateway_domain(self.core.trust.chain_id)
        signature = eip712.sign(self.core.wallet, domain, statement, message)
        wire = {**message, "caller": to_hex(message["caller"])}
        token = json.dumps({"payload": wire, "signature": to_hex(signature)})
        return "EIP712 " + base64.b64encode(token.encode()).decode()

    def _statement(self, run: RunContext) -> dict[str, Any]:
        return {
            "chainId": self.core.trust.chain_id,
            "blockNumber": run.block_number,
            "caller": run.caller,
            "transactionHash": run.transaction_hash,
        }

    def operands_flow(self, handles: Sequence[str], run: RunContext) -> Flow[list[Operand]]:
        parsed = []
        for h in handles:
            try:
                parsed.append(parse_handle(h, chain_id=self.core.trust.chain_id))
            except HandleError as exc:
                raise InvalidInput(f"operand: {exc}") from None
        wire = [to_hex(h.to_bytes()) for h in parsed]
        keyset = yield from self.core.keyset_flow()
        message = {**self._statement(run), "operands": wire, "rsaPublicKey": self.rsa_public}
        header = self._header(eip712.OPERAND_ACCESS_AUTHORIZATION, message)
        salt, params = _salt()
        path = "/v0/compute/operands" if keyset is None else "/v1/compute/operands"
        response = yield HttpRequest("GET", path, params, {"Authorization": header})
        if keyset is None:
            payload = self.core.payload(response, eip712.COMPUTE_OPERANDS, salt)
            plaintexts = self._open_v0(payload, wire)
        else:
            payload = self.core.payload(response, eip712.COMPUTE_THRESHOLD_OPERANDS, salt)
            plaintexts = self._open_v1(payload, wire, keyset, salt)
        return [
            Operand(h, p, _decoded(p, handle))
            for h, p, handle in zip(wire, plaintexts, parsed, strict=True)
        ]

    def _open_v0(self, payload: dict[str, Any], handles: list[str]) -> list[bytes]:
        items = payload.get("operands")
        if not isinstance(items, list) or [m.get("handle") for m in items] != handles:
            raise UntrustedResponse("the operands answered are not the operands asked for")
        out = []
        for m in items:
            try:
                shared_x = rsa.decrypt(self.rsa_key, parse_hex(m["encryptedSharedSecret"]))
                out.append(
                    ecies.decrypt_with_shared_x(
                        shared_x, parse_hex(m["iv"], length=12), parse_hex(m["ciphertext"])
                    )
                )
            except (EncodingError, rsa.RsaDecryptError, ecies.EciesError, KeyError):
                raise UntrustedResponse("an operand does not open with our key") from None
        return out

    def _open_v1(
        self, payload: dict[str, Any], handles: list[str], keyset: VerifiedKeyset, salt: bytes
    ) -> list[bytes]:
        items, batches = payload.get("operands"), payload.get("batches")
        if not isinstance(items, list) or [m.get("handle") for m in items] != handles:
            raise UntrustedResponse("the operands answered are not the operands asked for")
        if payload.get("epoch") != keyset.epoch or not isinstance(batches, list):
            raise UntrustedResponse("the answer is not of the trusted keyset's epoch")
        failures: dict[int, str] = {}
        checked = []
        for batch in batches:
            index = batch.get("index") if isinstance(batch, dict) else None
            node = keyset.node(index) if isinstance(index, int) else None
            if node is None or not isinstance(index, int):
                raise UntrustedResponse(f"a batch of node {index!r}, not in the keyset")
            try:
                with untrusted():
                    checked.append(
                        check_batch_answer(
                            {**batch, "epoch": keyset.epoch},
                            index=index,
                            signer=node.signer,
                            chain_id=self.core.trust.chain_id,
                            salt=salt,
                            count=len(handles),
                        )
                    )
            except UntrustedResponse as exc:
                failures[index] = str(exc)
        out = []
        for j, m in enumerate(items):
            try:
                record = ecies.EciesRecord(
                    parse_hex(m["ephemeralPubKey"], length=33),
                    parse_hex(m["iv"], length=12),
                    parse_hex(m["ciphertext"]),
                )
                answers = [b.partials[j] for b in checked]
                out.append(decrypt_record(keyset, self.rsa_key, record, answers, failures))
            except (EncodingError, KeyError, curve.CurveError, ecies.EciesError):
                raise UntrustedResponse(f"operand {m.get('handle')} does not open") from None
        return out

    def publish_flow(
        self,
        results: Sequence[tuple[str, PlainInput]],
        kms_public_key: bytes,
        run: RunContext,
    ) -> Flow[PublishReport]:
        y = curve.parse_point(kms_public_key)
        body = []
        for handle_text, value in results:
            try:
                handle = parse_handle(handle_text, chain_id=self.core.trust.chain_id)
            except HandleError as exc:
                raise InvalidInput(f"result: {exc}") from None
            plaintext = encode_value(value, handle.solidity_type)
            record = ecies.encrypt(y, plaintext)
            raw = handle.to_bytes()
            item = {
                "handle": to_hex(raw),
                "handleValueTag": to_hex(value_tag(raw, plaintext)),
                "ciphertext": to_hex(record.ciphertext),
                "publicKey": to_hex(record.ephemeral_pubkey),
                "nonce": to_hex(record.iv),
            }
            if self.sign_results:
                signature = sign_result_binding(
                    self.core.wallet,
                    raw,
                    record.ephemeral_pubkey,
                    record.iv,
                    ciphertext_digest(record.ciphertext),
                )
                item["bindingSignature"] = to_hex(signature)
            body.append(item)
        header = self._header(eip712.RESULT_PUBLISHING_AUTHORIZATION, self._statement(run))
        salt, params = _salt()
        response = yield HttpRequest(
            "POST", "/v0/compute/results", params, {"Authorization": header}, body
        )
        payload = self.core.payload(response, eip712.RESULT_PUBLISHING_REPORT, salt)
        message = str(payload.get("message"))
        match = _REPORT.fullmatch(message)
        if match is None:
            raise UntrustedResponse(f"the report is not in nox's words: {message[:80]!r}")
        created, unchanged, conflicted = (int(g) for g in match.groups())
        return PublishReport(created, unchanged, conflicted, message)


def _decoded(plaintext: bytes, handle: Any) -> PlainValue:
    try:
        return decode_value(plaintext, handle.solidity_type)
    except ValueError:
        raise UntrustedResponse("an operand is not a value of its handle's type") from None
