"""The command line: keygen files, help text, the dev delegation client, key options."""

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


def _delegate_args(node: Service, *extra: str) -> list[str]:
    ephemeral = to_hex(curve.encode_point(curve.base_mul(5)))
    args = ["delegate", "--node", node.url, "--chain-id", str(CHAIN_ID), *extra]
    return [*args, "--ephemeral-pubkey", ephemeral]


def test_delegate_takes_the_gateway_key_from_the_environment(
    v0_node: Service, node_keys: NodeKeys
) -> None:
    env = {"TKMS_DELEGATE_GATEWAY_KEY": to_hex(node_keys.gateway.private_key_bytes())}
    result = runner.invoke(app, _delegate_args(v0_node), env=env)
    assert result.exit_code == 0, result.output
    expected = curve.point_x(curve.mul(curve.base_mul(node_keys.kms_key), 5))
    assert to_hex(expected) in result.output


def test_delegate_command_reports_a_refusal_in_one_line(v0_node: Service) -> None:
    env = {"TKMS_DELEGATE_GATEWAY_KEY": to_hex(Wallet.generate().private_key_bytes())}
    result = runner.invoke(app, _delegate_args(v0_node), env=env)
    assert result.exit_code == 2
    assert "401 unauthorized_signer" in result.output
    assert "Traceback" not in result.output


def test_a_key_on_the_command_line_is_refused(v0_node: Service, node_keys: NodeKeys) -> None:
    key = to_hex(node_keys.gateway.private_key_bytes())
    result = runner.invoke(app, _delegate_args(v0_node, "--gateway-key", key))
    assert result.exit_code == 2
    assert "visible to every user" in result.output and "--gateway-key-file" in result.output
    assert "TKMS_DELEGATE_GATEWAY_KEY" in result.output
    assert key[2:] not in result.output and "shared secret" not in result.output
    assert "--gateway-key " not in runner.invoke(app, ["delegate", "--help"]).output


def test_a_key_is_required(v0_node: Service) -> None:
    result = runner.invoke(app, _delegate_args(v0_node), env={"TKMS_DELEGATE_GATEWAY_KEY": ""})
    assert result.exit_code == 2
    assert "--gateway-key-file" in result.output and "TKMS_DELEGATE_GATEWAY_KEY" in result.output


def test_devnet_state_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a directory")
    for given in (state, state / "below"):
        result = runner.invoke(app, ["devnet", "--state-dir", str(given)])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "--state-dir" in lines[0] and "a directory is needed" in lines[0]
        assert "Traceback" not in result.output
