"""The primitive floor of a decryption through the gateway, measured in the run (bench/e2e.py).

In CPU time of this process (the primitives are single-threaded).

client = t RSA-2048 opens + t DLEQ verifications + the Lagrange combination + HKDF +
AES-GCM; node = one partial's primitives (S_i and the DLEQ nonce commitments, the
secret ones in constant time, the RSA-OAEP seal, the ECDSA signature). Apart: the
SDK's first call's RSA-2048 key generation and the authorization's signature.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from coincurve import PrivateKey
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bench.common import measure
from tkms.crypto import curve, eip712, rsa, shamir
from tkms.crypto.wallet import Wallet

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def client_floor(t: int) -> Callable[[], object]:
    """One call: the client's primitives of one decryption with threshold ``t``."""
    key = rsa.generate_private_key()
    public = key.public_key()
    shares = shamir.deal_shares(curve.random_scalar(), t, t + 2)[:t]
    k = curve.base_mul(curve.random_scalar())
    points = [curve.mul(k, s.value) for s in shares]
    vks = [curve.base_mul(s.value) for s in shares]
    sealed = [public.encrypt(os.urandom(97), OAEP) for _ in shares]
    lam = list(shamir.lagrange_coefficients([s.index for s in shares]).values())
    c = curve.scalar_to_bytes(curve.random_scalar())
    iv, plaintext = os.urandom(12), os.urandom(32)
    aes_key = os.urandom(32)
    ciphertext = AESGCM(aes_key).encrypt(iv, plaintext, None)

    def client() -> object:
        for blob in sealed:
            key.decrypt(blob, OAEP)
        for vk, s_i in zip(vks, points, strict=True):  # z·G, c·Y_i, z·K, c·S_i
            curve.base_mul(int.from_bytes(c, "big"))
            vk.multiply(c)
            k.multiply(c)
            s_i.multiply(c)
        combined = curve.linear_combination(points, lam)
        hkdf = HKDF(hashes.SHA256(), 32, bytes(32), b"ECIES:AES_GCM:v1")
        hkdf.derive(curve.point_x(combined))
        return AESGCM(aes_key).decrypt(iv, ciphertext, None)

    return client


def floors(t: int) -> dict[str, float]:
    """Seconds per call of the primitives a decryption cannot avoid (see the docstring)."""
    client = client_floor(t)
    key = rsa.generate_private_key()
    public = key.public_key()
    k = curve.base_mul(curve.random_scalar())
    signer = PrivateKey()
    digest = os.urandom(32)
    x = curve.random_scalar()

    def node() -> object:
        # Both secret scalars meet the outside point K in constant time, as the node
        # must (curve.mul_secret_encoded); coincurve's variable-time ``multiply``, which
        # this floor used until 2026-12-02, costs about a third less and no node may use it.
        curve.mul_secret_encoded(k, x)  # S_i
        r = curve.random_scalar()
        curve.base_mul(r)  # A1 = r·G
        curve.mul_secret_encoded(k, r)  # A2 = r·K
        public.encrypt(os.urandom(97), OAEP)
        signer.sign_recoverable(digest, hasher=None)
        return None

    def keygen() -> object:
        return rsa.generate_private_key()

    wallet = Wallet.generate()
    domain = eip712.gateway_domain(421614, verifying_contract=os.urandom(20))
    message = {
        "userAddress": wallet.address,
        "encryptionPubKey": "0x" + "ab" * 294,
        "notBefore": 1,
        "expiresAt": 2,
    }

    def authorization() -> object:
        return eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)

    # CPU time, not the wall clock: these floors are set against CPU figures, and on a
    # loaded machine the wall clock read a partial's floor at 0.66-1.08 ms against
    # 0.21 ms quiet, which made every "× floor" look better than it was.
    cpu = time.process_time
    out = {
        "client": measure(client, clock=cpu).median_us / 1e6,
        "node": measure(node, clock=cpu).median_us / 1e6,
        "authorization": measure(authorization, clock=cpu).median_us / 1e6,
    }
    out["keygen"] = statistics.median(_timed(keygen) for _ in range(15))
    return out


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
