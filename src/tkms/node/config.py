"""Node configuration from the environment (nox-kms names, or ``TKMS_NODE_``).

A node configured with nothing but ``NOX_KMS_WALLET_KEY``,
``NOX_KMS_CHAINS__<id>__ECC_KEY``, ``NOX_KMS_CHAINS__<id>__GATEWAY_ADDRESS``,
``NOX_KMS_SERVER__HOST`` and ``NOX_KMS_SERVER__PORT`` serves. Secrets are
``SecretStr`` so they never print.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from tkms.crypto.encoding import parse_address
from tkms.envconfig import (
    ConfigError,
    check_address,
    check_directory,
    check_private_key,
    validate,
)

PREFIXES = ("NOX_KMS_", "TKMS_NODE_")


class ServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    access_log: bool = False


class ChainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ecc_key: SecretStr | None = None
    gateway_address: str | None = None
    rpc_url: str | None = None
    nox_compute_contract_address: str | None = None
    call_timeout: str = "8s"
    connect_timeout: str = "5s"

    _check_ecc = field_validator("ecc_key")(check_private_key)
    _check_addresses = field_validator("gateway_address", "nox_compute_contract_address")(
        check_address
    )

    def gateway(self) -> bytes:
        if self.gateway_address is None:
            raise ValueError("gateway address is not configured")
        return parse_address(self.gateway_address)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_name: str = "tkms-node"
    wallet_key: SecretStr
    server: ServerConfig = ServerConfig()
    chains: dict[int, ChainConfig] = Field(default_factory=dict)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    state_dir: Path | None = None
    sealing_key: SecretStr | None = None
    dkg_admin_address: str | None = None
    dkg_max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)

    _check_wallet = field_validator("wallet_key")(check_private_key)
    _check_admin = field_validator("dkg_admin_address")(check_address)
    _check_state_dir = field_validator("state_dir")(check_directory)

    @field_validator("chains")
    @classmethod
    def _chain_ids(cls, chains: dict[int, ChainConfig]) -> dict[int, ChainConfig]:
        for chain_id in chains:
            if not 0 < chain_id < 2**32:
                raise ValueError(f"chain id {chain_id} is not a u32")
        return chains


def load_node_config(environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read and validate; raises ConfigError with one line naming the variable."""
    config = validate(NodeConfig, PREFIXES, environ)
    for chain_id, chain in config.chains.items():
        if chain.ecc_key is not None and chain.gateway_address is None:
            raise ConfigError(
                f"NOX_KMS_CHAINS__{chain_id}__GATEWAY_ADDRESS: required for chain {chain_id}"
            )
    if config.dkg_admin_address is not None and config.server.workers > 1:
        # A ceremony's state lives in one process; rounds spread over workers would split it.
        raise ConfigError(
            "TKMS_NODE_SERVER__WORKERS: a node that takes part in key generation "
            "(TKMS_NODE_DKG_ADMIN_ADDRESS set) runs one worker"
        )
    if not config.chains:
        # nox-kms does not start without a chain; a node with none would refuse every request.
        raise ConfigError(
            "NOX_KMS_CHAINS__<chain id>__GATEWAY_ADDRESS: no chain is configured "
            "(a node serves at least one: its GATEWAY_ADDRESS, and ECC_KEY unless it "
            "takes part in key generation)"
        )
    return config
