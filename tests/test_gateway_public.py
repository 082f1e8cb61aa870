"""Public decryption and handle status over real processes: anvil with our NoxCompute and
DemoApp, a 3-node committee (a real DKG) and the v0 node of conftest, gateway processes
configured by nox v0.6's names. No mocks.

The client side is tests/rawpublic.py (no tkms import): a handle its owner made public on chain
decrypts for anyone, threshold and single-node, and its proof passes ``validateDecryptionProof``
by ``eth_call`` (refused once a byte of the value changes); a private handle is 403 before any
node is asked; an unknown record is 404 after the ACL; with a lying node the value is still
right. Status batches: 1,000 handles in one call, 1,001 ``batch_too_large``, empty and
mixed-chain 400. The setup side (transactions, the DKG, the liar) uses tkms.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import rawpublic as raw
from tests.adversary import forging_proxy
from tests.cluster import CHAIN_ID
from tests.conftest import NodeKeys
from tests.gatewaynet import GatewayNet
from tests.procs import Service, free_port, start_healthy
from tkms.chain import proofs
from tkms.chain.anvil import Anvil
from tkms.chain.contract import DemoApp, NoxCompute, deploy_demo_app, deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.crypto import curve
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.protocol.handle import new_handle

V06 = f"NOX_HANDLE_GATEWAY_CHAINS__{CHAIN_ID}__"
FOREIGN = 11155111


@dataclass
class Deployment:
    """One NoxCompute (its gateway() and kmsPublicKey()) and a DemoApp over it."""

    nox: NoxCompute
    app: DemoApp
    gateway: Wallet

    @property
    def contract(self) -> str:
        return to_hex(self.nox.address)


@dataclass
class Chain:
    anvil: Anvil
    admin: TxSigner
    alice: TxSigner
    threshold: Deployment  # the committee's key, the committee's gateway wallet
    single: Deployment  # the v0 node's key, its gateway wallet


def deploy(admin: TxSigner, gateway: Wallet, y: bytes) -> Deployment:
    nox = deploy_nox_compute(
        admin,
        admin=admin.address,
        upgrader=admin.address,
        kms_public_key=y,
        gateway=gateway.address,
    )
    return Deployment(nox, deploy_demo_app(admin, nox.address), gateway)


@pytest.fixture(scope="module")
def gnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayNet]:
    net = GatewayNet.create(tmp_path_factory.mktemp("gwpublic"), n=3, t=2)
    yield net
    net.close()


@pytest.fixture(scope="module")
def chain(gnet: GatewayNet, node_keys: NodeKeys) -> Iterator[Chain]:
    with Anvil.start(chain_id=CHAIN_ID, accounts=3) as anvil:  # stopped if a deployment fails
        admin, alice = (TxSigner(anvil.rpc(), k, chain_id=CHAIN_ID) for k in anvil.private_keys[:2])
        threshold = deploy(admin, gnet.cluster.gateway, parse_hex(gnet.public_key, length=33))
        single = deploy(admin, node_keys.gateway, curve.encode_point(node_keys.public_key))
        yield Chain(anvil, admin, alice, threshold, single)


def chain_vars(chain: Chain, deployment: Deployment) -> dict[str, str]:
    return {
        V06 + "RPC_URL": chain.anvil.url,
        V06 + "NOX_COMPUTE_CONTRACT_ADDRESS": deployment.contract,
        V06 + "WALLET_KEY": to_hex(deployment.gateway.private_key_bytes()),
        V06 + "CALL_TIMEOUT": "5s",
        "NOX_HANDLE_GATEWAY_SERVER__HOST": "127.0.0.1",
    }


@contextmanager
def running(env: dict[str, str], log: Path) -> Iterator[Service]:
    port = free_port()
    env = {**env, "NOX_HANDLE_GATEWAY_SERVER__PORT": str(port)}
    service = start_healthy(["gateway"], env, log, port)
    try:
        yield service
    finally:
        service.stop()


def threshold_env(gnet: GatewayNet, chain: Chain, tag: str, **extra: str) -> dict[str, str]:
    return {
        **chain_vars(chain, chain.threshold),
        "TKMS_GATEWAY_NODES": gnet.nodes_json(),
        "TKMS_GATEWAY_STATE_DIR": str(gnet.root / f"state-{tag}"),
        "TKMS_GATEWAY_DEADLINE": "30",
        "TKMS_GATEWAY_NODE_TIMEOUT": "25",
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(gnet: GatewayNet, chain: Chain) -> Iterator[Service]:
    with running(threshold_env(gnet, chain, "t"), gnet.root / "gw-public.log") as service:
        yield service


def public_handle(
    gateway: Service, chain: Chain, d: Deployment, value: bytes, kind: str, *, public: bool = True
) -> str:
    """Stored through the gateway, registered by its owner, then made public by its owner."""
    handle, proof = raw.store(
        gateway.url, CHAIN_ID, value, kind, to_hex(chain.alice.address), to_hex(d.app.address)
    )
    d.app.register(chain.alice, parse_hex(handle), parse_hex(proof), kind)
    if public:
        d.nox.allow_public_decryption(chain.alice, parse_hex(handle))
    return handle


def decrypt_and_validate(gateway: Service, chain: Chain, d: Deployment, handle: str) -> bytes:
    proof = raw.public_decrypt(
        gateway.url,
        handle,
        chain_id=CHAIN_ID,
        gateway=to_hex(d.gateway.address),
        contract=d.contract,
    )
    plaintext = proof[65:]
    assert raw.validate_decryption_proof(chain.anvil.url, d.contract, handle, proof) == plaintext
    forged = proof[:-1] + bytes([proof[-1] ^ 1])
    refused = raw.validate_decryption_proof(chain.anvil.url, d.contract, handle, forged)
    assert isinstance(refused, dict), "a changed value must not pass validateDecryptionProof"
    return plaintext


def test_a_public_handle_decrypts_for_anyone_and_its_proof_passes_on_chain(
    gateway: Service, chain: Chain
) -> None:
    value = (4242).to_bytes(32, "big")
    handle = public_handle(gateway, chain, chain.threshold, value, "uint256")
    assert decrypt_and_validate(gateway, chain, chain.threshold, handle) == value
    # At its natural width: a uint16 is 2 bytes, a bool 1.
    for kind, small in (("uint16", b"\x01\x02"), ("bool", b"\x01")):
        handle = public_handle(gateway, chain, chain.threshold, small, kind)
        assert decrypt_and_validate(gateway, chain, chain.threshold, handle) == small


def test_a_private_handle_is_403_and_no_node_is_asked(
    gnet: GatewayNet, gateway: Service, chain: Chain
) -> None:
    handle = public_handle(gateway, chain, chain.threshold, b"\x07" * 32, "uint256", public=False)
    before = gnet.delegations()
    answer = httpx.get(f"{gateway.url}/v0/public/{handle}", params={"salt": raw.salt()})
    assert answer.status_code == 403 and answer.json()["error"] == "access_denied"
    # ACL before the record: a handle nobody stored is a 403 too, never a 404.
    unknown = to_hex(new_handle(CHAIN_ID, "uint256"))
    assert httpx.get(f"{gateway.url}/v0/public/{unknown}").status_code == 403
    assert gnet.delegations() == before


def test_a_public_handle_without_a_record_is_404(
    gnet: GatewayNet, gateway: Service, chain: Chain
) -> None:
    d = chain.threshold
    handle = new_handle(CHAIN_ID, "uint256")
    block = chain.anvil.rpc().request("eth_getBlockByNumber", ["latest", False])
    proof = proofs.input_proof(
        d.gateway, CHAIN_ID, d.nox.address, handle, chain.alice.address, d.app.address,
        int(block["timestamp"], 16),
    )  # fmt: skip
    d.app.register(chain.alice, handle, proof, "uint256")
    d.nox.allow_public_decryption(chain.alice, handle)
    answer = httpx.get(f"{gateway.url}/v0/public/{to_hex(handle)}")
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"


def test_bad_requests_are_400_in_nox_order(gateway: Service) -> None:
    url = gateway.url + "/v0/public/"
    good = to_hex(new_handle(CHAIN_ID, "uint256"))
    cases = {
        (good, "0x12"): "invalid_salt",
        ("0x1234", None): "invalid_handle",
        (good[:12] + "ff" + good[14:], None): "invalid_type",  # type code 255
        (to_hex(new_handle(FOREIGN, "uint256")), None): "unknown_chain",
        ("0x1234", "0x12"): "invalid_salt",  # the salt first
    }
    for (handle, salt), code in cases.items():
        params = {} if salt is None else {"salt": salt}
        answer = httpx.get(url + handle, params=params)
        assert answer.status_code == 400 and answer.json()["error"] == code, (handle, answer.text)


def test_a_batch_of_1000_handles_in_one_call(gateway: Service, chain: Chain) -> None:
    d = chain.threshold
    owner, app = to_hex(chain.alice.address), to_hex(d.app.address)
    stored = [raw.store(gateway.url, CHAIN_ID, b"\x01", "bool", owner, app)[0] for _ in range(20)]
    batch = [to_hex(new_handle(CHAIN_ID, "uint256")) for _ in range(980)]
    for k, handle in enumerate(stored):
        batch.insert(k * 37, handle)
    batch[5] = batch[5].upper().replace("0X", "0x")  # any case in, lowercase out
    gateway_address = to_hex(d.gateway.address)
    statuses = raw.statuses(gateway.url, batch, chain_id=CHAIN_ID, gateway=gateway_address)
    assert [s["handle"] for s in statuses] == [h.lower() for h in batch]
    assert [s["resolved"] for s in statuses] == [h.lower() in stored for h in batch]
    assert sum(s["resolved"] for s in statuses) == 20

    def refused(handles: list[str]) -> tuple[int, str]:
        answer = httpx.post(
            f"{gateway.url}/v0/public/handles/status", json={"handles": handles}, timeout=30
        )
        return answer.status_code, answer.json()["error"]

    assert refused([*batch, batch[0]]) == (400, "batch_too_large")
    assert refused([]) == (400, "bad_request")
    assert refused([batch[0], to_hex(new_handle(FOREIGN, "bool"))])[0] == 400
    assert refused([batch[0], "0x12"]) == (400, "invalid_handle")


def test_one_lying_node_still_gives_the_right_value(
    gnet: GatewayNet, chain: Chain, gateway: Service
) -> None:
    """spare = 0: the fast liar is one of the first t answers, so the gateway must ask again."""
    node = gnet.cluster.nodes[3]
    epoch = int(gnet.keyset["epoch"])
    value = (77).to_bytes(32, "big")
    handle = public_handle(gateway, chain, chain.threshold, value, "uint256")
    with forging_proxy(node.url, node.wallet, fast=(3, epoch)) as liar:
        env = threshold_env(  # the same database: the record is the first gateway's
            gnet,
            chain,
            "t",
            TKMS_GATEWAY_NODES=gnet.nodes_json({3: liar}),
            TKMS_GATEWAY_SPARE="0",
        )
        log = gnet.root / "gw-liar.log"
        retried = "partials refused, asking again: {3}"
        with running(env, log) as lied_to:
            for _ in range(20):  # the liar is usually, not always, among the first t answers
                assert decrypt_and_validate(lied_to, chain, chain.threshold, handle) == value
                if retried in log.read_text():
                    break
        assert retried in log.read_text()


def test_single_node_mode_decrypts_a_public_handle(
    v0_node: Service, node_keys: NodeKeys, chain: Chain, tmp_path: Path
) -> None:
    env = {
        **chain_vars(chain, chain.single),
        "NOX_HANDLE_GATEWAY_KMS__URL": v0_node.url,
        "NOX_HANDLE_GATEWAY_KMS__SIGNER_ADDRESS": to_hex(node_keys.node_wallet.address),
        "TKMS_GATEWAY_STATE_DIR": str(tmp_path / "state"),
    }
    with running(env, tmp_path / "gw.log") as single:
        assert httpx.get(single.url + "/").json()["service"] == "Handle Gateway"
        value = (-5).to_bytes(2, "big", signed=True)
        handle = public_handle(single, chain, chain.single, value, "int16")
        assert decrypt_and_validate(single, chain, chain.single, handle) == value
        private = public_handle(single, chain, chain.single, value, "int16", public=False)
        assert httpx.get(f"{single.url}/v0/public/{private}").status_code == 403


def test_the_embedded_acl_public_role(gnet: GatewayNet, tmp_path: Path) -> None:
    """Without a chain, a handle is public once its owner grants the ``public`` role."""
    with gnet.gateway(str(tmp_path / "gw.sqlite3"), tmp_path / "gw.log") as embedded:
        with gnet.client(embedded.url) as owner:
            secret = owner.encrypt(9, "uint8")
            private = httpx.get(f"{embedded.url}/v0/public/{secret.handle}")
            assert private.status_code == 403
            owner.make_public(secret)
        proof = raw.public_decrypt(
            embedded.url,
            secret.handle,
            chain_id=CHAIN_ID,
            gateway=to_hex(gnet.cluster.gateway.address),
            contract=to_hex(gnet.contract),
        )
        assert proof[65:] == b"\x09"
