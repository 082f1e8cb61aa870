"""Node configuration from the environment (nox-kms names, or ``TKMS_NODE_``).

A node configured with nothing but ``NOX_KMS_WALLET_KEY``,
``NOX_KMS_CHAINS__<id>__ECC_KEY``, ``NOX_KMS_CHAINS__<id>__GATEWAY_ADDRESS``,
``NOX_KMS_SERVER__HOST`` and ``NOX_KMS_SERVER__PORT`` serves. Secrets are
``SecretStr`` so they never print. ``TKMS_NODE_SERVER__HTTP__<NAME>`` sets
the connection limits (:class:`tkms.web.limits.HttpLimits`),
``TKMS_NODE_DKG_MAX_MEMBERS`` the largest committee (it sizes the DKG body limit).
``TKMS_NODE_AUDIT_DIR`` (default ``<state dir>/audit``) holds the audit log and
``TKMS_NODE_AUDIT_MAX_BYTES`` (64 MiB) the size at which it rotates (docs/audit.md).
``TKMS_NODE_AUTHORIZATION_MODE`` is ``user`` or ``gateway`` (docs/node-authorization.md):
unset, every linked chain is served in ``user`` mode and every other in ``gateway`` mode.
``TKMS_NODE_RUNNER_ADDRESS`` (or ``…CHAINS__<id>__RUNNER_ADDRESS``) is the runner user mode
serves operands to, ``TKMS_NODE_RUNNER_MAX_BLOCK_AGE`` (256) its statements' freshness.
``TKMS_NODE_ACL_CACHE_SECONDS`` (60; 0: off) how long user mode keeps a true
``isViewer``/``isPubliclyDecryptable`` answer (:mod:`tkms.chain.acl_cache`).
``TKMS_NODE_BINDING_REGISTRATION`` (``closed``) opens ``POST /v1/bindings/register`` for a
migration (``open``; docs/binding.md).

A chain with ``…__RPC_URL`` and ``…__NOX_COMPUTE_CONTRACT_ADDRESS`` is *linked*:
its gateway comes from the contract's ``gateway()`` and its key is checked
against ``kmsPublicKey()`` (:mod:`tkms.node.chain`, docs/chain.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from tkms.crypto.encoding import parse_address
from tkms.envconfig import (
    ConfigError,
    check_address,
    check_directory,
    check_private_key,
    validate,
)
from tkms.web.server_config import ServerConfig

PREFIXES = ("NOX_KMS_", "TKMS_NODE_")
ZERO_ADDRESS = bytes(20)
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*")


def chain_variable(chain_id: int, name: str) -> str:
    """The variable of a chain setting, as nox-kms names it (``TKMS_NODE_…`` works too)."""
    return f"NOX_KMS_CHAINS__{chain_id}__{name}"


def _seconds(value: object) -> object:
    """``8``, ``8.5``, ``"8s"`` and ``"1500ms"`` are all accepted (nox-kms writes ``"8s"``)."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError("must be a duration such as 8, 8s or 1500ms")
        number = float(match.group(1))
        return number / 1000 if match.group(2) == "ms" else number
    return value


def dkg_round_bytes(members: int) -> int:
    """An upper bound on a ``/v1/dkg/*`` request body for a committee of ``members``.

    The largest is round 1, which delivers all n deals (docs/dkg.md): each is
    about 300 bytes of JSON envelope (type, session id, sender, signature), t ≤ n
    commitments of 33 bytes (72 characters as JSON hex) and n - 1 sealed
    93-byte shares (225 characters with their recipient). The other rounds
    (n complaints of ≤ 7n characters, justifications of ≤ n - 1 plain 32-byte
    shares, keyset signatures) and the start body (n members of ≈ 150
    characters) are smaller. A quarter on top, and 16 KiB for the round's
    own envelope. n = 5: 27 KiB; n = 64: 1.5 MiB.
    """
    deal = 300 + 72 * members + 225 * (members - 1)
    return members * deal * 5 // 4 + 16 * 1024


class ChainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ecc_key: SecretStr | None = None
    gateway_address: str | None = None
    rpc_url: str | None = None
    nox_compute_contract_address: str | None = None
    # The runner whose OperandAccessAuthorization this chain's user-mode checks accept
    # (docs/node-authorization.md); unset: the node-wide TKMS_NODE_RUNNER_ADDRESS.
    runner_address: str | None = None
    call_timeout: float = Field(8.0, gt=0, le=600)
    connect_timeout: float = Field(5.0, gt=0, le=600)
    # How often a linked chain's gateway() and kmsPublicKey() are read again; a
    # kmsPublicKey() read is trusted for twice that (tkms.node.chain).
    refresh_interval: float = Field(5.0, ge=0.1, le=3600)

    _check_ecc = field_validator("ecc_key")(check_private_key)
    _check_addresses = field_validator(
        "gateway_address", "nox_compute_contract_address", "runner_address"
    )(check_address)
    _durations = field_validator(
        "call_timeout", "connect_timeout", "refresh_interval", mode="before"
    )(_seconds)

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def contract(self) -> bytes | None:
        """The NoxCompute contract, or None when unset or the zero address."""
        if self.nox_compute_contract_address is None:
            return None
        address = parse_address(self.nox_compute_contract_address)
        return None if address == ZERO_ADDRESS else address

    @property
    def linked(self) -> bool:
        """RPC_URL and a contract: the gateway and the key come from the chain."""
        return self.rpc_url is not None and self.contract() is not None

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
    # The most ephemeral keys of one POST /v1/delegate/batch (docs/batch-delegation.md).
    max_delegation_batch: int = Field(128, ge=1, le=4096)
    state_dir: Path | None = None
    sealing_key: SecretStr | None = None
    dkg_admin_address: str | None = None
    # After a reshare's switch, how long the old epoch's share still answers requests
    # that name it (the gateway's time to learn the new keyset); then it is destroyed.
    reshare_grace: int = Field(60, ge=0, le=24 * 3600)
    # The largest committee this node takes part in: sizes the DKG body limit.
    dkg_max_members: int = Field(64, ge=1, le=1024)
    # An explicit DKG body limit instead of the one computed from dkg_max_members.
    dkg_max_body_bytes: int | None = Field(None, ge=1024, le=256 * 1024 * 1024)
    # The audit log (docs/audit.md): its directory, by default the state dir's audit/,
    # and the size at which it starts a new file. No directory: no log (a warning).
    audit_dir: Path | None = None
    audit_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, le=2**40)
    # Who /v1/delegate checks (docs/node-authorization.md): the user itself (``user``:
    # its signature, key, the binding and isViewer on this node's own RPC) or only
    # the gateway's signature (``gateway``). None: ``user`` on every linked chain.
    authorization_mode: Literal["user", "gateway"] | None = None
    # RUNNER_ADDRESS of every chain that does not name its own (``…__RUNNER_ADDRESS``):
    # user mode serves purpose ``runner`` only for it, and accepts its ResultBinding
    # signatures. Its statements' blockNumber must be within this many blocks of the head.
    runner_address: str | None = None
    runner_max_block_age: int = Field(256, ge=1, le=2**32)
    # User mode keeps a true isViewer / isPubliclyDecryptable this long (NoxCompute has no
    # revoke; the TTL bounds a grant reorged away). 0: every check reads the chain.
    acl_cache_seconds: float = Field(60.0, ge=0, le=3600)
    # POST /v1/bindings/register (docs/binding.md): closed unless the operator opens it
    # for the migration of a nox deployment's records, so that it happens once.
    binding_registration: Literal["open", "closed"] = "closed"

    _check_wallet = field_validator("wallet_key")(check_private_key)
    _check_admin = field_validator("dkg_admin_address", "runner_address")(check_address)
    _check_state_dir = field_validator("state_dir", "audit_dir")(check_directory)
    _acl_ttl = field_validator("acl_cache_seconds", mode="before")(_seconds)

    def audit_directory(self) -> Path | None:
        if self.audit_dir is not None:
            return self.audit_dir
        return None if self.state_dir is None else self.state_dir / "audit"

    def user_mode(self, chain_id: int) -> bool:
        """Whether ``/v1/delegate`` of this chain checks the user (a linked chain only)."""
        if self.authorization_mode == "gateway":
            return False
        return self.chains[chain_id].linked

    def runner(self, chain_id: int) -> bytes | None:
        """The chain's RUNNER_ADDRESS (its own, else the node-wide one), or None."""
        text = self.chains[chain_id].runner_address or self.runner_address
        return None if text is None else parse_address(text)

    def dkg_body_limit(self) -> int:
        return self.dkg_max_body_bytes or dkg_round_bytes(self.dkg_max_members)

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
        if chain.rpc_url is not None and chain.contract() is None:
            raise ConfigError(
                f"{chain_variable(chain_id, 'NOX_COMPUTE_CONTRACT_ADDRESS')}: required "
                f"(and not the zero address) with {chain_variable(chain_id, 'RPC_URL')}"
            )
        if chain.rpc_url is None and chain.contract() is not None:
            raise ConfigError(
                f"{chain_variable(chain_id, 'RPC_URL')}: required with "
                f"{chain_variable(chain_id, 'NOX_COMPUTE_CONTRACT_ADDRESS')}"
            )
        if chain.ecc_key is not None and chain.gateway_address is None and not chain.linked:
            raise ConfigError(
                f"NOX_KMS_CHAINS__{chain_id}__GATEWAY_ADDRESS: required for chain {chain_id}"
            )
    if config.authorization_mode == "user":
        for chain_id, chain in config.chains.items():
            if not chain.linked:
                # isViewer is read from the node's own RPC: without one, no user check.
                raise ConfigError(
                    f"TKMS_NODE_AUTHORIZATION_MODE: user needs "
                    f"{chain_variable(chain_id, 'RPC_URL')} and "
                    f"{chain_variable(chain_id, 'NOX_COMPUTE_CONTRACT_ADDRESS')}"
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
            "(a node serves at least one: its GATEWAY_ADDRESS, or RPC_URL and "
            "NOX_COMPUTE_CONTRACT_ADDRESS, and ECC_KEY unless it "
            "takes part in key generation)"
        )
    return config
