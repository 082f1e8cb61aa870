"""The command line: keygen files, help text, the dev delegation client."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import CHAIN_ID, NodeKeys
from tests.procs import Service
from tkms.cli import app
from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.keyfiles import read_hex

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("keygen", "node", "delegate", "devnet"):
        assert command in result.output


def test_keygen_to_a_file_is_private(tmp_path: Path) -> None:
    out = tmp_path / "wallet.key"
    result = runner.invoke(app, ["keygen", "--kind", "wallet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    wallet = Wallet(read_hex(out))
    assert to_hex(wallet.address) in result.output
    assert wallet.private_key_bytes().hex() not in result.output


def test_keygen_kms_prints_matching_public_key() -> None:
    result = runner.invoke(app, ["keygen"])
    assert result.exit_code == 0
    lines = dict(line.split(":", 1) for line in result.output.splitlines())
    secret = int(lines["private key"].strip(), 16)
    assert lines["public key"].strip() == to_hex(curve.encode_point(curve.base_mul(secret)))


def test_delegate_command_prints_the_shared_secret(
    v0_node: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    key_file = tmp_path / "gw.key"
    key_file.write_text(to_hex(node_keys.gateway.private_key_bytes()))
    k = curve.random_scalar()
    ephemeral = to_hex(curve.encode_point(curve.base_mul(k)))
    result = runner.invoke(
        app,
        [
            "delegate",
            "--node",
            v0_node.url,
            "--chain-id",
            str(CHAIN_ID),
            "--gateway-key-file",
            str(key_file),
            "--ephemeral-pubkey",
            ephemeral,
            "--node-signer",
            to_hex(node_keys.node_wallet.address),
        ],
    )
    assert result.exit_code == 0, result.output
    expected = curve.point_x(curve.mul(curve.base_mul(node_keys.kms_key), k))
    assert to_hex(expected) in result.output


def test_delegate_command_reports_a_refusal_in_one_line(v0_node: Service) -> None:
    result = runner.invoke(
        app,
        [
            "delegate",
            "--node",
            v0_node.url,
            "--chain-id",
            str(CHAIN_ID),
            "--gateway-key",
            to_hex(Wallet.generate().private_key_bytes()),
            "--ephemeral-pubkey",
            to_hex(curve.encode_point(curve.base_mul(5))),
        ],
    )
    assert result.exit_code == 2
    assert "401 unauthorized_signer" in result.output
    assert "Traceback" not in result.output
