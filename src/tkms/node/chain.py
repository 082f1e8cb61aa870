"""A node on a chain: nox-kms v0.6's start-up checks and a live view of NoxCompute.

A chain whose ``RPC_URL`` and ``NOX_COMPUTE_CONTRACT_ADDRESS`` are set is
*linked* (docs/chain.md, "The node on the chain"):

- At start (:func:`check_at_start`, blocking, before the node serves) the RPC
  must answer ``eth_chainId`` with the configured id, the contract must have
  code, ``gateway()`` must not be the zero address (and must equal
  ``GATEWAY_ADDRESS`` if that is given too), and a v0 chain's ``ECC_KEY`` must
  be the private key of ``kmsPublicKey()``, compared as points. Each refusal
  is a :class:`ConfigError`: one line naming the variable and why.
- While it serves (:class:`ChainWatch`, one per linked chain and process) a
  background task reads ``gateway()`` and ``kmsPublicKey()`` every
  ``REFRESH_INTERVAL``. A new gateway replaces the one that delegate requests
  must be signed by; a zero one is ignored with a warning.
- ``/v1/delegate`` of a linked chain is served only while the keyset's ``Y``
  equals ``kmsPublicKey()`` as read within the last two intervals
  (:meth:`ChainWatch.require_key`): otherwise 503 ``kms_key_mismatch``, or
  503 ``chain_unavailable`` when the chain cannot be read. A stale or
  mismatching view is read again on the request (at most once a second), so a
  key set on chain after the ceremony is served without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.responses import Response

from tkms.chain.contract import AsyncNoxCompute, NoxCompute, compressed_kms_public_key
from tkms.chain.errors import ChainUnavailable, Reverted
from tkms.chain.rpc import AsyncRpcClient, RpcClient
from tkms.crypto import curve
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.envconfig import ConfigError
from tkms.node.config import ZERO_ADDRESS, ChainConfig, NodeConfig, chain_variable
from tkms.node.delegation_v0 import ChainKey, Delegator
from tkms.node.delegation_v1 import PartialDelegator
from tkms.node.request_checks import chain_of_request
from tkms.web.common import json_response
from tkms.web.errors import ApiError

log = logging.getLogger("tkms.node.chain")

RETRY = 1.0
"""A mismatching or failed read is tried again on a request at most this often (s)."""


def kms_key_hex(raw: bytes) -> str | None:
    """The on-chain key in the keyset's form (compressed, 0x hex), or None if it is none."""
    key = compressed_kms_public_key(raw)
    return None if key is None else to_hex(key)


@dataclass(frozen=True)
class StartView:
    """What the start-up check read: the gateway, and the key (None: not a point)."""

    gateway: bytes
    kms_key: str | None


def _fail_read(chain_id: int, exc: ChainUnavailable) -> ConfigError:
    return ConfigError(
        f"{chain_variable(chain_id, 'RPC_URL')}: cannot read chain {chain_id}: {exc}"
        " (nox-kms has no offline mode)"
    )


def check_at_start(chain_id: int, chain: ChainConfig) -> StartView:
    """nox-kms's checks before it serves; ConfigError with one line naming why."""
    assert chain.rpc_url is not None
    contract = chain.contract()
    assert contract is not None
    where = f"the NoxCompute contract 0x{contract.hex()}"
    contract_var = chain_variable(chain_id, "NOX_COMPUTE_CONTRACT_ADDRESS")
    with RpcClient(
        chain.rpc_url, timeout=chain.call_timeout, connect_timeout=chain.connect_timeout
    ) as rpc:
        try:
            served = rpc.chain_id()
            if served != chain_id:
                raise ConfigError(
                    f"{chain_variable(chain_id, 'RPC_URL')}: the RPC serves chain {served},"
                    f" not {chain_id}"
                )
            if not rpc.get_code(contract):
                address = to_hex(contract)
                raise ConfigError(f"{contract_var}: no contract at {address} on chain {chain_id}")
            nox = NoxCompute(rpc, contract)
            gateway = nox.gateway()
            raw_key = nox.kms_public_key()
        except Reverted as exc:
            raise ConfigError(
                f"{contract_var}: 0x{contract.hex()} is not a NoxCompute contract"
                f" (its read reverted: {exc.reason})"
            ) from None
        except ChainUnavailable as exc:
            raise _fail_read(chain_id, exc) from None
    if gateway == ZERO_ADDRESS:
        raise ConfigError(f"{contract_var}: gateway() of {where} is the zero address")
    if chain.gateway_address is not None and chain.gateway() != gateway:
        raise ConfigError(
            f"{chain_variable(chain_id, 'GATEWAY_ADDRESS')}: {chain.gateway_address} is not"
            f" gateway() 0x{gateway.hex()} of {where}"
        )
    key = kms_key_hex(raw_key)
    if chain.ecc_key is not None:
        secret = curve.parse_scalar(parse_hex(chain.ecc_key.get_secret_value(), length=32))
        mine = to_hex(curve.encode_point(curve.base_mul(secret)))
        if key is None:
            raise ConfigError(
                f"{chain_variable(chain_id, 'ECC_KEY')}: kmsPublicKey() of {where} is not a"
                f" secp256k1 point ({to_hex(raw_key[:70])})"
            )
        if key != mine:
            raise ConfigError(
                f"{chain_variable(chain_id, 'ECC_KEY')}: its public key {mine} is not"
                f" kmsPublicKey() {key} of {where}"
            )
    return StartView(gateway, key)


def check_chains_at_start(config: NodeConfig) -> tuple[NodeConfig, dict[int, StartView]]:
    """The start-up check of every linked chain, and the config with their gateways."""
    views = {
        chain_id: check_at_start(chain_id, chain)
        for chain_id, chain in config.chains.items()
        if chain.linked
    }
    if not views:
        return config, views
    chains = dict(config.chains)
    for chain_id, view in views.items():
        chains[chain_id] = chains[chain_id].model_copy(
            update={"gateway_address": to_hex(view.gateway)}
        )
    return config.model_copy(update={"chains": chains}), views


class ChainWatch:
    """One linked chain's view of its NoxCompute: gateway and key, read again in time.

    ``on_gateway`` is called with each new non-zero gateway (it swaps the address
    that delegate signatures are checked against). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        chain_id: int,
        chain: ChainConfig,
        start: StartView,
        on_gateway: Callable[[bytes], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert chain.rpc_url is not None
        contract = chain.contract()
        assert contract is not None
        self.chain_id = chain_id
        self.rpc_url = chain.rpc_url
        self.contract = contract
        self.call_timeout = chain.call_timeout
        self.connect_timeout = chain.connect_timeout
        self.interval = chain.refresh_interval
        self.trust = 2 * chain.refresh_interval
        self.retry = min(RETRY, chain.refresh_interval)
        self.gateway = start.gateway
        self.kms_key = start.kms_key
        self.clock = clock
        self.read_at = clock()
        self.failed_at: float | None = None
        self.on_gateway = on_gateway
        self._nox: AsyncNoxCompute | None = None
        self._lock: asyncio.Lock | None = None
        self._unavailable = False  # for logging only the transitions
        self._zero_seen = False

    def __repr__(self) -> str:
        return f"ChainWatch(chain={self.chain_id}, contract=0x{self.contract.hex()})"

    def _contract(self) -> AsyncNoxCompute:
        if self._nox is None:
            rpc = AsyncRpcClient(
                self.rpc_url, timeout=self.call_timeout, connect_timeout=self.connect_timeout
            )
            self._nox = AsyncNoxCompute(rpc, self.contract)
        return self._nox

    async def aclose(self) -> None:
        if self._nox is not None:
            await self._nox.rpc.aclose()
            self._nox = None

    async def refresh(self) -> None:
        """Read ``gateway()`` and ``kmsPublicKey()`` now (concurrent callers share a read).

        Raises ChainUnavailable when the chain gives no trustworthy answer."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        asked = self.clock()
        async with self._lock:
            if self.read_at >= asked:
                return  # read by another caller while this one waited
            if self.failed_at is not None and self.failed_at >= asked:
                raise ChainUnavailable("the read just before this one failed")
            try:
                nox = self._contract()
                gateway = await nox.gateway()
                raw_key = await nox.kms_public_key()
            except (ChainUnavailable, Reverted) as exc:
                self.failed_at = self.clock()
                if not self._unavailable:
                    self._unavailable = True
                    log.warning("chain %d: cannot read NoxCompute: %s", self.chain_id, exc)
                if isinstance(exc, Reverted):
                    raise ChainUnavailable(f"NoxCompute reverted: {exc.reason}") from None
                raise
            if self._unavailable:
                self._unavailable = False
                log.info("chain %d: NoxCompute answers again", self.chain_id)
            self._set_gateway(gateway)
            key = kms_key_hex(raw_key)
            if key != self.kms_key:
                log.info("chain %d: kmsPublicKey() is now %s", self.chain_id, key)
            self.kms_key = key
            self.failed_at = None
            self.read_at = self.clock()

    def _set_gateway(self, gateway: bytes) -> None:
        if gateway == ZERO_ADDRESS:
            if not self._zero_seen:  # once, not at every read
                self._zero_seen = True
                log.warning(
                    "chain %d: gateway() reads the zero address; keeping 0x%s",
                    self.chain_id,
                    self.gateway.hex(),
                )
            return
        self._zero_seen = False
        if gateway == self.gateway:
            return
        log.info(
            "chain %d: gateway 0x%s replaces 0x%s", self.chain_id, gateway.hex(), self.gateway.hex()
        )
        self.gateway = gateway
        self.on_gateway(gateway)

    async def run(self) -> None:
        """Read again every interval until cancelled; a failure keeps the last view."""
        while True:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(ChainUnavailable):
                await self.refresh()

    async def require_key(self, public_key: str) -> None:
        """Pass when ``public_key`` (0x hex, compressed) is the current ``kmsPublicKey()``.

        Raises ApiError 503 ``kms_key_mismatch`` or ``chain_unavailable``; never
        passes on a read older than two refresh intervals."""
        age = self.clock() - self.read_at
        if age < self.trust and self.kms_key == public_key:
            return
        if age >= self.retry:
            failed = self.failed_at
            if failed is not None and self.clock() - failed < self.retry:
                raise self._unavailable_error()
            try:
                await self.refresh()
            except ChainUnavailable:
                raise self._unavailable_error() from None
        if self.kms_key != public_key:
            raise ApiError(
                503,
                "kms_key_mismatch",
                f"this node's keyset of chain {self.chain_id} is not kmsPublicKey() of its"
                " NoxCompute contract",
            )

    def _unavailable_error(self) -> ApiError:
        return ApiError(
            503,
            "chain_unavailable",
            f"cannot read the NoxCompute contract of chain {self.chain_id}; try again later",
        )


class NodeChains:
    """Every linked chain of a node, wired to the delegators it keeps up to date."""

    def __init__(
        self,
        config: NodeConfig,
        views: Mapping[int, StartView],
        delegator: Delegator,
        partials: PartialDelegator,
    ) -> None:
        self.delegator = delegator
        self.partials = partials
        self.watches = {
            chain_id: ChainWatch(chain_id, config.chains[chain_id], view, self._swapper(chain_id))
            for chain_id, view in views.items()
        }
        for chain_id, watch in self.watches.items():
            log.info(
                "chain %d: gateway 0x%s from NoxCompute 0x%s",
                chain_id,
                watch.gateway.hex(),
                watch.contract.hex(),
            )
            held = partials.holdings.get(chain_id)
            if held is not None and held.keyset.get("publicKey") != watch.kms_key:
                log.warning(
                    "chain %d: the held keyset's Y is not kmsPublicKey(): /v1/delegate answers"
                    " 503 kms_key_mismatch until it is",
                    chain_id,
                )

    def __repr__(self) -> str:
        return f"NodeChains({sorted(self.watches)})"

    def _swapper(self, chain_id: int) -> Callable[[bytes], None]:
        def swap(gateway: bytes) -> None:
            # Each is one dict store: a request sees the old address or the new one.
            key = self.delegator.chains.get(chain_id)
            if key is not None:
                self.delegator.chains[chain_id] = ChainKey(key.secret, gateway)
            if chain_id in self.partials.gateways:
                self.partials.gateways[chain_id] = gateway

        return swap

    async def require_v1(self, chain_id_raw: str | None) -> None:
        """Before a v1 partial: the chain's keyset is its contract's kmsPublicKey()."""
        chain_id = chain_of_request(chain_id_raw, self.partials.gateways)
        watch = self.watches.get(chain_id)
        held = self.partials.holdings.get(chain_id)
        if watch is None or held is None:
            return  # not linked, or no keyset yet (the delegate answers dkg_incomplete)
        await watch.require_key(str(held.keyset.get("publicKey")))

    async def health(self) -> Response:
        checks: dict[str, str] = {}
        for chain_id, watch in sorted(self.watches.items()):
            held = self.partials.holdings.get(chain_id)
            if held is None:
                continue
            try:
                await watch.require_key(str(held.keyset.get("publicKey")))
            except ApiError as exc:
                checks[f"chain:{chain_id}"] = exc.code
        if checks:
            return json_response({"status": "degraded", "checks": checks}, status=503)
        return json_response({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(watch.run()) for watch in self.watches.values()]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for watch in self.watches.values():
                await watch.aclose()
