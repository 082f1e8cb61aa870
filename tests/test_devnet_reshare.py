"""`tkms devnet reshare` against a running devnet: 3/2 → 4/3 → 3/2, kmsPublicKey() unchanged.

A handle encrypted before the reshares decrypts after each (CLI over the
gateway, the chain's ACL); devnet.json follows the committee; the node that
left is stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.procs import (
    check_devnet_chain,
    devnet_chain,
    free_port_block,
    start_devnet,
    wait_printed,
)
from tkms.cli import app
from tkms.crypto.encoding import to_hex

runner = CliRunner()


def _cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_devnet_reshare_keeps_the_key_on_chain_and_the_records(tmp_path: Path) -> None:
    base = free_port_block(5)
    state = tmp_path / "state"
    log = tmp_path / "devnet.log"
    process = start_devnet(state, base, log, "--nodes", "3", "--threshold", "2")
    try:
        wait_printed(log, process)
        manifest_file = str(state / "devnet.json")
        _, nox = devnet_chain(state)
        key = to_hex(nox.kms_public_key())
        handle = _cli("encrypt", "4242", "--devnet", manifest_file).strip().splitlines()[-1]
        assert _cli("decrypt", "--devnet", manifest_file, handle).strip().endswith("4242")
        for nodes, threshold in ((4, 3), (3, 2)):
            said = _cli(
                "devnet",
                "reshare",
                "--nodes",
                str(nodes),
                "--threshold",
                str(threshold),
                "--state-dir",
                str(state),
            )
            assert f"reshared to {nodes} nodes, threshold {threshold}" in said
            manifest = json.loads((state / "devnet.json").read_text())
            assert (manifest["threshold"], len(manifest["nodes"])) == (threshold, nodes)
            assert manifest["publicKey"] == key == to_hex(nox.kms_public_key())
            check_devnet_chain(state)
            out = _cli("decrypt", "--devnet", manifest_file, handle)
            assert out.strip().endswith("4242"), out
        # Node 4 joined at the first reshare and left at the second: it was stopped.
        assert "nodes [4] left and were stopped" in said
        served = httpx.get(
            manifest["gateway"]["url"] + "/v1/keyset", params={"chain_id": manifest["chainId"]}
        )
        assert served.json()["epoch"] == 3
        refused = runner.invoke(
            app,
            ["devnet", "reshare", "--nodes", "3", "--threshold", "5", "--state-dir", str(state)],
        )
        assert refused.exit_code != 0 and "threshold" in refused.output
    finally:
        process.terminate()
        process.wait(timeout=30)
