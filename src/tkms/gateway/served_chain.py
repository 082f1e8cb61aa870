"""One chain a gateway serves: its NoxCompute, its wallet, its ACL and its side of the KMS.

A gateway serves several chains from one process (nox v0.6): every request is
routed to one :class:`ServedChain` (by its handle's chain, or ``chain_id``),
whose wallet signs the answer in that chain's domains and whose KMS side asks
the nodes for that chain's key (the committee is the same for every chain;
each node holds one key per chain id). The database is shared: records carry
their chain id, which is also in their handle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tkms.crypto import curve
from tkms.crypto.wallet import Wallet
from tkms.gateway.acl import AccessControl, EmbeddedAcl
from tkms.gateway.chain_acl import ChainAcl
from tkms.gateway.fanout import Fanout
from tkms.gateway.keysets import KeysetSource, KeysetUnavailable, LoadedKeyset
from tkms.gateway.single import SingleNode
from tkms.web.errors import ApiError

log = logging.getLogger("tkms.gateway")


def not_configured(what: str) -> ApiError:
    return ApiError(501, "not_configured", what)


@dataclass(frozen=True)
class KmsSide:
    """How the gateway reaches the KMS: a committee (fan-out and its keyset), one node, or both.

    ``trusted`` is the configured ``Y``: records are encrypted to it, and the
    committee's keyset is checked against it.
    """

    fanout: Fanout | None = None
    keysets: KeysetSource | None = None
    single: SingleNode | None = None
    trusted: bytes | None = None


@dataclass(frozen=True)
class ServedChain:
    """One chain's collaborators. Exactly one of ``access`` and ``chain_acl`` is set.

    ``access`` answers reads without a chain (the embedded ACL, or an adapter a
    test or the benchmark gives); ``acl`` is the embedded ACL itself, behind the
    grant and listing routes (None on a chain, or with an adapter: 501).
    """

    chain_id: int
    contract: bytes  # NoxCompute: the domain of handle proofs and user statements
    wallet: Wallet
    kms: KmsSide
    access: AccessControl | None = None
    acl: EmbeddedAcl | None = None
    chain_acl: ChainAcl | None = None  # NoxCompute answers isViewer (and ERC-1271)

    def __post_init__(self) -> None:
        if (self.access is None) == (self.chain_acl is None):
            raise ValueError("give exactly one of access (embedded) and chain_acl")

    def __repr__(self) -> str:
        return f"ServedChain({self.chain_id}, signer=0x{self.wallet.address.hex()})"

    async def aclose(self) -> None:
        for closable in (self.kms.fanout, self.kms.single, self.chain_acl, self.kms.keysets):
            if closable is not None:
                await closable.aclose()

    async def keyset(self) -> LoadedKeyset:
        if self.kms.keysets is None:
            raise not_configured("this gateway fronts a single node: there is no keyset")
        try:
            return await self.kms.keysets.get()
        except KeysetUnavailable as exc:
            log.warning("chain %d: %s", self.chain_id, exc)
            raise ApiError(503, "keyset_unavailable", str(exc)) from None

    async def public_key(self) -> curve.Point:
        """``Y`` to encrypt to: the configured one, else the committee's checked keyset."""
        if self.kms.trusted is not None:
            return curve.parse_point(self.kms.trusted)
        return (await self.keyset()).keyset.public_key
