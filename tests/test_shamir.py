"""Shamir sharing, Lagrange combination and Feldman commitments: properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.crypto import curve, shamir
from tkms.crypto.curve import ORDER

scalars = st.integers(min_value=1, max_value=ORDER - 1)


@st.composite
def sharings(draw: st.DrawFn, max_n: int = 9) -> tuple[int, int, int, tuple[shamir.Share, ...]]:
    n = draw(st.integers(min_value=1, max_value=max_n))
    t = draw(st.integers(min_value=1, max_value=n))
    secret = draw(scalars)
    return secret, t, n, shamir.deal_shares(secret, t, n)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), sharing=sharings())
def test_any_t_shares_give_the_same_point(
    data: st.DataObject, sharing: tuple[int, int, int, tuple[shamir.Share, ...]]
) -> None:
    secret, t, _, shares = sharing
    K = curve.base_mul(data.draw(scalars))
    subset = data.draw(st.lists(st.sampled_from(shares), min_size=t, max_size=t, unique=True))
    partials = {s.index: curve.mul(K, s.value) for s in subset}
    assert curve.points_equal(shamir.combine_points(partials), curve.mul(K, secret))
    assert shamir.combine_scalars({s.index: s.value for s in subset}) == secret


@settings(max_examples=50, deadline=None)
@given(data=st.data(), sharing=sharings())
def test_fewer_than_t_shares_give_another_value(
    data: st.DataObject, sharing: tuple[int, int, int, tuple[shamir.Share, ...]]
) -> None:
    secret, t, _, shares = sharing
    if t == 1:
        return
    subset = data.draw(st.lists(st.sampled_from(shares), min_size=1, max_size=t - 1, unique=True))
    # Interpolating t−1 points of a random degree t−1 polynomial misses f(0)
    # except with probability 1/n.
    assert shamir.combine_scalars({s.index: s.value for s in subset}) != secret


@settings(max_examples=50, deadline=None)
@given(sharing=sharings())
def test_keyset_check_accepts_honest_keys(
    sharing: tuple[int, int, int, tuple[shamir.Share, ...]],
) -> None:
    secret, t, _, shares = sharing
    vks = {s.index: curve.base_mul(s.value) for s in shares}
    assert shamir.verify_verification_keys(curve.base_mul(secret), t, vks)


@settings(max_examples=50, deadline=None)
@given(data=st.data(), sharing=sharings())
def test_keyset_check_rejects_a_wrong_key_or_public_key(
    data: st.DataObject, sharing: tuple[int, int, int, tuple[shamir.Share, ...]]
) -> None:
    secret, t, n, shares = sharing
    vks = {s.index: curve.base_mul(s.value) for s in shares}
    Y = curve.base_mul(secret)
    other = curve.base_mul(data.draw(scalars))
    assert not shamir.verify_verification_keys(other, t, vks) or curve.points_equal(other, Y)
    if n > t:
        victim = data.draw(st.sampled_from(sorted(vks)))
        forged = dict(vks)
        value = next(s.value for s in shares if s.index == victim)
        # One more than the share, or two when that wraps to 0 (a share of ORDER − 1).
        bump = 1 if (value + 1) % curve.ORDER else 2
        forged[victim] = curve.base_mul((value + bump) % curve.ORDER)
        assert not shamir.verify_verification_keys(Y, t, forged)


@settings(max_examples=30, deadline=None)
@given(sharing=sharings())
def test_keys_of_t_minus_1_degree_do_not_pass_as_threshold_t_minus_1(
    sharing: tuple[int, int, int, tuple[shamir.Share, ...]],
) -> None:
    secret, t, _, shares = sharing
    if t == 1:
        return
    vks = {s.index: curve.base_mul(s.value) for s in shares}
    # A degree t−1 polynomial does not lie on one of degree t−2.
    assert not shamir.verify_verification_keys(curve.base_mul(secret), t - 1, vks)


def test_keyset_check_needs_t_keys() -> None:
    shares = shamir.deal_shares(5, 3, 5)
    vks = {s.index: curve.base_mul(s.value) for s in shares[:2]}
    assert not shamir.verify_verification_keys(curve.base_mul(5), 3, vks)
    assert not shamir.verify_verification_keys(curve.base_mul(5), 0, vks)


@settings(max_examples=30, deadline=None)
@given(
    t=st.integers(min_value=1, max_value=6),
    index=st.one_of(st.integers(1, 20), st.integers(90, 130), st.just(shamir.MAX_INDEX)),
)
def test_commitment_evaluation_matches_share(t: int, index: int) -> None:
    poly = shamir.Polynomial.random(t)
    commitments = poly.commitments()
    got = shamir.evaluate_commitments(commitments, index)
    assert got is not None
    assert curve.points_equal(got, curve.base_mul(poly.evaluate(index)))
    assert shamir.verify_share(commitments, shamir.Share(index, poly.evaluate(index)))
    wrong = (poly.evaluate(index) + 1) % ORDER
    assert not shamir.verify_share(commitments, shamir.Share(index, wrong))


def test_aggregated_commitments_commit_to_the_sum() -> None:
    polys = [shamir.Polynomial.random(4) for _ in range(5)]
    agg = shamir.aggregate_commitments([p.commitments() for p in polys])
    for i in (1, 7, 100):
        total = sum(p.evaluate(i) for p in polys) % ORDER
        got = shamir.evaluate_commitments(agg, i)
        assert got is not None and curve.points_equal(got, curve.base_mul(total))


def test_evaluation_through_infinity() -> None:
    # Two dealers whose higher coefficients cancel: the aggregate has A_1 and
    # A_2 at infinity and still evaluates to the sum of the secrets.
    a, b = 11, 7
    p1 = shamir.Polynomial([a, b, b])
    p2 = shamir.Polynomial([a, ORDER - b, ORDER - b])
    agg = shamir.aggregate_commitments([p1.commitments(), p2.commitments()])
    assert agg[1] is None and agg[2] is None
    got = shamir.evaluate_commitments(agg, 3)
    assert got is not None and curve.points_equal(got, curve.base_mul(2 * a))
    # f(x) = 2b − b·x vanishes at 2: infinity comes back as None.
    cancelling = [curve.base_mul(2 * b), curve.base_mul(ORDER - b)]
    assert shamir.evaluate_commitments(cancelling, 2) is None
    assert not shamir.verify_share(cancelling, shamir.Share(2, 1))


def test_lagrange_at_zero_is_the_protocol_formula() -> None:
    indices = [2, 5, 9]
    lam = shamir.lagrange_coefficients(indices)
    for i in indices:
        expected = 1
        for j in indices:
            if j != i:
                expected = expected * j * pow(j - i, -1, ORDER) % ORDER
        assert lam[i] == expected
    assert sum(lam.values()) % ORDER == 1


def test_secrets_stay_out_of_repr() -> None:
    secret = 0x1234567890ABCDEF
    poly = shamir.Polynomial.random(3, secret)
    share = shamir.Share(1, poly.evaluate(1))
    for text in (repr(poly), repr(share), str(poly), str(share)):
        assert str(secret) not in text and hex(secret)[2:] not in text
        assert str(share.value) not in text and "hidden" in text


@pytest.mark.parametrize(
    ("secret", "t", "n"), [(0, 1, 1), (ORDER, 1, 1), (1, 0, 3), (1, 4, 3), (1, 1, 70000)]
)
def test_bad_parameters_are_refused(secret: int, t: int, n: int) -> None:
    with pytest.raises(shamir.ShamirError):
        shamir.deal_shares(secret, t, n)


def test_bad_indices_are_refused() -> None:
    with pytest.raises(shamir.ShamirError):
        shamir.lagrange_coefficients([])
    with pytest.raises(shamir.ShamirError):
        shamir.lagrange_coefficients([0, 1])
    with pytest.raises(shamir.ShamirError):
        shamir.evaluate_commitments([curve.GENERATOR], 0)
