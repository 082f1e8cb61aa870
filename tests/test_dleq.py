"""DLEQ (protocol.md §3.3): honest proofs verify; any altered input does not."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tkms.crypto import curve, dleq
from tkms.crypto.curve import ORDER

scalars = st.integers(min_value=1, max_value=ORDER - 1)


def _instance(x: int, k: int) -> tuple[bytes, bytes, bytes, bytes]:
    """Wire encodings (Y_i, K, S_i, proof) of an honest proof."""
    K = curve.base_mul(k)
    s_enc, proof = dleq.Prover(x).partial(K)
    return curve.encode_point(curve.base_mul(x)), curve.encode_point(K), s_enc, proof


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@settings(max_examples=50, deadline=None)
@given(x=scalars, k=scalars)
def test_honest_proof_verifies(x: int, k: int) -> None:
    y, K, s, proof = _instance(x, k)
    assert dleq.verify_encoded(y, K, s, proof)
    points = [curve.parse_point(e) for e in (y, K, s)]
    assert dleq.verify(points[0], points[1], points[2], proof)
    assert dleq.verify(points[0], points[1], points[2], dleq.prove(x, points[1]))


@settings(max_examples=50, deadline=None)
@given(x=scalars, k=scalars, which=st.integers(0, 3), bit=st.integers(0, 64 * 8 - 1))
def test_flipping_any_bit_breaks_verification(x: int, k: int, which: int, bit: int) -> None:
    parts = list(_instance(x, k))
    # Points are 33 bytes, the proof 64: keep the bit inside the chosen field.
    parts[which] = _flip(parts[which], bit % (len(parts[which]) * 8))
    assert not dleq.verify_encoded(*parts)


@settings(max_examples=30, deadline=None)
@given(x=scalars, other=scalars, k=scalars)
def test_a_partial_made_with_another_share_is_rejected(x: int, other: int, k: int) -> None:
    if other == x:
        return
    y, K, _, _ = _instance(x, k)
    forged_s, forged_proof = dleq.Prover(other).partial(curve.parse_point(K))
    assert not dleq.verify_encoded(y, K, forged_s, forged_proof)


def test_out_of_range_scalars_are_rejected() -> None:
    y, K, s, proof = _instance(5, 7)
    c, z = proof[:32], proof[32:]
    c_int = int.from_bytes(c, "big")
    z_int = int.from_bytes(z, "big")
    # c + n and z + n name the same residues, so only the range check can refuse them.
    if c_int + ORDER < 2**256:
        assert not dleq.verify_encoded(y, K, s, (c_int + ORDER).to_bytes(32, "big") + z)
    if z_int + ORDER < 2**256:
        assert not dleq.verify_encoded(y, K, s, c + (z_int + ORDER).to_bytes(32, "big"))
    assert not dleq.verify_encoded(y, K, s, curve.scalar_to_bytes(0) + z)
    assert not dleq.verify_encoded(y, K, s, b"\xff" * 64)


def test_commitments_at_infinity_are_rejected() -> None:
    # With c = 0 and z = 0 both commitments are the point at infinity.
    y, K, s, _ = _instance(5, 7)
    assert not dleq.verify_encoded(y, K, s, bytes(64))
    # With S_i = K·x, z = c·x makes A1 = A2 = infinity for any c.
    x = 5
    c = 12345
    z = c * x % ORDER
    proof = curve.scalar_to_bytes(c) + curve.scalar_to_bytes(z)
    assert not dleq.verify_encoded(y, K, s, proof)


def test_malformed_inputs_never_raise() -> None:
    y, K, s, proof = _instance(3, 4)
    for bad in (b"", proof[:63], proof + b"\x00", "not bytes"):
        assert not dleq.verify_encoded(y, K, s, bad)  # type: ignore[arg-type]
    for bad_point in (b"", b"\x04" + y[1:], b"\x02" + b"\xff" * 32, y[:32]):
        assert not dleq.verify_encoded(bad_point, K, s, proof)
        assert not dleq.verify_encoded(y, bad_point, s, proof)
        assert not dleq.verify_encoded(y, K, bad_point, proof)
    points = [curve.parse_point(e) for e in (y, K, s)]
    assert not dleq.verify(points[0], points[1], points[2], None)  # type: ignore[arg-type]
    assert not dleq.verify(None, points[1], points[2], proof)  # type: ignore[arg-type]


def test_proof_is_fresh_each_time() -> None:
    K = curve.base_mul(9)
    p1 = dleq.prove(5, K)
    p2 = dleq.prove(5, K)
    assert p1 != p2
    assert dleq.verify(curve.base_mul(5), K, curve.mul(K, 5), p1)


def test_prover_hides_the_share() -> None:
    x = 0xDEADBEEFCAFE
    prover = dleq.Prover(x)
    assert "hidden" in repr(prover)
    assert str(x) not in repr(prover) and hex(x)[2:] not in repr(prover).lower()
    assert prover.verification_key == curve.encode_point(curve.base_mul(x))


@settings(max_examples=50, deadline=None)
@given(y=scalars, k=scalars, s=scalars, c=scalars, z=scalars)
def test_the_direct_commitments_are_coincurves(y: int, k: int, s: int, c: int, z: int) -> None:
    # verify's libsecp256k1 path against the same four products through coincurve.
    points = [curve.base_mul(v) for v in (y, k, s)]
    direct = dleq._commitments(*points, curve.scalar_to_bytes(z), curve.scalar_to_bytes(ORDER - c))
    assert direct == dleq._commitments_generic(*points, c, z)
    # And where a commitment is at infinity (z·G = c·Y_i), both say so.
    z_at_infinity = curve.scalar_to_bytes(c * y % ORDER)
    assert dleq._commitments(*points, z_at_infinity, curve.scalar_to_bytes(ORDER - c)) is None
    assert dleq._commitments_generic(*points, c, c * y % ORDER) is None
