"""Node configuration: nox-kms names as they are, TKMS_NODE_ names, *_FILE secrets, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.procs import free_port, running
from tkms.client.delegation import delegate_v0, open_shared_secret
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.node.config import load_node_config

KEY = "0x" + "11" * 32
GATEWAY = "0x" + "22" * 20


def test_nox_names_as_they_are() -> None:
    config = load_node_config(
        {
            "NOX_KMS_WALLET_KEY": KEY,
            "NOX_KMS_CHAINS__421614__ECC_KEY": "33" * 32,
            "NOX_KMS_CHAINS__421614__GATEWAY_ADDRESS": GATEWAY,
            "NOX_KMS_CHAINS__421614__RPC_URL": "http://127.0.0.1:8545",
            "NOX_KMS_CHAINS__421614__NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "66" * 20,
            "NOX_KMS_CHAINS__421614__CALL_TIMEOUT": "8s",
            "NOX_KMS_CHAINS__421614__CONNECT_TIMEOUT": "1500ms",
            "NOX_KMS_SERVER__HOST": "0.0.0.0",
            "NOX_KMS_SERVER__PORT": "9001",
        }
    )
    assert config.server.host == "0.0.0.0" and config.server.port == 9001
    chain = config.chains[421614]
    assert chain.gateway() == bytes.fromhex("22" * 20)
    assert chain.ecc_key is not None and chain.ecc_key.get_secret_value() == "33" * 32
    assert chain.linked and chain.contract() == bytes.fromhex("66" * 20)
    assert (chain.call_timeout, chain.connect_timeout, chain.refresh_interval) == (8, 1.5, 5)
    assert "33" * 32 not in repr(config) and "11" * 32 not in repr(config)


def test_tkms_prefix_wins_and_file_secrets(tmp_path: Path) -> None:
    key_file = tmp_path / "ecc.key"
    key_file.write_text("0x" + "44" * 32 + "\n")
    config = load_node_config(
        {
            "NOX_KMS_WALLET_KEY": KEY,
            "TKMS_NODE_WALLET_KEY": "0x" + "55" * 32,
            "TKMS_NODE_CHAINS__7__ECC_KEY_FILE": str(key_file),
            "TKMS_NODE_CHAINS__7__GATEWAY_ADDRESS": GATEWAY,
            "TKMS_NODE_MAX_BODY_BYTES": "4096",
        }
    )
    assert config.wallet_key.get_secret_value() == "0x" + "55" * 32
    ecc = config.chains[7].ecc_key
    assert ecc is not None and ecc.get_secret_value() == "0x" + "44" * 32
    assert config.max_body_bytes == 4096


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "TKMS_NODE_WALLET_KEY"),
        ({"NOX_KMS_WALLET_KEY": "0x1234"}, "NOX_KMS_WALLET_KEY"),
        ({"NOX_KMS_WALLET_KEY": "00" * 32}, "NOX_KMS_WALLET_KEY"),
        ({"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_SERVER__PORT": "http"}, "NOX_KMS_SERVER__PORT"),
        ({"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_SERVER__PORT": "70000"}, "NOX_KMS_SERVER__PORT"),
        (
            {"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_CHAINS__1__ECC_KEY": "zz"},
            "NOX_KMS_CHAINS__1__ECC_KEY",
        ),
        (
            {"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_CHAINS__1__ECC_KEY": KEY},
            "NOX_KMS_CHAINS__1__GATEWAY_ADDRESS",
        ),
        (
            {
                "NOX_KMS_WALLET_KEY": KEY,
                "NOX_KMS_CHAINS__1__ECC_KEY": KEY,
                "NOX_KMS_CHAINS__1__GATEWAY_ADDRESS": "0x12",
            },
            "NOX_KMS_CHAINS__1__GATEWAY_ADDRESS",
        ),
        ({"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_CHAINS__abc__ECC_KEY": KEY}, "NOX_KMS_CHAINS__abc"),
        ({"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_BOGUS": "1"}, "NOX_KMS_BOGUS"),
        ({"NOX_KMS_WALLET_KEY_FILE": "/nonexistent/key"}, "NOX_KMS_WALLET_KEY_FILE"),
        (
            {
                "NOX_KMS_WALLET_KEY": KEY,
                "TKMS_NODE_DKG_ADMIN_ADDRESS": GATEWAY,
                "TKMS_NODE_SERVER__WORKERS": "2",
            },
            "TKMS_NODE_SERVER__WORKERS",
        ),
    ],
)
def test_invalid_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_node_config(env)
    message = str(err.value)
    assert variable in message
    assert "\n" not in message
    for value in env.values():
        if len(value) >= 32:
            assert value not in message  # never echo a (possibly secret) value


def test_invalid_configuration_stops_the_start_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    env["NOX_KMS_WALLET_KEY"] = "0xnot-a-key-at-all"
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "node"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "NOX_KMS_WALLET_KEY" in lines[0]
    assert "Traceback" not in result.stderr


def test_minimal_nox_environment_serves_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    wallet, gateway = Wallet.generate(), Wallet.generate()
    kms_key = curve.random_scalar()
    key_file = tmp_path / "wallet.key"
    key_file.write_text(to_hex(wallet.private_key_bytes()))
    env = {
        "NOX_KMS_WALLET_KEY_FILE": str(key_file),
        "NOX_KMS_CHAINS__5__ECC_KEY": to_hex(curve.scalar_to_bytes(kms_key)),
        "NOX_KMS_CHAINS__5__GATEWAY_ADDRESS": to_hex(gateway.address),
        "NOX_KMS_SERVER__HOST": "127.0.0.1",
        "NOX_KMS_SERVER__PORT": str(port),
    }
    with running(["node", "--workers", "2"], env, tmp_path / "node.log", port) as node:
        private = rsa.generate_private_key()
        k = curve.random_scalar()
        with httpx.Client() as client:
            for _ in range(4):  # spread over both workers
                answer = delegate_v0(
                    node.url,
                    gateway,
                    5,
                    to_hex(curve.encode_point(curve.base_mul(k))),
                    to_hex(rsa.public_key_der(private)),
                    client=client,
                )
                assert answer.signer == wallet.address
                expected = curve.point_x(curve.mul(curve.base_mul(kms_key), k))
                assert open_shared_secret(private, answer) == expected


def test_a_state_dir_that_is_a_file_names_the_variable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("a file, not a directory")
    for given in (state, state / "below"):
        with pytest.raises(ConfigError) as err:
            load_node_config({"TKMS_NODE_WALLET_KEY": KEY, "TKMS_NODE_STATE_DIR": str(given)})
        message = str(err.value)
        assert message.startswith("TKMS_NODE_STATE_DIR: ") and "\n" not in message
        assert "a directory is needed" in message


def test_a_state_dir_that_is_a_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOX_", "TKMS_"))}
    env |= {
        "TKMS_NODE_WALLET_KEY": KEY,
        "TKMS_NODE_STATE_DIR": str(state),
        "TKMS_NODE_SEALING_KEY": "0x" + "33" * 32,
    }
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "node"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "TKMS_NODE_STATE_DIR" in lines[0], lines
    assert "Traceback" not in result.stderr


def test_a_node_without_a_chain_does_not_start() -> None:
    """nox-kms refuses to start without a chain; a node with none would refuse every request."""
    with pytest.raises(ConfigError) as err:
        load_node_config({"NOX_KMS_WALLET_KEY": KEY})
    assert "no chain is configured" in str(err.value) and "\n" not in str(err.value)
    assert "GATEWAY_ADDRESS" in str(err.value)


def test_the_authorization_mode_defaults_to_user_on_a_linked_chain_only() -> None:
    linked = {
        "NOX_KMS_WALLET_KEY": KEY,
        "NOX_KMS_CHAINS__1__RPC_URL": "http://127.0.0.1:8545",
        "NOX_KMS_CHAINS__1__NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "66" * 20,
        "NOX_KMS_CHAINS__2__GATEWAY_ADDRESS": GATEWAY,
    }
    config = load_node_config(linked)
    assert (config.user_mode(1), config.user_mode(2)) == (True, False)
    config = load_node_config(linked | {"TKMS_NODE_AUTHORIZATION_MODE": "gateway"})
    assert (config.user_mode(1), config.user_mode(2)) == (False, False)
    # user mode reads isViewer on the node's own RPC: an unlinked chain cannot have it.
    with pytest.raises(ConfigError, match="TKMS_NODE_AUTHORIZATION_MODE: user needs"):
        load_node_config(linked | {"TKMS_NODE_AUTHORIZATION_MODE": "user"})
    with pytest.raises(ConfigError, match="AUTHORIZATION_MODE"):
        load_node_config(linked | {"TKMS_NODE_AUTHORIZATION_MODE": "users"})


def test_the_runner_address_is_per_chain_or_node_wide() -> None:
    base = {
        "NOX_KMS_WALLET_KEY": KEY,
        "NOX_KMS_CHAINS__1__GATEWAY_ADDRESS": GATEWAY,
        "NOX_KMS_CHAINS__2__GATEWAY_ADDRESS": GATEWAY,
    }
    config = load_node_config(base)
    assert (config.runner(1), config.runner(2), config.runner_max_block_age) == (None, None, 256)
    config = load_node_config(
        base
        | {
            "TKMS_NODE_RUNNER_ADDRESS": "0x" + "77" * 20,
            "NOX_KMS_CHAINS__2__RUNNER_ADDRESS": "0x" + "88" * 20,
            "TKMS_NODE_RUNNER_MAX_BLOCK_AGE": "16",
        }
    )
    assert (config.runner(1), config.runner(2)) == (b"\x77" * 20, b"\x88" * 20)
    assert config.runner_max_block_age == 16
    for name, value in (
        ("TKMS_NODE_RUNNER_ADDRESS", "runner"),
        ("NOX_KMS_CHAINS__1__RUNNER_ADDRESS", "0x1234"),
        ("TKMS_NODE_RUNNER_MAX_BLOCK_AGE", "0"),
    ):
        with pytest.raises(ConfigError, match=name.removeprefix("NOX_KMS_").split("__")[-1]):
            load_node_config(base | {name: value})


def test_the_user_mode_acl_cache_ttl() -> None:
    base = {"NOX_KMS_WALLET_KEY": KEY, "NOX_KMS_CHAINS__1__GATEWAY_ADDRESS": GATEWAY}
    assert load_node_config(base).acl_cache_seconds == 60.0
    assert load_node_config(base | {"TKMS_NODE_ACL_CACHE_SECONDS": "0"}).acl_cache_seconds == 0
    assert load_node_config(base | {"TKMS_NODE_ACL_CACHE_SECONDS": "5s"}).acl_cache_seconds == 5
    with pytest.raises(ConfigError, match="ACL_CACHE_SECONDS"):
        load_node_config(base | {"TKMS_NODE_ACL_CACHE_SECONDS": "3601"})
