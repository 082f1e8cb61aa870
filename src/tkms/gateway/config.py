"""Gateway configuration from the environment (nox gateway names, or ``TKMS_GATEWAY_``).

Names the Nox Handle Gateway already has keep their meaning under
``NOX_HANDLE_GATEWAY_``: v0.6's ``CHAINS__<id>__{NOX_COMPUTE_CONTRACT_ADDRESS,
RPC_URL, WALLET_KEY}`` (one entry per served chain; ``CHAINS__<id>__S3__…`` is
accepted and reported as not supported), ``DEFAULT_CHAIN_ID``,
``RUNNER_ADDRESS`` (the runner's wallet: docs/runner.md),
``SERVER__HOST``, ``SERVER__PORT``, ``SERVER__CORS_ALLOWED_HEADERS`` (a comma
list, or a JSON array), ``KMS__URL``, ``KMS__SIGNER_ADDRESS``,
``MAX_HANDLES_PER_REQUEST`` (the largest status batch, 1,000; a chain's
``CHAINS__<id>__S3__MAX_HANDLES_PER_REQUEST`` overrides it); and the older
single-chain names ``CHAIN__ID``, ``CHAIN__NOX_COMPUTE_CONTRACT``,
``CHAIN__RPC_URL`` and ``SIGNER__WALLET_KEY``. Every variable also exists
with the ``TKMS_GATEWAY_`` prefix, which wins, and as ``<VAR>_FILE``. A
gateway configured by a ``NOX_HANDLE_GATEWAY_`` name answers ``GET /`` as nox's
does (``"service": "Handle Gateway"``; ``SERVICE_NAME`` sets another).

One gateway serves every configured chain: :meth:`GatewayConfig.served` is the
mapping chain id → :class:`~tkms.gateway.config_chains.ChainSettings` (the rules
of resolution, wallets, per-chain ACL and the default chain are in
``gateway/config_chains.py``). A chain with both ``RPC_URL`` and a non-zero
NoxCompute address is *linked*: its ACL is the contract's
(``gateway/chain_acl.py``) and the start-up checks of ``gateway/chain_start.py``
run for it. ``ACL`` (``chain`` or ``embedded``) says it for every chain;
``chain`` needs every chain linked.

tkms adds ``KMS__PUBLIC_KEY`` (the trusted ``Y``; only with one chain: with
several, each chain's ``Y`` is its ``kmsPublicKey()``), ``NODES`` (the
threshold committee, the same for every chain, which holds one key per chain:
JSON ``[{"index", "url", "signer"}]`` or ``NODES__<i>__URL``/``…__SIGNER``),
``SPARE``, ``DEADLINE``, ``NODE_TIMEOUT``, ``ADMISSION__…`` (reads in flight and
queued: gateway/admission.py), ``ACL_CACHE_SECONDS`` (how long the chain ACL keeps a
true answer: 60; 0: off), ``DATABASE_URL``, ``STATE_DIR``,
``MAX_BODY_BYTES``, ``MAX_RECORD_BYTES``, ``RATE_LIMIT__…`` (the anonymous
writes' per-client token bucket), ``VERIFYING_CONTRACT`` (an alias of
``CHAIN__NOX_COMPUTE_CONTRACT``) and ``SERVER__HTTP__<NAME>`` (the connection
limits of :class:`tkms.web.limits.HttpLimits`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from tkms.crypto import curve
from tkms.crypto.encoding import EncodingError, ascii_decimal, parse_hex
from tkms.envconfig import ConfigError, check_address, check_directory, validate
from tkms.gateway.admission import AdmissionConfig
from tkms.gateway.config_chains import (
    ZERO_ADDRESS,
    ChainConfig,
    ChainEntry,
    ChainSettings,
    default_chain_id,
    served_chains,
)
from tkms.gateway.config_chains import seconds as _seconds
from tkms.web.server_config import ServerConfig

PREFIXES = ("NOX_HANDLE_GATEWAY_", "TKMS_GATEWAY_")
NOX_SERVICE_NAME = "Handle Gateway"
# One bind parameter per handle in storage.existing: well under what SQLite and PostgreSQL take.
MAX_HANDLES_CEILING = 10_000
# Bytes one handle takes in a status batch: "0x" + 64 hex, quotes, comma and a space.
STATUS_BYTES_PER_HANDLE = 72
__all__ = [
    "ZERO_ADDRESS",
    "ChainConfig",
    "ChainEntry",
    "ChainSettings",
    "GatewayConfig",
    "load_gateway_config",
]


def _header_list(value: object) -> object:
    """nox's comma list (``content-type,authorization``), or a JSON array."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            return _json_if_text(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _json_if_text(value: object) -> object:
    """Lists and maps come from one variable as JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError("must be JSON") from None
    return value


class GatewayServerConfig(ServerConfig):
    """The shared server settings, on nox's port 3000, plus CORS."""

    port: int = Field(3000, ge=0, le=65535)
    cors_allowed_headers: list[str] = Field(
        default_factory=lambda: ["content-type", "authorization"]
    )

    _cors = field_validator("cors_allowed_headers", mode="before")(_header_list)

    @field_validator("cors_allowed_headers")
    @classmethod
    def _tokens(cls, headers: list[str]) -> list[str]:
        for header in headers:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
                raise ValueError("each entry must be an HTTP header name")
        return headers


def _check_key(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        try:
            curve.parse_scalar(parse_hex(value.get_secret_value(), length=32))
        except (EncodingError, curve.CurveError):
            raise ValueError("must be a 32-byte hex secp256k1 private key in [1, n-1]") from None
    return value


class KmsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None  # a single nox-compatible node (v0)
    signer_address: str | None = None  # its wallet, which signs DelegateResponseProof
    public_key: str | None = None  # the trusted Y (compressed SEC1)

    _signer = field_validator("signer_address")(check_address)

    @field_validator("public_key")
    @classmethod
    def _point(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                curve.parse_point(parse_hex(value, length=33))
            except (EncodingError, curve.CurveError):
                raise ValueError("must be a 33-byte compressed secp256k1 point") from None
        return value


class SignerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wallet_key: SecretStr

    _key = field_validator("wallet_key")(_check_key)


class NodeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    signer: str

    _signer = field_validator("signer")(check_address)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+/?", value):
            raise ValueError("must be an http(s) base URL without a path")
        return value.rstrip("/")


class RateLimitConfig(BaseModel):
    """A token bucket per client on the write routes (``POST /v0/secrets``, ``/v1/acl/grant``).

    A client is its peer IP address (an IPv6 one by its /64); with
    ``trust_forwarded_for`` it is the last address of ``X-Forwarded-For``, the
    one the reverse proxy in front of the gateway saw. At most ``max_clients``
    buckets are kept (the least recently seen go first). Each worker process
    counts for itself. ``writes_per_minute = 0`` turns the limit off.
    """

    model_config = ConfigDict(extra="forbid")
    writes_per_minute: float = Field(600, ge=0, le=10**6)
    burst: int = Field(120, ge=1, le=10**6)
    max_clients: int = Field(10_000, ge=1, le=10**7)
    trust_forwarded_for: bool = False


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service_name: str = "tkms-gateway"
    server: GatewayServerConfig = GatewayServerConfig()
    # Before ``signer``: a bad CHAINS__<id>__WALLET_KEY is named by its own variable.
    chains: dict[int, ChainEntry] = Field(default_factory=dict)
    default_chain_id: int | None = Field(None, gt=0, lt=2**32)
    runner_address: str | None = None
    # The runner's routes (docs/runner.md): operands per statement and results per
    # request; how far a statement's blockNumber may be from a linked chain's head.
    max_compute_handles: int = Field(128, ge=1, le=1024)
    runner_max_block_age: int = Field(256, ge=1, le=10**6)
    acl: Literal["chain", "embedded"] | None = None
    # The chain ACL keeps a true isViewer / isPubliclyDecryptable this long (NoxCompute has
    # no revoke; the TTL bounds a grant reorged away). 0: every read asks the chain.
    acl_cache_seconds: float = Field(60.0, ge=0, le=3600)
    chain: ChainConfig = ChainConfig()
    kms: KmsConfig = KmsConfig()
    # Required unless every chain has its own CHAINS__<id>__WALLET_KEY (config_chains).
    signer: SignerConfig | None = None
    nodes: dict[int, NodeEntry] = Field(default_factory=dict)
    spare: int = Field(1, ge=0, le=64)
    deadline: float = Field(2.0, gt=0, le=60)
    node_timeout: float = Field(1.5, gt=0, le=60)
    # protocol.md §4 asks every node; by default only t + spare, the rest on a failure
    # or when late (docs/gateway.md §8). True: every node, as §4.
    ask_all_nodes: bool = False
    # Reads asking the nodes at once, and how many wait (gateway/admission.py).
    admission: AdmissionConfig = AdmissionConfig()
    # How often the nodes' keyset is read again, to learn a reshare once signed (0: never).
    keyset_refresh: float = Field(2.0, ge=0, le=3600)
    database_url: str | None = None
    state_dir: Path = Path("gateway-state")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # The largest plaintext POST /v0/secrets stores (a value of type bytes or string;
    # every other type is at most 32 bytes). Its hex must also fit MAX_BODY_BYTES.
    max_record_bytes: int = Field(16 * 1024, ge=32, le=8 * 1024 * 1024)
    rate_limit: RateLimitConfig = RateLimitConfig()
    # POST /v0/public/handles/status: nox's S3__MAX_HANDLES_PER_REQUEST, for every chain
    # (a chain's CHAINS__<id>__S3__MAX_HANDLES_PER_REQUEST overrides it: max_handles).
    max_handles_per_request: int = Field(1000, ge=1, le=MAX_HANDLES_CEILING)
    # Each linked chain's kmsPublicKey(), set by chain_start (never from the environment).
    _chain_keys: dict[int, str] = PrivateAttr(default_factory=dict)

    _durations = field_validator(
        "deadline", "node_timeout", "keyset_refresh", "acl_cache_seconds", mode="before"
    )(_seconds)
    _state_dir = field_validator("state_dir")(check_directory)
    _runner = field_validator("runner_address")(check_address)

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if isinstance(data, dict) and "verifying_contract" in data:
            data = dict(data)
            chain = dict(data.get("chain") or {})
            chain.setdefault("nox_compute_contract", data.pop("verifying_contract"))
            data["chain"] = chain
        chains = data.get("chains") if isinstance(data, dict) else None
        if isinstance(chains, dict) and len(chains) == 1 and "signer" not in data:
            # v0.6 keeps the wallet per chain; one chain's is also ``signer`` (as before).
            ((entry,),) = (chains.values(),)
            if isinstance(entry, dict) and entry.get("wallet_key"):
                data = {**data, "signer": {"wallet_key": entry["wallet_key"]}}
        return data

    @model_validator(mode="after")
    def _one_chain(self) -> GatewayConfig:
        """A single ``CHAINS__<id>`` entry is also ``chain`` (the older names' view of it)."""
        if len(self.chains) == 1:
            ((chain_id, entry),) = self.chains.items()
            old = self.chain
            self.chain = ChainConfig(
                id=chain_id,
                nox_compute_contract=entry.nox_compute_contract_address or old.nox_compute_contract,
                rpc_url=entry.rpc_url or old.rpc_url,
                call_timeout=entry.call_timeout or old.call_timeout,
                connect_timeout=entry.connect_timeout or old.connect_timeout,
            )
        elif not self.chains and self.default_chain_id and "id" not in self.chain.model_fields_set:
            self.chain = self.chain.model_copy(update={"id": self.default_chain_id})
        return self

    def served(self) -> dict[int, ChainSettings]:
        """Chain id → its settings (load_gateway_config has checked they resolve)."""
        return served_chains(
            self.chains,
            self.chain,
            self.signer.wallet_key if self.signer is not None else None,
            acl=self.acl,
            older_names="chain" in self.model_fields_set,
        )

    @property
    def default_chain(self) -> int:
        return default_chain_id(self.default_chain_id, self.served())

    @property
    def chain_acl(self) -> bool:
        """Whether some chain's reads ask its NoxCompute (linked, unless ``ACL=embedded``)."""
        return any(chain.chain_acl for chain in self.served().values())

    def trusted_key(self, chain_id: int) -> str | None:
        """The ``Y`` of a chain: its ``kmsPublicKey()`` (after chain_start), else the configured."""
        return self._chain_keys.get(chain_id) or self.kms.public_key

    def with_chain_keys(self, keys: Mapping[int, str]) -> GatewayConfig:
        copy = self.model_copy()
        copy._chain_keys = {**self._chain_keys, **keys}
        return copy

    @field_validator("nodes", mode="before")
    @classmethod
    def _node_list(cls, value: object) -> object:
        value = _json_if_text(value)
        if isinstance(value, list):
            nodes: dict[object, object] = {}
            for item in value:
                if not isinstance(item, dict) or "index" not in item:
                    raise ValueError("each node needs an index, a url and a signer")
                rest = {k: v for k, v in item.items() if k != "index"}
                nodes[item["index"]] = rest
            if len(nodes) != len(value):
                raise ValueError("node indices must be distinct")
            return nodes
        return value

    @field_validator("nodes")
    @classmethod
    def _indices(cls, nodes: dict[int, NodeEntry]) -> dict[int, NodeEntry]:
        for index in nodes:
            if not 1 <= index <= 255:
                raise ValueError(f"node index {index} is not in 1..255")
        return dict(sorted(nodes.items()))

    def unsupported(self) -> list[str]:
        """Accepted nox settings this gateway does not act on (logged once at start)."""
        return [
            f"CHAINS__{chain_id}__S3__{name.upper()}"
            for chain_id, entry in sorted(self.chains.items())
            for name in sorted(entry.s3 or {})
            if name != "max_handles_per_request"
        ]

    def max_handles(self, chain_id: int) -> int:
        """The largest status batch of a chain: its S3 override, else MAX_HANDLES_PER_REQUEST."""
        entry = self.chains.get(chain_id)
        override = (entry.s3 or {}).get("max_handles_per_request") if entry else None
        if override is None:
            return self.max_handles_per_request
        value = ascii_decimal(str(override), max_digits=5)
        if value is None or not 1 <= value <= MAX_HANDLES_CEILING:
            raise ConfigError(
                f"NOX_HANDLE_GATEWAY_CHAINS__{chain_id}__S3__MAX_HANDLES_PER_REQUEST: "
                f"must be an integer in 1..{MAX_HANDLES_CEILING}"
            )
        return value

    def status_body_bytes(self) -> int:
        """The body limit of the status route: the largest batch must fit (64 KiB does not)."""
        largest = max(self.max_handles(chain_id) for chain_id in self.served())
        return max(self.max_body_bytes, largest * STATUS_BYTES_PER_HANDLE + 1024)

    @property
    def threshold_mode(self) -> bool:
        return bool(self.nodes)

    @property
    def single_node_mode(self) -> bool:
        return self.kms.url is not None

    def database_target(self) -> str:
        """The ``postgresql://`` URL, or the SQLite file (under ``state_dir`` by default)."""
        if self.database_url:
            return self.database_url
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"TKMS_GATEWAY_STATE_DIR: cannot create it: {exc.strerror}") from None
        return str(self.state_dir / "gateway.sqlite3")


def load_gateway_config(environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate; raises ConfigError with one line naming the variable."""
    config = validate(GatewayConfig, PREFIXES, environ, _missing_kms)
    no_kms = not config.threshold_mode and not config.single_node_mode
    if config.signer is None and not config.chains:
        missing = " or ".join(prefix + "SIGNER__WALLET_KEY" for prefix in PREFIXES)
        kms = _missing_kms({}) if no_kms else []
        raise ConfigError(f"missing {', '.join([missing, *kms])}")
    chains = config.served()
    config.default_chain  # noqa: B018 -- its refusal, now
    if no_kms:
        raise ConfigError(
            "TKMS_GATEWAY_NODES: configure the threshold committee, "
            "or NOX_HANDLE_GATEWAY_KMS__URL for a single node"
        )
    if config.kms.public_key is not None and len(chains) > 1:
        raise ConfigError(
            f"TKMS_GATEWAY_KMS__PUBLIC_KEY: only with one chain ({len(chains)} are configured:"
            " each chain's Y is its kmsPublicKey())"
        )
    if config.single_node_mode:
        names = []
        if config.kms.signer_address is None:
            names.append("NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS")
        # On a chain the key is kmsPublicKey() (read by chain_start at start).
        unlinked = [chain for chain in chains.values() if not chain.linked]
        if config.kms.public_key is None and unlinked:
            names.append(
                "NOX_HANDLE_GATEWAY_KMS__PUBLIC_KEY"
                if len(chains) == 1
                else f"{unlinked[0].variable('RPC_URL')} (each chain's key is its kmsPublicKey())"
            )
        if names:
            raise ConfigError(f"missing {', '.join(names)} (required with KMS__URL)")
    env = os.environ if environ is None else environ
    named = {name.removeprefix(p) for name in env for p in PREFIXES if name.startswith(p)}
    if "SERVICE_NAME" not in named and any(n.startswith(PREFIXES[0]) for n in env):
        # Configured as a Nox Handle Gateway: GET / answers as one (nox-compat.md).
        config = config.model_copy(update={"service_name": NOX_SERVICE_NAME})
    for chain_id in config.served():
        config.max_handles(chain_id)  # a bad S3__MAX_HANDLES_PER_REQUEST refuses the start
    return config


def _missing_kms(tree: dict[str, Any]) -> list[str]:
    """The KMS side, when other variables are missing too (all are named in one line)."""
    if tree.get("nodes") or (tree.get("kms") or {}).get("url"):
        return []
    return ["TKMS_GATEWAY_NODES (or NOX_HANDLE_GATEWAY_KMS__URL for a single node)"]
