"""The chains one gateway serves: ``CHAINS__<id>__…`` entries, or the older single-chain names.

Each served chain resolves to a :class:`ChainSettings`: its NoxCompute
address, RPC, timeouts, wallet and whether reads ask its contract. The rules
(each refusal a one-line :class:`ConfigError` naming the variable):

- No ``CHAINS__<id>`` entry: one chain from ``CHAIN__ID`` (or
  ``DEFAULT_CHAIN_ID``), ``CHAIN__NOX_COMPUTE_CONTRACT`` (``VERIFYING_CONTRACT``),
  ``CHAIN__RPC_URL`` and ``SIGNER__WALLET_KEY``, exactly as before v0.6.
- One entry: the older names fill what it leaves out (as they always did).
- Several entries: the older ``CHAIN__…`` names are refused (which chain would
  they mean?); ``SIGNER__WALLET_KEY`` is the wallet of each chain without its own
  ``WALLET_KEY``; without either, the chain's ``WALLET_KEY`` is named missing.
- The ACL of a chain is its NoxCompute's when it is linked (``RPC_URL`` and a
  non-zero address), the embedded one otherwise; ``ACL=embedded`` makes every
  chain's embedded, ``ACL=chain`` needs every chain linked.
- ``DEFAULT_CHAIN_ID`` (nox's default 421614 with several chains) must be served.

The models the environment fills (``ChainConfig`` for ``CHAIN__…``, ``ChainEntry``
for ``CHAINS__<id>__…``) live here too; ``config.py`` holds the rest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from tkms.envconfig import ConfigError, check_address, check_private_key

PREFIX = "NOX_HANDLE_GATEWAY_"
ZERO_ADDRESS = "0x" + "00" * 20
NOX_DEFAULT_CHAIN_ID = 421614
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*")
_OLDER = {
    "RPC_URL": "CHAIN__RPC_URL",
    "NOX_COMPUTE_CONTRACT_ADDRESS": "CHAIN__NOX_COMPUTE_CONTRACT",
    "WALLET_KEY": "SIGNER__WALLET_KEY",
}


def seconds(value: object) -> object:
    """``2``, ``2.5``, ``"2s"`` and ``"1500ms"`` are all accepted (nox writes ``"8s"``)."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError("must be a duration such as 2, 2.5s or 1500ms")
        number = float(match.group(1))
        return number / 1000 if match.group(2) == "ms" else number
    return value


class ChainConfig(BaseModel):
    """The older single chain (``CHAIN__…``), or filled from the one ``CHAINS__<id>__…``."""

    model_config = ConfigDict(extra="forbid")
    id: int = Field(421614, gt=0, lt=2**32)
    nox_compute_contract: str = ZERO_ADDRESS
    rpc_url: str | None = None  # with a non-zero contract: the on-chain ACL
    call_timeout: float = Field(8.0, gt=0, le=600)  # one whole RPC exchange
    connect_timeout: float = Field(5.0, gt=0, le=600)

    _contract = field_validator("nox_compute_contract")(check_address)
    _durations = field_validator("call_timeout", "connect_timeout", mode="before")(seconds)

    @property
    def linked(self) -> bool:
        return self.rpc_url is not None and self.nox_compute_contract.lower() != ZERO_ADDRESS


class ChainEntry(BaseModel):
    """nox v0.6's ``CHAINS__<id>__…``."""

    model_config = ConfigDict(extra="forbid")
    nox_compute_contract_address: str | None = None
    rpc_url: str | None = None
    wallet_key: SecretStr | None = None
    call_timeout: float | None = Field(None, gt=0, le=600)
    connect_timeout: float | None = Field(None, gt=0, le=600)
    s3: dict[str, Any] | None = None  # accepted; records live in the gateway's database

    _contract = field_validator("nox_compute_contract_address")(check_address)
    _key = field_validator("wallet_key")(check_private_key)
    _durations = field_validator("call_timeout", "connect_timeout", mode="before")(seconds)


@dataclass(frozen=True)
class ChainSettings:
    """One served chain, resolved (the wallet key stays a ``SecretStr``: never in a repr)."""

    id: int
    nox_compute_contract: str
    rpc_url: str | None
    call_timeout: float
    connect_timeout: float
    wallet_key: SecretStr
    chain_acl: bool  # reads ask this chain's NoxCompute (else the embedded ACL)
    v06: bool  # named by CHAINS__<id>__… (else by the older single-chain names)

    @property
    def linked(self) -> bool:
        return self.rpc_url is not None and self.nox_compute_contract.lower() != ZERO_ADDRESS

    def variable(self, name: str) -> str:
        """The variable of a chain setting, in the form (v0.6 or older) the config uses."""
        if self.v06:
            return f"{PREFIX}CHAINS__{self.id}__{name}"
        return PREFIX + _OLDER[name]


def _ids(chain_ids: Mapping[int, object]) -> str:
    return ", ".join(str(i) for i in sorted(chain_ids))


def served_chains(
    entries: Mapping[int, ChainEntry],
    old: ChainConfig,
    signer: SecretStr | None,
    *,
    acl: str | None,
    older_names: bool,
) -> dict[int, ChainSettings]:
    """Chain id → its settings, by the rules above; ConfigError on any refusal.

    ``old``: the older names' chain; ``older_names``: whether any of them is set.
    """
    chains: dict[int, ChainSettings] = {}
    if not entries:
        if signer is None:
            raise ConfigError(
                f"missing {PREFIX}SIGNER__WALLET_KEY or TKMS_GATEWAY_SIGNER__WALLET_KEY"
            )
        chains[old.id] = ChainSettings(
            old.id, old.nox_compute_contract, old.rpc_url, old.call_timeout,
            old.connect_timeout, signer, chain_acl=False, v06=False,
        )  # fmt: skip
    else:
        if len(entries) > 1 and older_names:
            raise ConfigError(
                f"{PREFIX}CHAIN__…: the older single-chain names (or VERIFYING_CONTRACT) do not"
                f" mix with several CHAINS__<id> entries ({_ids(entries)})"
            )
        for chain_id, entry in sorted(entries.items()):  # the older names fill the gaps
            key = entry.wallet_key or signer
            if key is None:
                raise ConfigError(
                    f"missing {PREFIX}CHAINS__{chain_id}__WALLET_KEY"
                    f" (or {PREFIX}SIGNER__WALLET_KEY for every chain without its own)"
                )
            chains[chain_id] = ChainSettings(
                chain_id,
                entry.nox_compute_contract_address or old.nox_compute_contract,
                entry.rpc_url or old.rpc_url,
                entry.call_timeout or old.call_timeout,
                entry.connect_timeout or old.connect_timeout,
                key,
                chain_acl=False,
                v06=True,
            )
    for chain in chains.values():
        if chain.rpc_url is not None and not chain.linked:
            contract = chain.variable("NOX_COMPUTE_CONTRACT_ADDRESS")
            raise ConfigError(f"{chain.variable('RPC_URL')} needs {contract} (a non-zero address)")
        if acl == "chain" and not chain.linked:
            raise ConfigError(
                "TKMS_GATEWAY_ACL: chain needs RPC_URL and NOX_COMPUTE_CONTRACT_ADDRESS of"
                f" chain {chain.id}"
            )
    embedded = acl == "embedded"
    return {i: replace(c, chain_acl=c.linked and not embedded) for i, c in chains.items()}


def default_chain_id(given: int | None, chains: Mapping[int, ChainSettings]) -> int:
    """The chain of ``POST /v0/secrets`` without ``chain_id`` (and of ``/v1/keyset``)."""
    if len(chains) == 1:
        ((only, _),) = chains.items()
        if given is not None and given != only:
            raise ConfigError(
                f"{PREFIX}DEFAULT_CHAIN_ID: {given} is not the configured chain {only}"
            )
        return only
    if given is None:
        if NOX_DEFAULT_CHAIN_ID in chains:
            return NOX_DEFAULT_CHAIN_ID
        raise ConfigError(
            f"{PREFIX}DEFAULT_CHAIN_ID: set it to one of the configured chains {_ids(chains)}"
            f" (nox's default {NOX_DEFAULT_CHAIN_ID} is not one)"
        )
    if given not in chains:
        raise ConfigError(
            f"{PREFIX}DEFAULT_CHAIN_ID: {given} is not one of the configured chains {_ids(chains)}"
        )
    return given
