"""Input errors of the command line: one line each, exit code 2, and help without placeholders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tests.procs import free_port
from tkms.cli import app
from tkms.cli_values import parse_cli_value
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.keyfiles import write_hex

runner = CliRunner()
TKMS = str(Path(sys.executable).parent / "tkms")


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def _dead_devnet(root: Path) -> Path:
    """A devnet.json whose gateway and node listen nowhere (the devnet is down)."""
    user = root / "user.key"
    write_hex(user, Wallet.generate().private_key_bytes())
    gateway = root / "gateway.key"
    write_hex(gateway, Wallet.generate().private_key_bytes())
    dead = f"http://127.0.0.1:{free_port()}"
    signer = to_hex(Wallet.generate().address)
    manifest = {
        "chainId": 421614,
        "threshold": 1,
        "publicKey": "0x02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
        "gatewayKeyFile": str(gateway),
        "nodes": [{"index": 1, "url": dead, "signer": signer}],
        "gateway": {"url": dead, "signer": signer},
        "verifyingContract": signer,
        "users": {"user": {"address": signer, "keyFile": str(user)}},
    }
    path = root / "devnet.json"
    path.write_text(json.dumps(manifest))
    return path


def _commands() -> list[list[str]]:
    """Every command path of ``tkms`` (typer's groups are click groups of its vendored click)."""
    found: list[list[str]] = [[]]

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            found.append([*prefix, name])
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])

    walk(get_command(app), [])
    return found


def test_no_help_shows_a_bool_placeholder() -> None:
    commands = _commands()
    assert ["devnet", "restart-node"] in commands and ["encrypt"] in commands
    for command in commands:
        result = runner.invoke(app, [*command, "--help"], terminal_width=100)
        assert result.exit_code == 0, command
        assert "<bool>" not in result.output, command
        assert "--help" in result.output


def test_a_negative_integer_is_a_value_not_an_option(tmp_path: Path) -> None:
    assert parse_cli_value("-5", "int8") == -5
    result = runner.invoke(
        app, ["encrypt", "--type", "int8", "-5", "--devnet", str(tmp_path / "none.json")]
    )
    assert "No such option" not in result.output
    assert "no devnet at" in result.output and result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["encrypt", "--type", "int8", "many"],
        ["encrypt", "--type", "uint8", "300"],
        ["encrypt", "--type", "bool", "maybe"],
        ["encrypt", "--bogus", "1"],
        ["decrypt", "0x1234"],
        ["grant", "0x" + "00" * 32, "nobody"],
        ["delegate"],
    ],
)
def test_every_input_error_exits_2_in_one_line(args: list[str], tmp_path: Path) -> None:
    devnet = _dead_devnet(tmp_path)
    extra = ["--devnet", str(devnet)] if args[0] in ("encrypt", "decrypt", "grant") else []
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_missing_key_file_is_named_as_such(tmp_path: Path) -> None:
    devnet = _dead_devnet(tmp_path)
    missing = tmp_path / "nobody.key"
    result = runner.invoke(
        app, ["decrypt", "0x" + "00" * 32, "--devnet", str(devnet), "--key-file", str(missing)]
    )
    assert result.exit_code == 2
    lines = _lines(result.output)
    assert len(lines) == 1 and f"key file {missing}: no such file" in lines[0]
    assert "devnet.json" not in lines[0]


def test_outside_the_checkout_a_missing_devnet_says_where_to_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [TKMS, "decrypt", "0x" + "00" * 32],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    lines = _lines(result.stderr)
    assert len(lines) == 1 and "no devnet at devnet-state/devnet.json" in lines[0]
    assert "checkout" in lines[0] and "--devnet" in lines[0]


def test_delegate_with_the_devnet_down_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [TKMS, "delegate", "--devnet", str(_dead_devnet(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = _lines(result.stdout + result.stderr)
    assert len(lines) == 1 and "cannot reach node 1" in lines[0] and "devnet running" in lines[0]


def test_the_readme_story_leaves_no_key_in_the_checkout() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    outs = [
        line.split("--out", 1)[1].split()[0] for line in readme.splitlines() if "--out " in line
    ]
    story = [o for o in outs if o.endswith(".key")]
    assert story and all(o.startswith("devnet-state/") for o in story), story
    assert "sudo" in readme and "PostgreSQL" in readme
