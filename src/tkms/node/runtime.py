"""What a node needs to serve threshold requests, built from its configuration.

The share (if a ceremony completed) opens from the sealed keystore of the
state directory; without a state directory the node serves v0 only and its
v1 routes say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tkms.crypto.encoding import parse_address, parse_hex
from tkms.crypto.wallet import Wallet
from tkms.envconfig import ConfigError
from tkms.node import lifecycle_store
from tkms.node.config import NodeConfig
from tkms.node.delegation_v1 import PartialDelegator
from tkms.node.dkg_service import DkgService, holding_from
from tkms.node.keystore import KeystoreError, SealedKeystore
from tkms.node.reshare_service import ReshareService


@dataclass
class ThresholdRuntime:
    partials: PartialDelegator
    dkg: DkgService | None
    reshare: ReshareService | None = None


def build_threshold_runtime(config: NodeConfig, wallet: Wallet) -> ThresholdRuntime:
    gateways = {
        chain_id: chain.gateway()
        for chain_id, chain in config.chains.items()
        if chain.gateway_address is not None
    }
    partials = PartialDelegator(wallet, gateways)
    if config.state_dir is None:
        return ThresholdRuntime(partials, None)
    if config.sealing_key is None:
        raise ConfigError("TKMS_NODE_SEALING_KEY: required with TKMS_NODE_STATE_DIR")
    try:
        keystore = SealedKeystore(
            config.state_dir,
            parse_hex(config.sealing_key.get_secret_value(), length=32),
            wallet.address,
        )
        secrets = keystore.load_or_create()
        # A reshare cut by the restart is aborted (epoch e serves on); due shares destroyed.
        if lifecycle_store.on_restart(secrets, time.time()):
            keystore.save(secrets)
    except (ValueError, KeystoreError) as exc:
        raise ConfigError(f"TKMS_NODE_SEALING_KEY: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"TKMS_NODE_STATE_DIR: {exc.filename}: {exc.strerror}") from None
    for chain_id, share in secrets.chains.items():
        if chain_id in gateways:
            partials.holdings[chain_id] = holding_from(share)
    for chain_id, retired in secrets.retired.items():
        if chain_id in gateways:
            partials.previous[chain_id] = {e: holding_from(r.share) for e, r in retired.items()}
    admin = parse_address(config.dkg_admin_address) if config.dkg_admin_address else None
    dkg = DkgService(wallet, keystore, secrets, partials, admin)
    reshare = ReshareService(dkg, grace=config.reshare_grace)
    reshare.schedule_destruction()
    return ThresholdRuntime(partials, dkg, reshare)
