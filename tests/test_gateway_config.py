"""Gateway configuration: nox names, tkms names, files, and errors that name the variable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tkms.crypto import curve
from tkms.crypto.encoding import to_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.gateway.config import load_gateway_config

KEY = to_hex(Wallet.generate().private_key_bytes())
SIGNER = to_hex(Wallet.generate().address)
Y = to_hex(curve.encode_point(curve.base_mul(curve.random_scalar())))
NODES = [{"index": i, "url": f"http://127.0.0.1:{9100 + i}", "signer": SIGNER} for i in (1, 2, 3)]


def threshold_env(**extra: str) -> dict[str, str]:
    return {
        "TKMS_GATEWAY_SIGNER__WALLET_KEY": KEY,
        "TKMS_GATEWAY_NODES": json.dumps(NODES),
        **extra,
    }


def test_threshold_defaults() -> None:
    config = load_gateway_config(threshold_env())
    assert config.threshold_mode and not config.single_node_mode
    assert list(config.nodes) == [1, 2, 3] and config.nodes[2].url == "http://127.0.0.1:9102"
    assert (config.spare, config.deadline, config.chain.id) == (1, 2.0, 421614)
    assert config.server.port == 3000 and config.server.host == "127.0.0.1"
    assert config.server.cors_allowed_headers == ["content-type", "authorization"]
    assert KEY[2:] not in repr(config) and KEY[2:] not in str(config.model_dump())


def test_write_limits_defaults_and_names() -> None:
    limits = load_gateway_config(threshold_env()).rate_limit
    assert (limits.writes_per_minute, limits.burst, limits.max_clients) == (600, 120, 10_000)
    assert not limits.trust_forwarded_for
    assert load_gateway_config(threshold_env()).max_record_bytes == 16 * 1024
    config = load_gateway_config(
        threshold_env(
            TKMS_GATEWAY_RATE_LIMIT__WRITES_PER_MINUTE="0",
            NOX_HANDLE_GATEWAY_RATE_LIMIT__BURST="7",
            TKMS_GATEWAY_RATE_LIMIT__MAX_CLIENTS="100",
            TKMS_GATEWAY_RATE_LIMIT__TRUST_FORWARDED_FOR="true",
            TKMS_GATEWAY_MAX_RECORD_BYTES="1024",
        )
    )
    assert config.rate_limit.writes_per_minute == 0 and config.rate_limit.burst == 7
    assert config.rate_limit.max_clients == 100 and config.rate_limit.trust_forwarded_for
    assert config.max_record_bytes == 1024


def test_nox_names_for_a_single_node() -> None:
    config = load_gateway_config(
        {
            "NOX_HANDLE_GATEWAY_SIGNER__WALLET_KEY": KEY,
            "NOX_HANDLE_GATEWAY_SERVER__PORT": "3100",
            "NOX_HANDLE_GATEWAY_SERVER__CORS_ALLOWED_HEADERS": '["content-type"]',
            "NOX_HANDLE_GATEWAY_CHAIN__ID": "11155111",
            "NOX_HANDLE_GATEWAY_CHAIN__NOX_COMPUTE_CONTRACT": SIGNER,
            "NOX_HANDLE_GATEWAY_CHAIN__RPC_URL": "http://localhost:8545",
            "NOX_HANDLE_GATEWAY_KMS__URL": "http://127.0.0.1:9000",
            "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": SIGNER,
            "TKMS_GATEWAY_KMS__PUBLIC_KEY": Y,
            "TKMS_GATEWAY_SERVER__PORT": "3200",  # the tkms prefix wins
        }
    )
    assert config.single_node_mode and not config.threshold_mode
    assert config.server.port == 3200 and config.chain.id == 11155111
    assert config.chain.nox_compute_contract == SIGNER
    assert config.server.cors_allowed_headers == ["content-type"]


def test_nested_nodes_durations_aliases_and_files(tmp_path: Path) -> None:
    key_file = tmp_path / "wallet.key"
    key_file.write_text(KEY + "\n")
    config = load_gateway_config(
        {
            "TKMS_GATEWAY_SIGNER__WALLET_KEY_FILE": str(key_file),
            "TKMS_GATEWAY_NODES__1__URL": "http://10.0.0.1:9101/",
            "TKMS_GATEWAY_NODES__1__SIGNER": SIGNER,
            "TKMS_GATEWAY_NODES__7__URL": "https://kms.example:443",
            "TKMS_GATEWAY_NODES__7__SIGNER": SIGNER,
            "TKMS_GATEWAY_DEADLINE": "1500ms",
            "TKMS_GATEWAY_NODE_TIMEOUT": "1s",
            "TKMS_GATEWAY_VERIFYING_CONTRACT": SIGNER,
            "TKMS_GATEWAY_DATABASE_URL": "postgresql://u@db/gw",
        }
    )
    assert config.signer.wallet_key.get_secret_value() == KEY
    assert sorted(config.nodes) == [1, 7] and config.nodes[1].url == "http://10.0.0.1:9101"
    assert config.deadline == 1.5 and config.node_timeout == 1.0
    assert config.chain.nox_compute_contract == SIGNER
    assert config.database_target() == "postgresql://u@db/gw"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TKMS_GATEWAY_SIGNER__WALLET_KEY": "0x12"}, "TKMS_GATEWAY_SIGNER__WALLET_KEY"),
        ({"TKMS_GATEWAY_SIGNER__WALLET_KEY": "0x" + "00" * 32}, "TKMS_GATEWAY_SIGNER__WALLET_KEY"),
        ({"TKMS_GATEWAY_NODES": "not json"}, "TKMS_GATEWAY_NODES"),
        ({"TKMS_GATEWAY_NODES": json.dumps([{"index": 1}])}, "TKMS_GATEWAY_NODES"),
        (
            {"TKMS_GATEWAY_NODES": json.dumps([{**NODES[0], "signer": "0x12"}])},
            "TKMS_GATEWAY_NODES",
        ),
        ({"TKMS_GATEWAY_NODES": json.dumps([{**NODES[0], "url": "ftp://x"}])}, "NODES"),
        ({"TKMS_GATEWAY_NODES": json.dumps([NODES[0], NODES[0]])}, "TKMS_GATEWAY_NODES"),
        ({"TKMS_GATEWAY_DEADLINE": "soon"}, "TKMS_GATEWAY_DEADLINE"),
        ({"TKMS_GATEWAY_SPARE": "-1"}, "TKMS_GATEWAY_SPARE"),
        ({"TKMS_GATEWAY_KMS__PUBLIC_KEY": "0x02" + "00" * 32}, "TKMS_GATEWAY_KMS__PUBLIC_KEY"),
        ({"NOX_HANDLE_GATEWAY_CHAIN__ID": "0"}, "NOX_HANDLE_GATEWAY_CHAIN__ID"),
        ({"TKMS_GATEWAY_SERVER__CORS_ALLOWED_HEADERS": '["a b"]'}, "CORS_ALLOWED_HEADERS"),
        ({"TKMS_GATEWAY_BOGUS": "1"}, "TKMS_GATEWAY_BOGUS"),
        ({"TKMS_GATEWAY_MAX_RECORD_BYTES": "8"}, "TKMS_GATEWAY_MAX_RECORD_BYTES"),
        (
            {"TKMS_GATEWAY_RATE_LIMIT__WRITES_PER_MINUTE": "-1"},
            "TKMS_GATEWAY_RATE_LIMIT__WRITES_PER_MINUTE",
        ),
        ({"TKMS_GATEWAY_RATE_LIMIT__BURST": "0"}, "TKMS_GATEWAY_RATE_LIMIT__BURST"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_gateway_config({**threshold_env(), **env})
    assert named in str(err.value)
    assert "\n" not in str(err.value) and KEY[2:] not in str(err.value)


def test_a_mode_is_required() -> None:
    with pytest.raises(ConfigError, match="TKMS_GATEWAY_NODES"):
        load_gateway_config({"TKMS_GATEWAY_SIGNER__WALLET_KEY": KEY})
    with pytest.raises(ConfigError, match="KMS__SIGNER_ADDRESS"):
        load_gateway_config(
            {"TKMS_GATEWAY_SIGNER__WALLET_KEY": KEY, "TKMS_GATEWAY_KMS__URL": "http://x:1"}
        )
    with pytest.raises(ConfigError, match="SIGNER"):
        load_gateway_config({"TKMS_GATEWAY_NODES": json.dumps(NODES)})


def test_the_command_fails_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TKMS_GATEWAY_SIGNER__WALLET_KEY": "0x12"}
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "gateway"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "TKMS_GATEWAY_SIGNER__WALLET_KEY" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_state_dir_that_is_a_file_names_the_variable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("a file, not a directory")
    for given in (state, state / "below"):
        with pytest.raises(ConfigError) as err:
            load_gateway_config(threshold_env(TKMS_GATEWAY_STATE_DIR=str(given)))
        message = str(err.value)
        assert message.startswith("TKMS_GATEWAY_STATE_DIR: ") and "\n" not in message
        assert "a directory is needed" in message


@pytest.mark.parametrize("database", [False, True])
def test_an_unusable_state_dir_or_database_stops_the_start_with_one_line(
    tmp_path: Path, database: bool
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("")
    env = {"PATH": "/usr/bin:/bin", **threshold_env()}
    if database:  # an SQLite file under a file
        env["TKMS_GATEWAY_DATABASE_URL"] = str(blocker / "gateway.sqlite3")
    else:
        env["TKMS_GATEWAY_STATE_DIR"] = str(blocker)
    result = subprocess.run(
        [sys.executable, "-m", "tkms", "gateway"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    expected = "TKMS_GATEWAY_DATABASE_URL" if database else "TKMS_GATEWAY_STATE_DIR"
    assert len(lines) == 1 and expected in lines[0], lines
    assert "Traceback" not in result.stderr


def test_every_missing_variable_is_named_in_one_line_by_its_full_name() -> None:
    with pytest.raises(ConfigError) as err:
        load_gateway_config({})
    message = str(err.value)
    assert "\n" not in message
    assert "NOX_HANDLE_GATEWAY_SIGNER__WALLET_KEY or TKMS_GATEWAY_SIGNER__WALLET_KEY" in message
    assert "TKMS_GATEWAY_NODES" in message and "KMS__URL" in message
    with pytest.raises(ConfigError) as err:
        load_gateway_config(
            {"TKMS_GATEWAY_SIGNER__WALLET_KEY": KEY, "TKMS_GATEWAY_KMS__URL": "http://x:1"}
        )
    assert "KMS__SIGNER_ADDRESS" in str(err.value) and "KMS__PUBLIC_KEY" in str(err.value)


def v06_env(chain_id: int = 421614, **extra: str) -> dict[str, str]:
    """nox v0.6's per-chain names, for a single node."""
    base = f"NOX_HANDLE_GATEWAY_CHAINS__{chain_id}__"
    return {
        base + "NOX_COMPUTE_CONTRACT_ADDRESS": SIGNER,
        base + "RPC_URL": "http://127.0.0.1:8545",
        base + "WALLET_KEY": KEY,
        "NOX_HANDLE_GATEWAY_KMS__URL": "http://127.0.0.1:9000",
        "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": SIGNER,
        "TKMS_GATEWAY_KMS__PUBLIC_KEY": Y,
        **extra,
    }


def test_nox_v06_names() -> None:
    config = load_gateway_config(
        v06_env(
            11155111,
            NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID="11155111",
            NOX_HANDLE_GATEWAY_RUNNER_ADDRESS=SIGNER,
            NOX_HANDLE_GATEWAY_SERVER__CORS_ALLOWED_HEADERS="content-type, authorization,x-a",
            NOX_HANDLE_GATEWAY_CHAINS__11155111__S3__BUCKET="b",
            NOX_HANDLE_GATEWAY_CHAINS__11155111__S3__MAX_HANDLES_PER_REQUEST="1000",
        )
    )
    assert config.chain.id == 11155111 and config.chain.linked and config.chain_acl
    assert config.chain.nox_compute_contract == SIGNER
    assert config.chain.rpc_url == "http://127.0.0.1:8545"
    assert config.signer.wallet_key.get_secret_value() == KEY
    assert config.runner_address == SIGNER
    assert config.server.cors_allowed_headers == ["content-type", "authorization", "x-a"]
    # The batch limit of the status route is acted on; the rest of S3 is not.
    assert config.unsupported() == ["CHAINS__11155111__S3__BUCKET"]
    assert config.max_handles(11155111) == 1000


def test_embedded_acl_is_an_explicit_choice() -> None:
    assert not load_gateway_config(v06_env(TKMS_GATEWAY_ACL="embedded")).chain_acl
    unlinked = {k: v for k, v in v06_env().items() if "RPC_URL" not in k}
    assert not load_gateway_config(unlinked).chain_acl
    with pytest.raises(ConfigError, match="TKMS_GATEWAY_ACL: chain needs RPC_URL"):
        load_gateway_config({**unlinked, "TKMS_GATEWAY_ACL": "chain"})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"NOX_HANDLE_GATEWAY_CHAINS__1__RPC_URL": "http://x:1"},
            "missing NOX_HANDLE_GATEWAY_CHAINS__1__WALLET_KEY",  # a second chain, without a wallet
        ),
        (
            {"NOX_HANDLE_GATEWAY_CHAINS__421614__NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "00" * 20},
            "NOX_HANDLE_GATEWAY_CHAINS__421614__RPC_URL needs",
        ),
        (
            {"NOX_HANDLE_GATEWAY_CHAINS__421614__WALLET_KEY": "0x12"},
            "NOX_HANDLE_GATEWAY_CHAINS__421614__WALLET_KEY",
        ),
        ({"NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": "1"}, "DEFAULT_CHAIN_ID: 1 is not"),
        ({"NOX_HANDLE_GATEWAY_RUNNER_ADDRESS": "0x12"}, "NOX_HANDLE_GATEWAY_RUNNER_ADDRESS"),
    ],
)
def test_v06_errors_are_one_line(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_gateway_config({**v06_env(), **env})
    assert named in str(err.value)
    assert "\n" not in str(err.value) and KEY[2:] not in str(err.value)


def test_the_older_single_chain_names_still_work() -> None:
    config = load_gateway_config(
        {
            "NOX_HANDLE_GATEWAY_SIGNER__WALLET_KEY": KEY,
            "NOX_HANDLE_GATEWAY_CHAIN__ID": "31337",
            "NOX_HANDLE_GATEWAY_CHAIN__NOX_COMPUTE_CONTRACT": SIGNER,
            "NOX_HANDLE_GATEWAY_CHAIN__RPC_URL": "http://127.0.0.1:8545",
            "TKMS_GATEWAY_NODES": json.dumps(NODES),
        }
    )
    assert config.chain.id == 31337 and config.chain_acl


def test_a_single_node_on_a_chain_takes_its_key_from_the_chain() -> None:
    env = {k: v for k, v in v06_env().items() if k != "TKMS_GATEWAY_KMS__PUBLIC_KEY"}
    assert load_gateway_config(env).kms.public_key is None  # chain_start reads kmsPublicKey()
    unlinked = {k: v for k, v in env.items() if "RPC_URL" not in k}
    with pytest.raises(ConfigError, match="KMS__PUBLIC_KEY"):
        load_gateway_config(unlinked)


def two_chains(**extra: str) -> dict[str, str]:
    """Chain 421614 linked with its own wallet, chain 7 linked with another."""
    other = to_hex(Wallet.generate().private_key_bytes())
    env = {k: v for k, v in v06_env().items() if k != "TKMS_GATEWAY_KMS__PUBLIC_KEY"}
    env.update(
        {
            "NOX_HANDLE_GATEWAY_CHAINS__7__NOX_COMPUTE_CONTRACT_ADDRESS": SIGNER,
            "NOX_HANDLE_GATEWAY_CHAINS__7__RPC_URL": "http://127.0.0.1:8546",
            "NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY": other,
            "NOX_HANDLE_GATEWAY_CHAINS__7__CALL_TIMEOUT": "3s",
        }
    )
    env.update(extra)
    return env


def test_several_chains_each_with_its_settings() -> None:
    env = two_chains()
    config = load_gateway_config(env)
    served = config.served()
    assert sorted(served) == [7, 421614] and config.default_chain == 421614
    assert served[7].rpc_url == "http://127.0.0.1:8546" and served[7].call_timeout == 3.0
    assert served[421614].call_timeout == 8.0
    assert (
        served[7].wallet_key.get_secret_value() == env["NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY"]
    )
    assert served[421614].wallet_key.get_secret_value() == KEY
    assert all(chain.chain_acl for chain in served.values())
    assert served[7].variable("WALLET_KEY") == "NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY"
    assert KEY[2:] not in repr(served) and KEY[2:] not in repr(config)
    assert (
        load_gateway_config(two_chains(NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID="7")).default_chain == 7
    )


def test_a_chain_without_its_wallet_takes_signer_wallet_key() -> None:
    env = two_chains()
    del env["NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY"]
    with pytest.raises(ConfigError) as err:
        load_gateway_config(env)
    assert str(err.value).startswith("missing NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY")
    signer = to_hex(Wallet.generate().private_key_bytes())
    served = load_gateway_config({**env, "TKMS_GATEWAY_SIGNER__WALLET_KEY": signer}).served()
    assert served[7].wallet_key.get_secret_value() == signer
    assert served[421614].wallet_key.get_secret_value() == KEY  # its own wins


def test_mixed_linked_and_unlinked_chains() -> None:
    """Each chain's ACL is its contract's if linked, else embedded; ACL= says it for all."""
    single = {k: v for k, v in two_chains().items() if "CHAINS__7__RPC_URL" not in k}
    env = {k: v for k, v in single.items() if "KMS__" not in k}
    env["TKMS_GATEWAY_NODES"] = json.dumps(NODES)
    served = load_gateway_config(env).served()
    assert served[421614].chain_acl and not served[7].chain_acl and not served[7].linked
    embedded = load_gateway_config({**env, "TKMS_GATEWAY_ACL": "embedded"}).served()
    assert not any(chain.chain_acl for chain in embedded.values())
    with pytest.raises(ConfigError, match=r"TKMS_GATEWAY_ACL: chain needs .* of chain 7"):
        load_gateway_config({**env, "TKMS_GATEWAY_ACL": "chain"})
    # A single node needs each chain's key from its chain.
    with pytest.raises(ConfigError, match="missing NOX_HANDLE_GATEWAY_CHAINS__7__RPC_URL"):
        load_gateway_config(single)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (
            {"NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": "8"},
            "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID: 8 is not one of the configured chains 7, 421614",
        ),
        ({"TKMS_GATEWAY_KMS__PUBLIC_KEY": Y}, "TKMS_GATEWAY_KMS__PUBLIC_KEY: only with one chain"),
        ({"NOX_HANDLE_GATEWAY_CHAIN__ID": "5"}, "NOX_HANDLE_GATEWAY_CHAIN__…: the older"),
        ({"TKMS_GATEWAY_VERIFYING_CONTRACT": SIGNER}, "do not mix with several CHAINS__<id>"),
        (
            {"NOX_HANDLE_GATEWAY_CHAINS__7__NOX_COMPUTE_CONTRACT_ADDRESS": "0x" + "00" * 20},
            "NOX_HANDLE_GATEWAY_CHAINS__7__RPC_URL needs"
            " NOX_HANDLE_GATEWAY_CHAINS__7__NOX_COMPUTE_CONTRACT_ADDRESS",
        ),
        (
            {"NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY": "0x12"},
            "NOX_HANDLE_GATEWAY_CHAINS__7__WALLET_KEY",
        ),
    ],
)
def test_several_chains_errors_are_one_line(extra: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_gateway_config(two_chains(**extra))
    assert named in str(err.value)
    assert "\n" not in str(err.value) and KEY[2:] not in str(err.value)


def test_several_chains_without_nox_default_name_the_default() -> None:
    env = {k.replace("__421614__", "__9__"): v for k, v in two_chains().items()}
    with pytest.raises(ConfigError, match="DEFAULT_CHAIN_ID: set it to one of the configured"):
        load_gateway_config(env)
    assert (
        load_gateway_config({**env, "NOX_HANDLE_GATEWAY_DEFAULT_CHAIN_ID": "9"}).default_chain == 9
    )


def test_status_batch_limit_and_its_per_chain_override() -> None:
    config = load_gateway_config(threshold_env())
    assert config.max_handles(421614) == 1000
    assert config.status_body_bytes() >= 1000 * 72 > config.max_body_bytes  # 64 KiB is too small
    config = load_gateway_config(threshold_env(NOX_HANDLE_GATEWAY_MAX_HANDLES_PER_REQUEST="10"))
    assert config.max_handles(421614) == 10 and config.status_body_bytes() == 64 * 1024
    v06 = {
        "NOX_HANDLE_GATEWAY_CHAINS__421614__WALLET_KEY": KEY,
        "NOX_HANDLE_GATEWAY_CHAINS__421614__S3__MAX_HANDLES_PER_REQUEST": "2000",
        "NOX_HANDLE_GATEWAY_CHAINS__421614__S3__BUCKET": "b",
        "TKMS_GATEWAY_NODES": json.dumps(NODES),
    }
    config = load_gateway_config(v06)
    assert config.max_handles(421614) == 2000
    assert config.unsupported() == ["CHAINS__421614__S3__BUCKET"]  # the limit is acted on
    with pytest.raises(ConfigError) as err:
        load_gateway_config(
            {**v06, "NOX_HANDLE_GATEWAY_CHAINS__421614__S3__MAX_HANDLES_PER_REQUEST": "-1"}
        )
    assert "CHAINS__421614__S3__MAX_HANDLES_PER_REQUEST" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_gateway_config(threshold_env(TKMS_GATEWAY_MAX_HANDLES_PER_REQUEST="0"))
    assert "MAX_HANDLES_PER_REQUEST" in str(err.value)


def test_the_nox_names_make_it_a_handle_gateway() -> None:
    assert load_gateway_config(threshold_env()).service_name == "tkms-gateway"
    nox = threshold_env(NOX_HANDLE_GATEWAY_SERVER__PORT="3001")
    assert load_gateway_config(nox).service_name == "Handle Gateway"
    named = {**nox, "TKMS_GATEWAY_SERVICE_NAME": "mine"}
    assert load_gateway_config(named).service_name == "mine"


def test_the_chain_acl_cache_ttl() -> None:
    assert load_gateway_config(threshold_env()).acl_cache_seconds == 60.0
    config = load_gateway_config(threshold_env(TKMS_GATEWAY_ACL_CACHE_SECONDS="1500ms"))
    assert config.acl_cache_seconds == 1.5
    assert (
        load_gateway_config(threshold_env(TKMS_GATEWAY_ACL_CACHE_SECONDS="0")).acl_cache_seconds
        == 0
    )
    with pytest.raises(ConfigError, match="ACL_CACHE_SECONDS"):
        load_gateway_config(threshold_env(TKMS_GATEWAY_ACL_CACHE_SECONDS="-1"))
