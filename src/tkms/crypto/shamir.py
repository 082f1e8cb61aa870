"""Shamir sharing over Z_n and its image in the exponent (Feldman commitments).

A share of node ``i`` is ``f(i)`` for a secret polynomial ``f`` of degree
``t-1``; its public image ``f(i)·G`` is the evaluation of the commitments
``C_k = a_k·G`` at ``i``. Node indices are small positive integers, so the
evaluation in the exponent runs Horner's rule, where every step multiplies by
the small ``i`` (a fraction of the cost of a full-size scalar) or, for the
smallest indices, sums ``i`` copies in one libsecp256k1 call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from coincurve import PublicKey

from tkms.crypto import curve
from tkms.crypto.curve import ORDER, Point

# libsecp256k1's point multiplication is variable-time: its cost follows the
# scalar's length, so multiplying by a small index is cheap (~10 µs), but below
# this index one call summing i copies is cheaper still. Only public points
# (commitments) go through here.
_SMALL_INDEX_LIMIT = 24
MAX_INDEX = 0xFFFF
"""Indices travel as uint16 in the DKG transcript; they also keep Horner cheap."""


class ShamirError(ValueError):
    """Inconsistent sharing parameters or index sets (never carries a secret)."""


@dataclass(frozen=True, slots=True, repr=False)
class Share:
    """``value = f(index)``; the value never shows in a repr."""

    index: int
    value: int

    def __repr__(self) -> str:
        return f"Share(index={self.index}, value=<hidden>)"


class Polynomial:
    """A secret polynomial over Z_n, lowest coefficient first."""

    __slots__ = ("_coefficients",)

    def __init__(self, coefficients: Sequence[int]) -> None:
        if not coefficients:
            raise ShamirError("a polynomial needs at least one coefficient")
        if any(not 0 <= a < ORDER for a in coefficients):
            raise ShamirError("coefficients must lie in [0, n-1]")
        if coefficients[0] == 0:
            raise ShamirError("the secret (constant coefficient) must be non-zero")
        self._coefficients = tuple(coefficients)

    @classmethod
    def random(cls, threshold: int, secret: int | None = None) -> Polynomial:
        """Degree ``threshold-1``; the secret is random unless given."""
        check_threshold(threshold, threshold)
        constant = curve.random_scalar() if secret is None else secret
        # Non-zero coefficients keep every commitment a real point.
        rest = [curve.random_scalar() for _ in range(threshold - 1)]
        return cls([constant, *rest])

    @property
    def threshold(self) -> int:
        return len(self._coefficients)

    @property
    def secret(self) -> int:
        return self._coefficients[0]

    def evaluate(self, x: int) -> int:
        acc = 0
        for a in reversed(self._coefficients):
            acc = (acc * x + a) % ORDER
        return acc

    def commitments(self) -> tuple[Point, ...]:
        """Feldman commitments ``a_k·G``; zero coefficients are not allowed here."""
        if any(a == 0 for a in self._coefficients):
            raise ShamirError("a zero coefficient has no commitment")
        return tuple(curve.base_mul(a) for a in self._coefficients)

    def __repr__(self) -> str:
        return f"Polynomial(threshold={self.threshold}, coefficients=<hidden>)"


def check_threshold(threshold: int, n: int) -> None:
    if not 1 <= threshold <= n:
        raise ShamirError(f"need 1 <= t <= n, got t={threshold}, n={n}")
    if n > MAX_INDEX:
        raise ShamirError(f"at most {MAX_INDEX} shares")


def check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= MAX_INDEX:
        raise ShamirError(f"an index is an integer in [1, {MAX_INDEX}]")


def deal_shares(secret: int, threshold: int, n: int) -> tuple[Share, ...]:
    """Shares ``f(1) … f(n)`` of ``secret`` under a fresh random polynomial."""
    check_threshold(threshold, n)
    if not 1 <= secret < ORDER:
        raise ShamirError("the secret must lie in [1, n-1]")
    poly = Polynomial.random(threshold, secret)
    return tuple(Share(i, poly.evaluate(i)) for i in range(1, n + 1))


# --- Lagrange interpolation ------------------------------------------------


def lagrange_coefficients(indices: Iterable[int], at: int = 0) -> dict[int, int]:
    """``λ_i = Π_{j≠i} (at − j)·(i − j)⁻¹ mod n``; at 0 this is ``Π j·(j − i)⁻¹``."""
    index_set = sorted(set(indices))
    if not index_set:
        raise ShamirError("interpolation needs at least one index")
    for i in index_set:
        check_index(i)
    if at in index_set:
        return {i: int(i == at) for i in index_set}
    result: dict[int, int] = {}
    for i in index_set:
        num = 1
        den = 1
        for j in index_set:
            if j != i:
                num = num * (at - j) % ORDER
                den = den * (i - j) % ORDER
        result[i] = num * pow(den, -1, ORDER) % ORDER
    return result


def combine_scalars(shares: Mapping[int, int]) -> int:
    """``f(0)`` from ``t`` shares ``{i: f(i)}`` (the caller picks exactly t)."""
    lam = lagrange_coefficients(shares)
    return sum(lam[i] * s for i, s in shares.items()) % ORDER


def combine_points(partials: Mapping[int, Point]) -> Point:
    """``Σ λ_i·P_i`` over the given indices: ``f(0)·K`` from partials ``f(i)·K``."""
    indices = tuple(sorted(partials))
    for i in indices:  # before the cache: True must not hit index 1's entry
        check_index(i)
    return curve.linear_combination([partials[i] for i in indices], _lagrange_at_zero(indices))


@lru_cache(maxsize=64)
def _lagrange_at_zero(indices: tuple[int, ...]) -> tuple[int, ...]:
    """``λ_i`` at 0 for sorted ``indices`` (public values), kept: a client combines the
    same committee's ``t`` lowest nodes read after read (a runner, operand after
    operand), and their modular inverses cost more than the rest of the combination's
    Python."""
    lam = lagrange_coefficients(indices)
    return tuple(lam[i] for i in indices)


# --- commitments in the exponent ---------------------------------------------


def _times_small(acc: Point, i: int) -> Point:
    # i < n and n is prime, so acc·i is a real point whenever acc is.
    if i <= _SMALL_INDEX_LIMIT:
        return PublicKey.combine_keys([acc] * i)
    return curve.mul(acc, i)


def _times_small_plus(acc: Point, i: int, addend: Point) -> Point | None:
    """``acc·i + addend``; ``None`` stands for the point at infinity."""
    try:
        if i <= _SMALL_INDEX_LIMIT:
            return PublicKey.combine_keys([acc] * i + [addend])
        return PublicKey.combine_keys([curve.mul(acc, i), addend])
    except ValueError:
        return None


def evaluate_commitments(commitments: Sequence[Point | None], index: int) -> Point | None:
    """``Σ_k C_k·index^k`` by Horner's rule; ``None`` is the point at infinity.

    An aggregated commitment may itself be infinity (``None``); the result is
    ``None`` when the evaluation is.
    """
    if not commitments:
        raise ShamirError("no commitments")
    check_index(index)
    acc: Point | None = None
    for c in reversed(commitments):
        if acc is None:
            acc = c
        elif c is None:
            acc = _times_small(acc, index)
        else:
            acc = _times_small_plus(acc, index, c)
    return acc


def evaluate_commitments_many(
    commitments: Sequence[Point | None], indices: Iterable[int]
) -> dict[int, Point | None]:
    return {i: evaluate_commitments(commitments, i) for i in indices}


def aggregate_commitments(vectors: Sequence[Sequence[Point]]) -> tuple[Point | None, ...]:
    """``A_k = Σ_j C_jk``: the commitments of the sum of the dealers' polynomials."""
    if not vectors:
        raise ShamirError("nothing to aggregate")
    length = len(vectors[0])
    if any(len(v) != length for v in vectors):
        raise ShamirError("commitment vectors differ in length")
    out: list[Point | None] = []
    for k in range(length):
        try:
            out.append(curve.add(v[k] for v in vectors))
        except curve.CurveError:
            out.append(None)
    return tuple(out)


def verify_share(commitments: Sequence[Point | None], share: Share) -> bool:
    """``share.value·G`` equals the commitments evaluated at ``share.index``."""
    if not 1 <= share.value < ORDER:
        return False
    expected = evaluate_commitments(commitments, share.index)
    return expected is not None and curve.points_equal(curve.base_mul(share.value), expected)


def verify_verification_keys(public_key: Point, threshold: int, vks: Mapping[int, Point]) -> bool:
    """protocol.md §3.1: the ``Y_i`` lie on one degree ``t-1`` polynomial with value ``Y`` at 0.

    Interpolates in the exponent from the ``t`` lowest indices and checks every
    other key and the value at 0; fewer than ``t`` keys cannot be checked and fail.
    """
    if threshold < 1 or len(vks) < threshold:
        return False
    try:
        for i in vks:
            check_index(i)
    except ShamirError:
        return False
    base = sorted(vks)[:threshold]
    points = [vks[i] for i in base]
    for target in [0, *sorted(vks)[threshold:]]:
        lam = lagrange_coefficients(base, at=target)
        try:
            value = curve.linear_combination(points, [lam[i] for i in base])
        except curve.CurveError:
            return False
        expected = public_key if target == 0 else vks[target]
        if not curve.points_equal(value, expected):
            return False
    return True
