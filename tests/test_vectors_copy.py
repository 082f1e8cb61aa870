"""The vectors under tests/vectors must be the independent implementation's, unchanged."""

from __future__ import annotations

import pytest

from tests.vectors import SHARED_VECTORS, VECTORS

EXPECTED = {"ecies.json", "eip712.json", "rsa_oaep.json", "threshold.json"}


def test_local_copy_has_every_vector_file() -> None:
    assert {p.name for p in VECTORS.glob("*.json")} >= EXPECTED


@pytest.mark.skipif(
    not SHARED_VECTORS.is_dir(), reason="../shared/vectors is not beside the checkout"
)
def test_local_copy_matches_shared_vectors() -> None:
    shared = {p.name for p in SHARED_VECTORS.glob("*.json")}
    local = {p.name for p in VECTORS.glob("*.json")}
    assert shared == local, f"vector files differ: shared {sorted(shared)}, local {sorted(local)}"
    for name in sorted(shared):
        assert (VECTORS / name).read_bytes() == (SHARED_VECTORS / name).read_bytes(), (
            f"tests/vectors/{name} differs from ../shared/vectors/{name}: copy it again"
        )
