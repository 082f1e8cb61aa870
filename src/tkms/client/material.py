"""The client's decryption material: its RSA-OAEP key and its signed ``DataAccessAuthorization``.

RSA-2048 key generation (30-60 ms) is most of a new client's first decryption
(issue 13). Two things take it off the first call:

- the key is made on a background thread as soon as the client exists
  (:class:`KeyMaker`; OpenSSL releases the GIL while it searches for primes),
  then its authorization is signed (and written to the file, below) on the same
  thread, so that a client created a little before its first call finds both
  ready; a step that fails there is done again by the first call, which raises
  what it raises without the background;
- a client may keep its material in a file (``material_file=``) and reuse it,
  across processes, until its authorization runs out: a runner or a CLI call
  then pays key generation once an hour, not at every start.

A file read back is checked as if a stranger had written it, since anyone who
can write it could plant a key of their own: it must be a regular file of mode
0600 owned by us, for the same wallet, chain and contract, its signature must
recover to our wallet over exactly the stored statement, and the key must be the
one the statement names. Anything else is ignored and replaced, never an error:
the file is a cache.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tkms.crypto import eip712, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import SignatureError, Wallet
from tkms.keyfiles import write_private

CLOCK_SKEW = 30  # seconds we back-date notBefore by, for a gateway whose clock lags ours
RENEW_MARGIN = 10  # as the Nox SDK: do not start a call with material about to expire
FILE_VERSION = 1
MAX_FILE_BYTES = 16_384  # an RSA-2048 PKCS#8 key and a token are ~2.5 KB


@dataclass(frozen=True, repr=False)
class DecryptionMaterial:
    rsa_key: rsa.RSAPrivateKey
    encryption_pubkey: str
    authorization: str  # the whole header value, "EIP712 <base64>"
    not_before: int
    expires_at: int

    def usable(self, now: int) -> bool:
        return self.not_before <= now < self.expires_at - RENEW_MARGIN

    def __repr__(self) -> str:
        return f"DecryptionMaterial(expires_at={self.expires_at})"


Prepare = Callable[[rsa.RSAPrivateKey], "DecryptionMaterial"]


class KeyMaker:
    """One RSA key, started on a background thread at once, taken by :meth:`take`.

    ``prepare`` (the client's: sign the authorization, keep it in the file) runs on
    the same thread once the key is made, unless :meth:`stop` came first; what it
    returns is handed out with the key. Its failure is not reported here: the
    taker finds no material and does the step itself, so that its error surfaces
    where it did before there was a background (the first call).
    """

    def __init__(self, bits: int, prepare: Prepare | None = None) -> None:
        self.bits = bits
        self._prepare = prepare
        self._key: rsa.RSAPrivateKey | None = None
        self._material: DecryptionMaterial | None = None
        self._done = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._waiting: list[Callable[[], object]] = []
        threading.Thread(target=self._make, name="tkms-rsa-keygen", daemon=True).start()

    def _make(self) -> None:
        try:
            key = self._key = rsa.generate_private_key(self.bits)
            if self._prepare is not None and not self._stopped.is_set():
                # Any failure: the taker prepares again, and raises what it raises.
                with contextlib.suppress(Exception):
                    self._material = self._prepare(key)
        finally:
            with self._lock:
                self._done.set()
                waiting, self._waiting = self._waiting, []
            for callback in waiting:
                with contextlib.suppress(Exception):  # a closed event loop's, say
                    callback()

    def when_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once the background work is done: at once if it is, else
        on the maker's thread (an event loop's ``call_soon_threadsafe``, say)."""
        with self._lock:
            if not self._done.is_set():
                self._waiting.append(callback)
                return
        callback()

    def stop(self) -> None:
        """No more background work after the key (which OpenSSL cannot be stopped in)."""
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the background work is done (within ``timeout`` seconds)."""
        return self._done.wait(timeout)

    def take(self) -> tuple[rsa.RSAPrivateKey, DecryptionMaterial | None]:
        """The background key and what ``prepare`` made of it (None: not made), waiting
        for them if need be; a fresh key and None on each later call."""
        self._done.wait()
        key, self._key = self._key, None
        material, self._material = self._material, None
        if key is None:
            return rsa.generate_private_key(self.bits), None
        return key, material


def sign_material(
    wallet: Wallet, domain: eip712.Domain, key: rsa.RSAPrivateKey, now: int, ttl: int
) -> DecryptionMaterial:
    """A ``DataAccessAuthorization`` for ``key``, valid for ``ttl`` seconds from about now."""
    encryption_pubkey = to_hex(rsa.public_key_der(key))
    not_before = now - CLOCK_SKEW
    expires_at = not_before + ttl
    message = {
        "userAddress": to_hex(wallet.address),
        "encryptionPubKey": encryption_pubkey,
        "notBefore": not_before,
        "expiresAt": expires_at,
    }
    signature = eip712.sign(wallet, domain, eip712.DATA_ACCESS_AUTHORIZATION, message)
    token = json.dumps({"payload": message, "signature": to_hex(signature)})
    authorization = "EIP712 " + base64.b64encode(token.encode()).decode()
    return DecryptionMaterial(key, encryption_pubkey, authorization, not_before, expires_at)


def save_material(path: Path, material: DecryptionMaterial) -> None:
    """Write ``material`` (its private key included) as a 0600 file, atomically."""
    data = {
        "version": FILE_VERSION,
        "privateKey": to_hex(rsa.private_key_der(material.rsa_key)),
        "authorization": material.authorization,
    }
    write_private(path, json.dumps(data).encode())


def load_material(
    path: Path, wallet: Wallet, domain: eip712.Domain, now: int
) -> DecryptionMaterial | None:
    """The material kept in ``path`` if it is ours and usable at ``now``, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        private = stat.S_IMODE(info.st_mode) & 0o077 == 0
        if not stat.S_ISREG(info.st_mode) or not private or info.st_uid != os.getuid():
            return None
        raw = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        return None
    try:
        return _checked(json.loads(raw), wallet, domain, now)
    except (ValueError, TypeError, KeyError, EncodingError, SignatureError, eip712.Eip712Error):
        return None


def _checked(
    data: Any, wallet: Wallet, domain: eip712.Domain, now: int
) -> DecryptionMaterial | None:
    if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
        return None
    header = data["authorization"]
    if not isinstance(header, str) or not header.startswith("EIP712 "):
        return None
    token = json.loads(base64.b64decode(header[len("EIP712 ") :], validate=True))
    payload, signature = token["payload"], token["signature"]
    if not isinstance(payload, dict) or set(payload) != {
        "userAddress",
        "encryptionPubKey",
        "notBefore",
        "expiresAt",
    }:
        return None
    not_before, expires_at = payload["notBefore"], payload["expiresAt"]
    if not (isinstance(not_before, int) and isinstance(expires_at, int)):
        return None
    signer = eip712.recover(
        domain,
        eip712.DATA_ACCESS_AUTHORIZATION,
        payload,
        parse_hex(signature, name="signature", length=65),
    )
    if signer != wallet.address or parse_hex(payload["userAddress"]) != wallet.address:
        return None  # another wallet's file, or another chain's or contract's domain
    key = rsa.load_private_key(parse_hex(data["privateKey"], name="privateKey"))
    encryption_pubkey = to_hex(rsa.public_key_der(key))
    if encryption_pubkey != payload["encryptionPubKey"]:
        return None  # a key that is not the one the statement names
    material = DecryptionMaterial(key, encryption_pubkey, header, not_before, expires_at)
    return material if material.usable(now) else None
