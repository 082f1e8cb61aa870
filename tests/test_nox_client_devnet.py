"""A Nox-style client against `tkms devnet`: the spec-only raw client on the chain's ACL.

The client (tests/rawclient.py, tests/rawchain.py: no tkms import) knows only what
the devnet prints for the Nox SDK — gatewayUrl, smartContractAddress, the RPC URL —
and the demo app's address. Like the Nox SDK (nox-compat.md, "What the Nox SDK reads
from the chain") it reads the chain id, gateway() and kmsPublicKey() from the chain,
checks every gateway signature against that gateway(), and asks isViewer on chain
before it asks the gateway. The devnet itself is started by the harness.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from eth_account import Account

from tests.procs import free_port_block, start_devnet, wait_printed
from tests.rawchain import RawChain, h2b
from tests.rawclient import RawClient

FUNDS = hex(10**20)


def printed(text: str, label: str) -> str:
    match = re.search(rf"^\s*{label}\s+(\S+)", text, re.MULTILINE)
    assert match is not None, f"the devnet did not print {label}"
    return match.group(1)


@pytest.mark.parametrize("shape", [("--nodes", "3", "--threshold", "2"), ("--nodes", "1")])
def test_a_nox_style_client_on_the_devnets_chain(tmp_path: Path, shape: tuple[str, ...]) -> None:
    nodes = int(shape[1])
    base = free_port_block(nodes + 1)  # the gateway, the nodes, the chain
    process = start_devnet(tmp_path / "state", base, tmp_path / "devnet.log", *shape)
    try:
        text = wait_printed(tmp_path / "devnet.log", process)
        sdk = text[text.index("The Nox SDK on this chain") :]
        gateway_url = printed(sdk, "gatewayUrl")
        nox = printed(sdk, "smartContractAddress")
        rpc_url = printed(sdk, "RPC URL")
        app = printed(text, "demo app")
        run_story(RawChain(rpc_url, nox), gateway_url, nox, app, single=nodes == 1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def run_story(chain: RawChain, gateway_url: str, nox: str, app: str, *, single: bool) -> None:
    # What the Nox SDK reads as it makes a client: the chain, the gateway, the KMS key.
    chain_id = chain.chain_id()
    gateway, kms_key = chain.gateway(), chain.kms_public_key()
    assert len(kms_key) == 33 and kms_key[0] in (2, 3)
    alice, bob, stranger = (Account.create() for _ in range(3))
    for who in (alice, bob):  # the harness funds them: anvil's dev method
        chain.call("anvil_setBalance", [who.address, FUNDS])

    def client(account: object) -> RawClient:
        return RawClient(gateway_url, chain_id, gateway, nox, kms_key, account=account, app=app)

    owner, reader, outsider = client(alice), client(bob), client(stranger)
    value = (1000).to_bytes(32, "big")
    handle, proof = owner.store_with_proof(value, "uint256")  # the proof checked as gateway()'s
    raw_handle = h2b(handle)
    assert int.from_bytes(raw_handle[1:5], "big") == chain_id
    version = "v0" if single else "v1"

    def decrypt(who: RawClient) -> bytes:
        assert chain.is_viewer(raw_handle, who.account.address)  # as the SDK, first
        return who.decrypt_v0(handle) if single else who.decrypt(handle)

    # Stored, not yet registered: nox stores no owner, so even its owner is no viewer.
    assert not chain.is_viewer(raw_handle, alice.address)
    assert owner.refused(handle, version).status_code == 403
    chain.register(alice, app, raw_handle, proof)  # the dApp's transaction, signed here
    assert chain.is_viewer(raw_handle, alice.address)
    assert decrypt(owner) == value

    for someone in (reader, outsider):
        assert not chain.is_viewer(raw_handle, someone.account.address)
        answer = someone.refused(handle, version)
        assert answer.status_code == 403 and answer.json()["error"] == "access_denied"

    chain.add_viewer(alice, raw_handle, bob.address)  # the owner shares it: one transaction
    assert chain.is_viewer(raw_handle, bob.address)
    assert decrypt(reader) == value
    assert outsider.refused(handle, version).status_code == 403
    chain.close()
