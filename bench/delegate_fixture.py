"""The fixed, validly signed v0 request the delegation benchmark sends (bench/delegate.py)."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coincurve import PublicKey

from tkms.crypto import curve, eip712, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet

CHAIN_ID = 421614  # Arbitrum Sepolia, where Nox runs; any configured u32 would do


# --- the fixed request ------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """Keys and one valid signed request, as the Nox gateway would send it."""

    gateway: Wallet
    node_key: bytes
    node: Wallet
    kms_secret: bytes
    rsa_private: rsa.RSAPrivateKey
    ephemeral_hex: str
    target_hex: str
    signature_hex: str

    @classmethod
    def create(cls) -> Fixture:
        gateway = Wallet.generate()
        node_key = curve.scalar_to_bytes(curve.random_scalar())
        kms_secret = curve.scalar_to_bytes(curve.random_scalar())
        private = rsa.generate_private_key(2048)
        ephemeral = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
        target = to_hex(rsa.public_key_der(private))
        message = {"ephemeralPubKey": ephemeral, "targetPubKey": target}
        signature = eip712.sign(
            gateway, eip712.delegate_domain(CHAIN_ID), eip712.DELEGATE_AUTHORIZATION, message
        )
        return cls(
            gateway, node_key, Wallet(node_key), kms_secret, private, ephemeral, target,
            to_hex(signature),
        )  # fmt: skip

    @property
    def body(self) -> bytes:
        return json.dumps({"ephemeralPubKey": self.ephemeral_hex, "targetPubKey": self.target_hex})\
            .encode()  # fmt: skip

    @property
    def authorization(self) -> str:
        return f"Bearer {self.signature_hex}"

    def path(self, salt_hex: str) -> str:
        return f"/v0/delegate?chain_id={CHAIN_ID}&salt={salt_hex}"

    def env(self, port: int) -> dict[str, str]:
        """The node's environment, nox-kms names only."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_KMS_", "TKMS_NODE_"))}
        return base | {
            "NOX_KMS_WALLET_KEY": self.node_key.hex(),
            f"NOX_KMS_CHAINS__{CHAIN_ID}__ECC_KEY": self.kms_secret.hex(),
            f"NOX_KMS_CHAINS__{CHAIN_ID}__GATEWAY_ADDRESS": to_hex(self.gateway.address),
            "NOX_KMS_SERVER__HOST": "127.0.0.1",
            "NOX_KMS_SERVER__PORT": str(port),
            "NOX_KMS_SERVER__ACCESS_LOG": "false",
        }

    def check_answer(self, salt: bytes, answer: dict[str, Any]) -> None:
        """The answer opens to x(s·K) and its proof is the node's signature."""
        signer = eip712.recover(
            eip712.delegate_domain(CHAIN_ID, salt),
            eip712.DELEGATE_RESPONSE_PROOF,
            {"encryptedSharedSecret": answer["encryptedSharedSecret"]},
            parse_hex(answer["proof"], length=65),
        )
        if signer != self.node.address:
            raise SystemExit("benchmark setup broken: the proof is not the node's signature")
        shared = rsa.decrypt(self.rsa_private, parse_hex(answer["encryptedSharedSecret"]))
        point = PublicKey(parse_hex(self.ephemeral_hex)).multiply(self.kms_secret)
        if shared != point.format(compressed=True)[1:]:
            raise SystemExit("benchmark setup broken: the sealed secret is not x(s·K)")


def salt_cycle(n: int = 1024) -> Callable[[], str]:
    """Random salts, drawn before timing so the loop does not time the CSPRNG."""
    return itertools.cycle([to_hex(secrets.token_bytes(32)) for _ in range(n)]).__next__
