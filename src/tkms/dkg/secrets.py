"""A node's secret side of a ceremony: identity keys, its polynomial, the shares it got.

Nothing here is ever serialised to the wire or shown by repr; the public
packages in :mod:`tkms.dkg.messages` are built from it by the ceremony.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tkms.crypto import curve, ecies
from tkms.crypto.shamir import Polynomial, Share, lagrange_coefficients
from tkms.crypto.wallet import Wallet
from tkms.dkg.committee import CommitteeMember


class NodeIdentity:
    """The node wallet (signs every message) and the key its shares are encrypted to.

    Two keys rather than one: a signature key that also decrypts would let a
    decryption oracle bug leak the signer.
    """

    __slots__ = ("_encryption_key", "encryption_public_key", "wallet")

    def __init__(self, wallet: Wallet, encryption_key: int) -> None:
        if not 1 <= encryption_key < curve.ORDER:
            raise ValueError("encryption key out of range")
        self.wallet = wallet
        self._encryption_key = encryption_key
        self.encryption_public_key = curve.base_mul(encryption_key)

    @classmethod
    def generate(cls) -> NodeIdentity:
        return cls(Wallet.generate(), curve.random_scalar())

    @property
    def address(self) -> bytes:
        return self.wallet.address

    def member(self, index: int) -> CommitteeMember:
        return CommitteeMember(index, self.wallet.address, self.encryption_public_key)

    def decrypt(self, record: ecies.EciesRecord, *, info: bytes) -> bytes:
        """Raises :class:`ecies.EciesError` or :class:`curve.CurveError` on a bad record."""
        return ecies.decrypt(self._encryption_key, record, info=info)

    def encryption_key_bytes(self) -> bytes:
        """For writing a key file; never for logs."""
        return curve.scalar_to_bytes(self._encryption_key)

    def __repr__(self) -> str:
        return f"NodeIdentity(address=0x{self.wallet.address.hex()}, keys=<hidden>)"


class SecretState:
    """The dealer polynomial of this node and the share each dealer gave it."""

    __slots__ = ("_received", "index", "polynomial")

    def __init__(self, index: int, polynomial: Polynomial) -> None:
        self.index = index
        self.polynomial = polynomial
        # A dealer's share to itself never travels.
        self._received: dict[int, int] = {index: polynomial.evaluate(index)}

    def share_for(self, recipient: int) -> int:
        return self.polynomial.evaluate(recipient)

    def accept(self, dealer: int, value: int) -> None:
        self._received[dealer] = value

    def forget(self, dealer: int) -> None:
        self._received.pop(dealer, None)

    def received_from(self, dealer: int) -> int | None:
        return self._received.get(dealer)

    def has(self, dealer: int) -> bool:
        return dealer in self._received

    def sum_from(self, dealers: Iterable[int]) -> int:
        return sum(self._received[d] for d in dealers) % curve.ORDER

    def final_share(self, qualified: Iterable[int]) -> Share:
        """``x_i = Σ_{j∈QUAL} s_ji``."""
        return Share(self.index, self.sum_from(qualified))

    def __repr__(self) -> str:
        return f"SecretState(index={self.index}, dealers={sorted(self._received)}, values=<hidden>)"


class ReshareSecrets:
    """A reshare's secret side: the dealer's old share and polynomial, the sub-shares got.

    Sub-shares are keyed by the old index of their dealer; the new share is
    their Lagrange combination over the canonical subset.
    """

    __slots__ = ("_old_share", "_received", "polynomial")

    def __init__(self, old_share: int | None) -> None:
        self._old_share = old_share
        self.polynomial: Polynomial | None = None
        self._received: dict[int, int] = {}

    def deal(self, threshold: int) -> Polynomial:
        """``g(0) = x_j``; afterwards the share lives only as the polynomial's constant."""
        assert self._old_share is not None  # only a dealer deals
        self.polynomial = Polynomial.random(threshold, self._old_share)
        self._old_share = None
        return self.polynomial

    def share_for(self, recipient: int) -> int:
        assert self.polynomial is not None
        return self.polynomial.evaluate(recipient)

    def accept(self, dealer: int, value: int) -> None:
        self._received[dealer] = value

    def forget(self, dealer: int) -> None:
        self._received.pop(dealer, None)

    def received_from(self, dealer: int) -> int | None:
        return self._received.get(dealer)

    def sum_from(self, dealers: Iterable[int]) -> int:
        return sum(self._received[d] for d in dealers) % curve.ORDER

    def combine(self, subset: Sequence[int]) -> int:
        """``x'_i = Σ_{j∈S} λ_j(0)·s_ji`` (λ over the old indexes of ``S``)."""
        lam = lagrange_coefficients(subset)
        return sum(lam[j] * self._received[j] for j in subset) % curve.ORDER

    def __repr__(self) -> str:
        return f"ReshareSecrets(dealers={sorted(self._received)}, values=<hidden>)"
