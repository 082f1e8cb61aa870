"""The gateway's start-up checks against each linked chain's NoxCompute, as nox's gateway v0.6.

For every *linked* chain (``RPC_URL`` and the NoxCompute address set) the
gateway refuses to start, with a :class:`ConfigError` (one line naming that
chain's variable, exit 2), when the RPC cannot be read or serves another
chain, the address has no code, the chain's wallet is not ``gateway()``,
``kmsPublicKey()`` is not a point, the configured ``KMS__PUBLIC_KEY`` (one
chain only) is another point, or (threshold mode) a node already serves a
keyset of that chain whose ``Y`` is another point. Without a configured key
the gateway encrypts to each chain's ``kmsPublicKey()``, and the committee's
keyset of the chain is checked against it on every load. Runs with the
blocking client, before the app is built (and in each worker process).
"""

from __future__ import annotations

import logging

import httpx

from tkms.chain.contract import NoxCompute, compressed_kms_public_key
from tkms.chain.errors import ChainUnavailable, Reverted
from tkms.chain.rpc import RpcClient
from tkms.crypto.encoding import EncodingError, parse_address, parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.gateway.config import ChainSettings, GatewayConfig

log = logging.getLogger("tkms.gateway.chain")


def check_chain_at_start(config: GatewayConfig) -> GatewayConfig:
    """The config with each linked chain's ``kmsPublicKey()``; ConfigError on any refusal."""
    keys = {
        chain_id: to_hex(_check_chain(config, chain))
        for chain_id, chain in config.served().items()
        if chain.linked
    }
    return config.with_chain_keys(keys) if keys else config


def _check_chain(config: GatewayConfig, chain: ChainSettings) -> bytes:
    """One linked chain's checks; its ``kmsPublicKey()``, compressed."""
    assert chain.rpc_url is not None
    chain_id = chain.id
    contract = parse_address(chain.nox_compute_contract)
    where = f"the NoxCompute contract {to_hex(contract)} on chain {chain_id}"
    contract_var = chain.variable("NOX_COMPUTE_CONTRACT_ADDRESS")
    rpc_var = chain.variable("RPC_URL")
    with RpcClient(
        chain.rpc_url, timeout=chain.call_timeout, connect_timeout=chain.connect_timeout
    ) as rpc:
        try:
            served = rpc.chain_id()
            if served != chain_id:
                raise ConfigError(f"{rpc_var}: the RPC serves chain {served}, not {chain_id}")
            if not rpc.get_code(contract):
                raise ConfigError(f"{contract_var}: no contract at {to_hex(contract)}")
            nox = NoxCompute(rpc, contract)
            gateway = nox.gateway()
            raw_key = nox.kms_public_key()
        except Reverted as exc:
            raise ConfigError(
                f"{contract_var}: {to_hex(contract)} is not a NoxCompute contract"
                f" (its read reverted: {exc.reason})"
            ) from None
        except ChainUnavailable as exc:
            raise ConfigError(
                f"{rpc_var}: cannot read chain {chain_id}: {type(exc).__name__}"
            ) from None
    wallet = Wallet(parse_hex(chain.wallet_key.get_secret_value(), length=32))
    if wallet.address != gateway:
        raise ConfigError(
            f"{chain.variable('WALLET_KEY')}: the gateway wallet {to_hex(wallet.address)}"
            f" is not gateway() {to_hex(gateway)} of {where}"
        )
    on_chain = compressed_kms_public_key(raw_key)
    if on_chain is None:
        raise ConfigError(
            f"{contract_var}: kmsPublicKey() of {where} is not a secp256k1 point"
            f" ({to_hex(raw_key[:70])})"
        )
    if config.kms.public_key is not None:
        configured = parse_hex(config.kms.public_key, length=33)
        if configured != on_chain:
            raise ConfigError(
                f"TKMS_GATEWAY_KMS__PUBLIC_KEY: {to_hex(configured)} is not kmsPublicKey()"
                f" {to_hex(on_chain)} of {where}"
            )
    _check_served_keyset(config, chain_id, on_chain, where)
    return on_chain


def _check_served_keyset(config: GatewayConfig, chain_id: int, on_chain: bytes, where: str) -> None:
    """A committee whose served keyset has another ``Y`` is refused at start.

    The keyset is read unverified: only to refuse, never to trust (the gateway
    checks it against ``kmsPublicKey()`` on every load). A node that does not
    answer yet (the DKG may run after the gateway starts) is no refusal.
    """
    for index, node in config.nodes.items():
        try:
            response = httpx.get(
                node.url + "/v1/keyset",
                params={"chain_id": str(chain_id)},
                timeout=config.node_timeout,
                trust_env=False,
            )
            served = parse_hex(response.json().get("publicKey"), length=33)
        except (httpx.HTTPError, ValueError, AttributeError, EncodingError):
            continue
        if response.status_code != 200:
            continue
        if served != on_chain:
            raise ConfigError(
                f"TKMS_GATEWAY_NODES: node {index} serves a keyset whose Y {to_hex(served)} is"
                f" not kmsPublicKey() {to_hex(on_chain)} of {where}"
            )
        return
    if config.nodes:
        log.warning(
            "chain %d: no node served a keyset at start; it is checked against kmsPublicKey()"
            " on use",
            chain_id,
        )
