"""``tkms import-key``: a nox-kms key becomes the 1-of-1 committee of one node.

The operator runs it with the node's own environment (wallet, state directory,
sealing key) and the key where nox-kms reads it
(``NOX_KMS_CHAINS__<id>__ECC_KEY`` or its ``…_FILE``). It seals into that
node's keystore the share ``x`` itself, a keyset of one node (``Y_1 = Y``,
epoch 0, threshold 1) signed by the node's wallet, and the lifecycle
``serving 0``; the node then deals it to a t-of-n committee in a normal
reshare (``tkms reshare``), in which it is the only dealer and not a new
member: at the switch it leaves, and its share (the whole key) is destroyed
after the grace period. ``Y`` is unchanged, so are every record and the
contract's ``kmsPublicKey()``.
"""

from __future__ import annotations

from typing import Any

from tkms.crypto import curve
from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg.lifecycle import Event
from tkms.dkg.reshare_config import single_keyset
from tkms.envconfig import ConfigError
from tkms.node import lifecycle_store
from tkms.node.config import NodeConfig
from tkms.node.keystore import ChainShare, KeystoreError, SealedKeystore


def import_key(config: NodeConfig, chain_id: int, secret: bytes) -> dict[str, Any]:
    """Seal ``secret`` as this node's 1-of-1 key of ``chain_id``; returns the signed keyset."""
    if config.state_dir is None or config.sealing_key is None:
        raise ConfigError("TKMS_NODE_STATE_DIR and TKMS_NODE_SEALING_KEY: both are required")
    if chain_id not in config.chains:
        raise ConfigError(f"chain {chain_id} is not configured on this node")
    x = int.from_bytes(secret)
    if not 1 <= x < curve.ORDER:
        raise ConfigError("ECC_KEY: not a valid secp256k1 private key")
    wallet = Wallet(parse_hex(config.wallet_key.get_secret_value(), length=32))
    try:
        keystore = SealedKeystore(
            config.state_dir,
            parse_hex(config.sealing_key.get_secret_value(), length=32),
            wallet.address,
        )
        secrets = keystore.load_or_create()
    except (ValueError, KeystoreError) as exc:
        raise ConfigError(f"TKMS_NODE_SEALING_KEY: {exc}") from None
    if chain_id in secrets.chains or chain_id in secrets.lifecycle:
        raise ConfigError(f"this node already has a key state for chain {chain_id}")
    keyset = single_keyset(curve.base_mul(x), wallet.address)
    signature = wallet.sign_digest(keyset.digest(chain_id))
    body = keyset.to_json(chain_id=chain_id, signatures={1: signature})
    lifecycle_store.apply(secrets, chain_id, Event.IMPORT)
    secrets.chains[chain_id] = ChainShare(1, keyset.epoch, 1, x, body)
    keystore.save(secrets)
    return body
