"""`tkms dkg`: an operator runs a ceremony across real node processes from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.cluster import CHAIN_ID, Cluster, running_cluster
from tkms.cli import app
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet

runner = CliRunner()


@pytest.fixture(scope="module")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(Path(tmp_path_factory.mktemp("trio")), 3) as c:
        yield c


def _committee(cluster: Cluster, path: Path) -> Path:
    nodes = [{"index": i, "url": s.url} for i, s in cluster.nodes.items()]
    path.write_text(json.dumps({"chainId": CHAIN_ID, "nodes": nodes}))
    return path


def test_the_admin_runs_a_ceremony(trio: Cluster, tmp_path: Path) -> None:
    key_file = tmp_path / "admin.key"
    key_file.write_text(to_hex(trio.admin.private_key_bytes()))
    out = tmp_path / "keyset.json"
    result = runner.invoke(
        app,
        [
            "dkg",
            "--committee",
            str(_committee(trio, tmp_path / "committee.json")),
            "--threshold",
            "2",
            "--admin-key-file",
            str(key_file),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    keyset = json.loads(out.read_text())
    assert f"public key: {keyset['publicKey']}" in result.output
    assert "qualified dealers [1, 2, 3]" in result.output
    assert keyset["threshold"] == 2 and sorted(keyset["signatures"]) == ["1", "2", "3"]
    served = httpx.get(trio.nodes[3].url + "/v1/keyset", params={"chain_id": CHAIN_ID}).json()
    assert served == keyset


def test_anyone_else_is_refused_in_one_line(trio: Cluster, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["dkg", "--threshold", "2", "--committee", str(_committee(trio, tmp_path / "c.json"))],
        env={"TKMS_ADMIN_KEY": to_hex(Wallet.generate().private_key_bytes())},
    )
    assert result.exit_code == 2
    assert "unauthorized_signer" in result.output
    assert "Traceback" not in result.output


def test_a_bad_committee_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "committee.json"
    bad.write_text('{"nodes": 3}')
    result = runner.invoke(
        app,
        ["dkg", "--committee", str(bad), "--threshold", "2"],
        env={"TKMS_ADMIN_KEY": "0x" + "11" * 32},
    )
    assert result.exit_code == 2
    assert "not a committee file" in result.output


def test_the_admin_key_is_never_taken_from_the_command_line(tmp_path: Path) -> None:
    committee = tmp_path / "committee.json"
    committee.write_text(json.dumps({"chainId": CHAIN_ID, "nodes": []}))
    args = ["dkg", "--committee", str(committee), "--threshold", "2"]
    result = runner.invoke(app, [*args, "--admin-key", "0x" + "11" * 32])
    assert result.exit_code == 2
    assert "visible to every user" in result.output and "TKMS_ADMIN_KEY" in result.output
    assert "11" * 32 not in result.output
    result = runner.invoke(app, args, env={"TKMS_ADMIN_KEY": ""})
    assert result.exit_code == 2 and "--admin-key-file" in result.output


def test_the_admin_reshares_the_trio(trio: Cluster, tmp_path: Path) -> None:
    """`tkms reshare`: same public key, epoch + 1, a new threshold (after the ceremony above)."""
    served = httpx.get(trio.nodes[1].url + "/v1/keyset", params={"chain_id": CHAIN_ID}).json()
    committee = str(_committee(trio, tmp_path / "committee.json"))
    out = tmp_path / "keyset.json"
    args = ["reshare", "--old", committee, "--new", committee, "--threshold", "3"]
    result = runner.invoke(
        app,
        [*args, "--out", str(out), "--trusted-key", served["publicKey"]],
        env={"TKMS_ADMIN_KEY": to_hex(trio.admin.private_key_bytes())},
    )
    assert result.exit_code == 0, result.output
    keyset = json.loads(out.read_text())
    assert keyset["publicKey"] == served["publicKey"]
    assert (keyset["epoch"], keyset["threshold"]) == (served["epoch"] + 1, 3)
    assert f"epoch {keyset['epoch']}: qualified dealers [1, 2, 3]" in result.output
    refused = runner.invoke(
        app, args, env={"TKMS_ADMIN_KEY": to_hex(Wallet.generate().private_key_bytes())}
    )
    assert refused.exit_code == 2 and "unauthorized_signer" in refused.output
    assert "the old epoch serves on" in refused.output and "Traceback" not in refused.output
