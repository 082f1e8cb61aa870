"""The devnet's chain: anvil on the port after the nodes', NoxCompute and the demo app.

anvil (``tkms.chain.anvil``, from node_modules) runs with the devnet's chain id on
``base + nodes + 1`` and keeps its state in ``state/chain/state.json`` (anvil's
``--state``: loaded at start, written when anvil exits), with its log beside it.
The devnet's admin key deploys NoxCompute (admin and upgrader: the admin key;
``gateway()``: the dev gateway wallet) and then the DemoApp. Restarted, the devnet
finds both contracts in the saved state and reuses them; without the state file it
deploys again, and since the admin key's first two transactions make them, they land
at the same addresses (the handles registered before are gone with the state).

Every start funds the admin and the dev users (``anvil_setBalance``) and makes sure
``gateway()`` is the dev gateway wallet; :meth:`DevnetChain.set_kms_public_key`
sets ``kmsPublicKey()`` (single node: the node's key, before it starts; threshold:
the ceremony's ``Y``, right after it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tkms.chain.anvil import Anvil, AnvilError
from tkms.chain.contract import DemoApp, NoxCompute, deploy_demo_app, deploy_nox_compute
from tkms.chain.errors import ChainError
from tkms.chain.rpc import RpcClient
from tkms.chain.tx import TxSigner
from tkms.crypto import curve
from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import address_hex
from tkms.devnet.keys import KeyDir
from tkms.envconfig import ConfigError
from tkms.keyfiles import private_dir

FUND_WEI = 10_000 * 10**18  # each dev account's balance at every start
CHAIN_DIR = "chain"
# Until the ceremony has made Y, the constructor needs some valid point: G.
PLACEHOLDER_KEY = curve.encode_point(curve.base_mul(1))


def chain_port(base_port: int, nodes: int) -> int:
    """The gateway is on base, the nodes on base+1…base+n, anvil on base+n+1."""
    return base_port + nodes + 1


@dataclass
class DevnetChain:
    anvil: Anvil
    rpc: RpcClient
    admin: TxSigner
    nox: NoxCompute
    app: DemoApp

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def nox_address(self) -> str:
        return address_hex(self.nox.address)

    @property
    def app_address(self) -> str:
        return address_hex(self.app.address)

    def node_env(self, prefix: str, chain_id: int) -> dict[str, str]:
        """The variables that link a node to this chain (``prefix``: NOX_KMS_ or TKMS_NODE_)."""
        return {
            f"{prefix}CHAINS__{chain_id}__RPC_URL": self.url,
            f"{prefix}CHAINS__{chain_id}__NOX_COMPUTE_CONTRACT_ADDRESS": self.nox_address,
        }

    def set_kms_public_key(self, public_key: str | bytes) -> None:
        key = parse_hex(public_key, length=33) if isinstance(public_key, str) else public_key
        try:
            if self.nox.kms_public_key() != key:
                self.nox.set_kms_public_key(self.admin, key)
        except ChainError as exc:
            raise ConfigError(f"the devnet's chain: cannot set kmsPublicKey(): {exc}") from None

    def stop(self) -> None:
        self.rpc.close()
        self.anvil.stop()


def start_chain(
    state_dir: Path,
    keys: KeyDir,
    *,
    port: int,
    chain_id: int,
    users: tuple[str, ...],
    previous: tuple[str, str] | None,
    kms_public_key: str | None,
) -> DevnetChain:
    """anvil with the contracts deployed (or found again: ``previous`` = (nox, app))."""
    directory = private_dir(state_dir / CHAIN_DIR)
    try:
        anvil = Anvil.start(
            chain_id=chain_id,
            port=port,
            workdir=directory,
            state=(directory / "state.json").resolve(),
        )
    except AnvilError as exc:
        raise ConfigError(f"the devnet's chain (anvil, port {port}) did not start: {exc}") from None
    rpc = anvil.rpc()
    try:
        admin_wallet = keys.wallet("admin")
        for name in ("admin", *users):
            balance = hex(FUND_WEI)
            rpc.request("anvil_setBalance", [address_hex(keys.wallet(name).address), balance])
        admin = TxSigner(rpc, admin_wallet, chain_id=chain_id)
        gateway = keys.wallet("gateway-wallet").address
        key = parse_hex(kms_public_key, length=33) if kms_public_key else PLACEHOLDER_KEY
        found = _existing(rpc, previous)
        if found is None:
            nox = deploy_nox_compute(
                admin,
                admin=admin.address,
                upgrader=admin.address,
                kms_public_key=key,
                gateway=gateway,
            )
            app = deploy_demo_app(admin, nox.address)
        else:
            nox, app = NoxCompute(rpc, found[0]), DemoApp(rpc, found[1])
        if nox.gateway() != gateway:
            nox.set_gateway(admin, gateway)
        chain = DevnetChain(anvil, rpc, admin, nox, app)
        if kms_public_key:
            chain.set_kms_public_key(key)
        return chain
    except ChainError as exc:
        rpc.close()
        anvil.stop()
        raise ConfigError(f"the devnet's chain: {exc}; its log is {directory}/anvil.log") from None
    except BaseException:
        rpc.close()
        anvil.stop()
        raise


def _existing(rpc: RpcClient, previous: tuple[str, str] | None) -> tuple[bytes, bytes] | None:
    """The contracts of the previous run, when the chain's saved state still holds them."""
    if previous is None:
        return None
    addresses = (parse_hex(previous[0], length=20), parse_hex(previous[1], length=20))
    if all(rpc.get_code(address) for address in addresses):
        return addresses
    return None
