"""Every case of threshold.json (an independent implementation) against shamir and dleq."""

from __future__ import annotations

from typing import Any

import pytest

from tests.vectors import load
from tkms.crypto import curve, dleq, shamir
from tkms.crypto.encoding import parse_hex as h

VECTORS = load("threshold")
CASES = VECTORS["cases"]


def _int(value: str) -> int:
    return int.from_bytes(h(value), "big")


def _point(value: str) -> curve.Point:
    return curve.parse_point(h(value))


def _ids(case: dict[str, Any]) -> str:
    return f"t{case['t']}-n{case['n']}"


def test_dst_matches() -> None:
    assert VECTORS["dleqDST"].encode() == dleq.DST


def test_every_case_is_covered() -> None:
    assert [(c["t"], c["n"]) for c in CASES] == [(1, 1), (2, 3), (3, 5), (7, 10)]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_shares_and_verification_keys(case: dict[str, Any]) -> None:
    poly = shamir.Polynomial([_int(a) for a in case["polynomial"]])
    assert poly.threshold == case["t"]
    assert poly.secret == _int(case["privateKey"])
    assert curve.encode_point(curve.base_mul(poly.secret)) == h(case["publicKey"])
    commitments = poly.commitments()
    assert len(case["shares"]) == len(case["verificationKeys"]) == case["n"]
    for key, share_hex in case["shares"].items():
        i = int(key)
        share = shamir.Share(i, _int(share_hex))
        assert poly.evaluate(i) == share.value
        vk = curve.base_mul(share.value)
        assert curve.encode_point(vk) == h(case["verificationKeys"][key])
        evaluated = shamir.evaluate_commitments(commitments, i)
        assert evaluated is not None and curve.points_equal(evaluated, vk)
        assert shamir.verify_share(commitments, share)
    vks = {int(k): _point(v) for k, v in case["verificationKeys"].items()}
    assert shamir.verify_verification_keys(_point(case["publicKey"]), case["t"], vks)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_partials_and_dleq(case: dict[str, Any]) -> None:
    K = _point(case["ephemeralPubKey"])
    for key, share_hex in case["shares"].items():
        x_i = _int(share_hex)
        Y_i = _point(case["verificationKeys"][key])
        expected_partial = h(case["partials"][key])
        S_i = curve.mul(K, x_i)
        assert curve.encode_point(S_i) == expected_partial
        vec = case["dleq"][key]
        nonce = _int(vec["nonce"])
        proof = dleq._prove_from_parts(x_i, K, nonce)
        assert proof == h(vec["proof"])
        assert proof[:32] == h(vec["c"]) and proof[32:] == h(vec["z"])
        assert dleq._prove_from_parts(x_i, K, nonce, Y_i=Y_i, S_i=S_i) == proof
        s_enc, fast_proof = dleq.Prover(x_i)._partial_from_parts(K, nonce)
        assert s_enc + fast_proof == h(vec["envelope"])
        assert len(h(vec["envelope"])) == 97
        assert dleq.verify(Y_i, K, S_i, proof)
        assert dleq.verify_encoded(
            h(case["verificationKeys"][key]), h(case["ephemeralPubKey"]), s_enc, proof
        )


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_lagrange_and_combination(case: dict[str, Any]) -> None:
    subset = case["combineSubset"]
    assert len(subset) == case["t"]
    lam = shamir.lagrange_coefficients(subset)
    assert set(lam) == {int(k) for k in case["lagrange"]} == set(subset)
    for key, value in case["lagrange"].items():
        assert lam[int(key)] == _int(value)
    partials = {i: _point(case["partials"][str(i)]) for i in subset}
    combined = shamir.combine_points(partials)
    assert curve.encode_point(combined) == h(case["combined"])
    assert curve.point_x(combined) == h(case["combinedX"])
    # The combination is x·K: the whole key never needed assembling.
    K = _point(case["ephemeralPubKey"])
    assert curve.points_equal(combined, curve.mul(K, _int(case["privateKey"])))
    shares = {i: _int(case["shares"][str(i)]) for i in subset}
    assert shamir.combine_scalars(shares) == _int(case["privateKey"])


def test_invalid_dleq_is_rejected() -> None:
    bad = VECTORS["invalidDleq"]
    assert bad["expect"] == "reject"
    args = (h(bad["verificationKey"]), h(bad["ephemeralPubKey"]), h(bad["partial"]))
    assert not dleq.verify_encoded(*args, h(bad["proof"]))
    points = [curve.parse_point(a) for a in args]
    assert not dleq.verify(points[0], points[1], points[2], h(bad["proof"]))
