"""Schemathesis fuzzes every documented endpoint of a live node and gateway.

Each request part our handlers read is described in /openapi.json
(tkms/web/openapi.py); the fuzzer sends what the schema allows and much that
it does not, and every answer must be a documented status with the documented
JSON error shape — never a 5xx other than the documented 501/503.

The devnet's gateway reads the chain's ACL, so its grant and listing routes
answer the documented 501 ``not_configured`` to every request: they are fuzzed
apart, for documented statuses and content types only (``not_a_server_error``
counts a 501 as a server error).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import free_port_block, start_devnet, wait_printed

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    root = Path(tmp_path_factory.mktemp("fuzz"))
    base = free_port_block(6)
    process = start_devnet(root / "state", base, root / "devnet.log")
    try:
        wait_printed(root / "devnet.log", process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


ALL_CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
CASES = {
    "gateway": ("--exclude-path-regex", "^/v1/acl", "--checks", ALL_CHECKS),
    "gateway-acl": (
        "--include-path-regex",
        "^/v1/acl",
        "--checks",
        "status_code_conformance,content_type_conformance",
    ),
    "node": ("--checks", ALL_CHECKS),
}


@pytest.mark.parametrize("service", list(CASES))
def test_fuzzed_requests_get_documented_answers(devnet: int, service: str, tmp_path: Path) -> None:
    port = devnet if service.startswith("gateway") else devnet + 1
    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"http://127.0.0.1:{port}/openapi.json",
            *CASES[service],
            "--max-examples",
            "60",
            "--seed",
            "20261125",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory: not the checkout's
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "generated" in summary and " passed" in summary
    # The fuzzer's cache stays in its own directory: `make test` leaves the checkout as it was.
    assert (tmp_path / ".schemathesis").is_dir()
    assert not (Path(__file__).resolve().parents[1] / ".schemathesis").exists()
