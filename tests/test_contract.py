"""NoxCompute, DemoApp and ContractWallet on a real anvil chain: every permission rule,
the input-proof checks, transient access, events, the decryption proof, ERC-1271."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chainnet import CHAIN_ID, FOREIGN_CHAIN_ID, ChainNet, make_handle, start_chain
from tkms.chain import erc1271, proofs
from tkms.chain.contract import deploy_contract_wallet, deploy_nox_compute
from tkms.chain.errors import ChainUnavailable, Reverted
from tkms.crypto import curve, eip712
from tkms.crypto.wallet import Wallet, keccak256
from tkms.protocol.handle import SolidityType

UINT256 = SolidityType.parse("uint256").code


@pytest.fixture(scope="module")
def net() -> Iterator[ChainNet]:
    chain = start_chain()
    yield chain
    chain.rpc.close()
    chain.anvil.stop()


def reverts(error: str) -> pytest.RaisesExc[Reverted]:
    return pytest.raises(Reverted, match=rf"execution reverted: {error}\b")


# --- deployment, selectors, domain --------------------------------------------------------


def test_selectors_are_nox_computes() -> None:
    table = {
        "gateway()": "116191b6",
        "kmsPublicKey()": "ac6c544f",
        "isViewer(bytes32,address)": "02d0e66e",
        "isPubliclyDecryptable(bytes32)": "98c38455",
    }
    from tkms.chain.artifacts import load

    functions = load("NoxCompute").abi.functions
    for signature, expected in table.items():
        assert keccak256(signature.encode())[:4].hex() == expected
        name = signature.split("(")[0]
        assert functions[name].signature == signature
        assert functions[name].selector.hex() == expected
    # AsyncNoxCompute.is_viewer encodes its call by hand: the same bytes as the ABI's.
    from tkms.chain.contract import IS_VIEWER

    handle, account = bytes(range(32)), bytes(range(20))
    by_abi = functions["isViewer"].encode(handle, account)
    assert IS_VIEWER + handle + bytes(12) + account == by_abi


def test_deployed_configuration(net: ChainNet) -> None:
    assert net.nox.gateway() == net.gateway.address
    assert net.nox.kms_public_key() == net.kms_public_key
    assert net.nox.admin() == net.admin.address
    assert net.nox.upgrader() == net.upgrader.address
    assert net.app.nox() == net.nox.address
    [gateway_set] = net.nox.logs("GatewayUpdated")
    assert gateway_set == {"gateway": net.gateway.address}
    [key_set] = net.nox.logs("KmsPublicKeyUpdated")
    assert key_set == {"kmsPublicKey": net.kms_public_key}


def test_domain_separator_is_eip712_py_nox_compute_domain(net: ChainNet) -> None:
    domain = eip712.nox_compute_domain(CHAIN_ID, net.nox.address)
    assert net.nox.domain_separator() == eip712.domain_separator(domain)


# --- validateInputProof -----------------------------------------------------------------


def test_register_makes_the_caller_and_the_app_admins(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address)
    receipt = net.app.register(net.alice, handle, proof, "uint256")
    for account in (net.alice.address, net.app.address):
        assert net.nox.is_allowed(handle, account)
        assert net.nox.is_viewer(handle, account)
    assert not net.nox.is_allowed(handle, net.stranger.address)
    assert not net.nox.is_viewer(handle, net.stranger.address)
    assert not net.nox.is_publicly_decryptable(handle)
    assert net.nox.events(receipt, "Allowed") == [
        {"sender": net.app.address, "account": net.alice.address, "handle": handle},
        {"sender": net.app.address, "account": net.app.address, "handle": handle},
    ]
    assert net.app.events(receipt, "Registered") == [{"owner": net.alice.address, "handle": handle}]
    assert handle in net.app.handles_of(net.alice.address)


@pytest.mark.parametrize("solidity_type", ["bool", "address", "int16", "bytes32", "string"])
def test_register_any_type(net: ChainNet, solidity_type: str) -> None:
    handle = net.registered(net.alice, solidity_type)
    assert net.nox.is_viewer(handle, net.alice.address)


def test_input_proof_of_another_type_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, solidity_type="uint256")
    with reverts("HandleTypeMismatch"):
        net.app.register(net.alice, handle, proof, "uint128")


def test_foreign_chain_handle_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, chain_id=FOREIGN_CHAIN_ID)
    with reverts("HandleChainMismatch"):
        net.app.register(net.alice, handle, proof, "uint256")


@pytest.mark.parametrize("cut", [-1, 1, -137])
def test_proof_of_another_length_reverts(net: ChainNet, cut: int) -> None:
    handle, proof = net.input(net.alice.address)
    bad = proof[:cut] if cut < 0 else proof + b"\x00"
    with reverts("InvalidProofLength"):
        net.app.register(net.alice, handle, bad, "uint256")


def test_proof_signed_by_another_key_reverts(net: ChainNet) -> None:
    forger = Wallet.generate()
    handle, proof = net.input(net.alice.address, gateway=forger)
    with reverts("InvalidGatewaySignature") as info:
        net.app.register(net.alice, handle, proof, "uint256")
    assert info.value.error == "InvalidGatewaySignature"
    assert info.value.error_args == (forger.address,)  # decoded through DemoApp's revert
    assert not isinstance(info.value, ChainUnavailable)  # a definite no, not an outage


def test_tampered_proof_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address)
    # the signature's r (or the signed createdAt) changed: another signer, or none
    for index in (72 + 5, 40 + 31):
        bad = bytearray(proof)
        bad[index] ^= 0x01
        with pytest.raises(Reverted, match=r"InvalidGatewaySignature|InvalidSignature|Expired"):
            net.app.register(net.alice, handle, bytes(bad), "uint256")
    # another handle under the same proof
    with reverts("InvalidGatewaySignature"):
        net.app.register(net.alice, make_handle(), proof, "uint256")


def test_high_s_signature_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address)
    s = int.from_bytes(proof[104:136], "big")
    v = proof[136]
    twin = proof[:104] + (curve.ORDER - s).to_bytes(32, "big") + bytes([55 - v])
    with reverts("InvalidSignature"):
        net.app.register(net.alice, handle, twin, "uint256")


def test_expired_proof_reverts(net: ChainNet) -> None:
    now = net.timestamp()
    handle, proof = net.input(net.alice.address, created_at=now - proofs.INPUT_PROOF_VALIDITY - 5)
    with reverts("ProofExpired"):
        net.app.register(net.alice, handle, proof, "uint256")
    # near the end of its hour, still valid
    handle, proof = net.input(net.alice.address, created_at=now - proofs.INPUT_PROOF_VALIDITY + 60)
    net.app.register(net.alice, handle, proof, "uint256")


def test_proof_expires_one_hour_after_created_at(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, created_at=net.timestamp())
    net.anvil.increase_time(proofs.INPUT_PROOF_VALIDITY + 2)
    with reverts("ProofExpired"):
        net.app.register(net.alice, handle, proof, "uint256")


def test_created_at_a_little_ahead_of_the_chain_is_accepted(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, created_at=net.timestamp() + 30)
    net.app.register(net.alice, handle, proof, "uint256")


def test_proof_used_by_another_app_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, app=net.app.address)
    with reverts("AppMismatch"):
        net.other_app.register(net.alice, handle, proof, "uint256")


def test_proof_used_from_an_eoa_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, app=net.app.address)
    with reverts("AppMismatch"):
        net.nox.validate_input_proof(net.alice, handle, net.alice.address, proof, "uint256")


def test_proof_for_another_owner_reverts(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address)
    with reverts("OwnerMismatch"):
        net.app.register(net.bob, handle, proof, "uint256")


def test_public_handle_cannot_be_registered(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, attributes=0x00)
    with reverts("PublicHandle"):
        net.app.register(net.alice, handle, proof, "uint256")


# --- transient access -------------------------------------------------------------------


def test_validate_input_proof_grants_transient_access_only(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address)
    net.app.transact(net.alice, "validateOnly", handle, proof, UINT256)
    assert net.app.last_transient_check()  # allowed inside the transaction
    assert not net.nox.is_allowed(handle, net.app.address)  # gone after it
    assert not net.nox.is_viewer(handle, net.alice.address)


def test_an_eoa_app_gets_transient_access_only(net: ChainNet) -> None:
    handle, proof = net.input(net.alice.address, app=net.alice.address)
    net.nox.validate_input_proof(net.alice, handle, net.alice.address, proof, "uint256")
    assert not net.nox.is_allowed(handle, net.alice.address)


def test_allow_transient_lasts_one_transaction(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    net.app.transact(net.alice, "checkTransient", handle, net.bob.address)
    assert net.app.last_transient_check()
    assert not net.nox.is_allowed(handle, net.bob.address)
    net.app.transact(net.alice, "checkDisallowTransient", handle, net.bob.address)
    assert not net.app.last_transient_check()


def test_transient_calls_need_an_allowed_caller(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    with reverts("NotAllowed"):
        net.nox.allow_transient(net.stranger, handle, net.stranger.address)
    with reverts("NotAllowed"):
        net.nox.disallow_transient(net.stranger, handle, net.alice.address)
    net.nox.disallow_transient(net.stranger, handle, net.stranger.address)  # its own: fine
    net.nox.allow_transient(net.alice, handle, net.bob.address)  # an admin may
    assert not net.nox.is_allowed(handle, net.bob.address)
    with reverts("NotAllowed"):  # the app is an admin, but the stranger calls through it
        net.other_app.transact(net.stranger, "checkTransient", handle, net.stranger.address)


# --- allow, addViewer, allowPublicDecryption ------------------------------------------------


def test_an_admin_may_allow_and_the_new_admin_may_grant(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    receipt = net.nox.allow(net.alice, handle, net.bob.address)
    assert net.nox.events(receipt, "Allowed") == [
        {"sender": net.alice.address, "account": net.bob.address, "handle": handle}
    ]
    assert net.nox.is_allowed(handle, net.bob.address)
    receipt = net.nox.add_viewer(net.bob, handle, net.carol.address)
    assert net.nox.events(receipt, "ViewerAdded") == [
        {"sender": net.bob.address, "viewer": net.carol.address, "handle": handle}
    ]
    assert net.nox.is_viewer(handle, net.carol.address)
    assert not net.nox.is_allowed(handle, net.carol.address)


def test_a_stranger_may_not_grant(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    with reverts("NotAllowed"):
        net.nox.allow(net.stranger, handle, net.stranger.address)
    with reverts("NotAllowed"):
        net.nox.add_viewer(net.stranger, handle, net.stranger.address)
    with reverts("NotAllowed"):
        net.nox.allow_public_decryption(net.stranger, handle)
    assert not net.nox.is_viewer(handle, net.stranger.address)
    assert not net.nox.is_publicly_decryptable(handle)


def test_a_viewer_may_read_but_not_grant(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    net.nox.add_viewer(net.alice, handle, net.carol.address)
    assert net.nox.is_viewer(handle, net.carol.address)
    with reverts("NotAllowed"):
        net.nox.allow(net.carol, handle, net.stranger.address)
    with reverts("NotAllowed"):
        net.nox.add_viewer(net.carol, handle, net.stranger.address)
    with reverts("NotAllowed"):
        net.nox.allow_public_decryption(net.carol, handle)


def test_the_app_as_admin_shares_and_publishes(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    net.app.transact(net.stranger, "shareWith", handle, net.carol.address)
    assert net.nox.is_viewer(handle, net.carol.address)
    receipt = net.app.transact(net.stranger, "publish", handle)
    assert net.nox.events(receipt, "MarkedAsPubliclyDecryptable") == [
        {"sender": net.app.address, "handle": handle}
    ]
    assert net.nox.is_publicly_decryptable(handle)


def test_allow_public_decryption(net: ChainNet) -> None:
    handle = net.registered(net.alice)
    assert not net.nox.is_publicly_decryptable(handle)
    receipt = net.nox.allow_public_decryption(net.alice, handle)
    assert net.nox.events(receipt, "MarkedAsPubliclyDecryptable") == [
        {"sender": net.alice.address, "handle": handle}
    ]
    assert net.nox.is_publicly_decryptable(handle)
    assert net.nox.is_viewer(handle, net.stranger.address)  # everyone reads it now
    assert not net.nox.is_allowed(handle, net.stranger.address)  # but may not grant


def test_public_handles_are_readable_by_all_and_refuse_grants(net: ChainNet) -> None:
    handle = make_handle(attributes=0x00)
    for who in (net.stranger, net.alice):
        assert net.nox.is_allowed(handle, who.address)
        assert net.nox.is_viewer(handle, who.address)
    assert net.nox.is_publicly_decryptable(handle)
    with reverts("PublicHandle"):
        net.nox.allow(net.alice, handle, net.bob.address)
    with reverts("PublicHandle"):
        net.nox.add_viewer(net.alice, handle, net.bob.address)
    with reverts("PublicHandle"):
        net.nox.allow_public_decryption(net.alice, handle)
    with reverts("PublicHandle"):
        net.nox.allow_transient(net.alice, handle, net.bob.address)


# --- roles --------------------------------------------------------------------------------


def test_only_the_upgrader_sets_the_gateway_and_the_kms_key(net: ChainNet) -> None:
    # a NoxCompute of its own: the module's keeps its gateway
    nox = deploy_nox_compute(
        net.admin,
        admin=net.admin.address,
        upgrader=net.upgrader.address,
        kms_public_key=net.kms_public_key,
        gateway=net.gateway.address,
    )
    new_gateway = Wallet.generate().address
    new_key = curve.encode_point(curve.base_mul(curve.random_scalar()))
    for signer in (net.admin, net.stranger):
        with reverts("NotUpgrader"):
            nox.set_gateway(signer, new_gateway)
        with reverts("NotUpgrader"):
            nox.set_kms_public_key(signer, new_key)
    receipt = nox.set_gateway(net.upgrader, new_gateway)
    assert nox.events(receipt, "GatewayUpdated") == [{"gateway": new_gateway}]
    assert nox.gateway() == new_gateway
    receipt = nox.set_kms_public_key(net.upgrader, new_key)
    assert nox.events(receipt, "KmsPublicKeyUpdated") == [{"kmsPublicKey": new_key}]
    assert nox.kms_public_key() == new_key
    with reverts("ZeroAddress"):
        nox.set_gateway(net.upgrader, bytes(20))
    for bad in (new_key[1:], b"\x04" + new_key[1:], new_key + b"\x00"):
        with reverts("InvalidKmsPublicKey"):
            nox.set_kms_public_key(net.upgrader, bad)
    # the admin hands the upgrader role on; nobody else may
    with reverts("NotAdmin"):
        nox.set_upgrader(net.upgrader, net.stranger.address)
    nox.set_upgrader(net.admin, net.bob.address)
    with reverts("NotUpgrader"):
        nox.set_gateway(net.upgrader, new_gateway)
    nox.set_gateway(net.bob, net.gateway.address)
    assert nox.gateway() == net.gateway.address


# --- validateDecryptionProof -----------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"\x01", (1000).to_bytes(32, "big"), b"", b"x" * 100])
def test_gateway_signed_decryption_proof_returns_the_value(net: ChainNet, plaintext: bytes) -> None:
    handle = make_handle()
    proof = proofs.decryption_proof(net.gateway, CHAIN_ID, net.nox.address, handle, plaintext)
    assert net.nox.validate_decryption_proof(handle, proof) == plaintext


def test_decryption_proof_by_another_key_or_changed_is_refused(net: ChainNet) -> None:
    handle = make_handle()
    value = (1000).to_bytes(32, "big")
    other = proofs.decryption_proof(Wallet.generate(), CHAIN_ID, net.nox.address, handle, value)
    with reverts("InvalidGatewaySignature"):
        net.nox.validate_decryption_proof(handle, other)
    good = proofs.decryption_proof(net.gateway, CHAIN_ID, net.nox.address, handle, value)
    changed = good[:-1] + bytes([good[-1] ^ 1])
    with reverts("InvalidGatewaySignature"):
        net.nox.validate_decryption_proof(handle, changed)
    with reverts("InvalidGatewaySignature"):
        net.nox.validate_decryption_proof(make_handle(), good)
    with reverts("InvalidGatewaySignature"):
        net.nox.validate_decryption_proof(handle, good + b"\x00")
    elsewhere = proofs.decryption_proof(net.gateway, CHAIN_ID, net.app.address, handle, value)
    with reverts("InvalidGatewaySignature"):
        net.nox.validate_decryption_proof(handle, elsewhere)
    with reverts("InvalidProofLength"):
        net.nox.validate_decryption_proof(handle, good[:64])


# --- a contract wallet (ERC-1271) ---------------------------------------------------------


def test_contract_wallet_erc1271_and_owning_a_handle(net: ChainNet) -> None:
    owner = Wallet(net.anvil.private_keys[6])
    owner_signer = net.signer(6)
    wallet = deploy_contract_wallet(net.admin, owner.address)
    assert wallet.owner() == owner.address
    digest = eip712.digest(
        eip712.gateway_domain(CHAIN_ID, verifying_contract=net.nox.address),
        eip712.DATA_ACCESS_AUTHORIZATION,
        {
            "userAddress": wallet.address,
            "encryptionPubKey": "0x30",
            "notBefore": 1,
            "expiresAt": 2,
        },
    )
    good = owner.sign_digest(digest)
    assert erc1271.is_contract(net.rpc, wallet.address)
    assert not erc1271.is_contract(net.rpc, owner.address)
    assert erc1271.is_valid_signature(net.rpc, wallet.address, digest, good)
    assert not erc1271.is_valid_signature(
        net.rpc, wallet.address, digest, Wallet.generate().sign_digest(digest)
    )
    assert not erc1271.is_valid_signature(net.rpc, wallet.address, keccak256(b"x"), good)
    assert not erc1271.is_valid_signature(net.rpc, wallet.address, digest, good[:64])
    assert not erc1271.is_valid_signature(net.rpc, owner.address, digest, good)  # an EOA
    assert not erc1271.is_valid_signature(net.rpc, net.nox.address, digest, good)  # reverts

    # the wallet registers a handle through the demo app: it becomes the owner
    handle, proof = net.input(wallet.address)
    call = net.app.abi.function("register").encode(handle, proof, UINT256)
    with reverts("NotOwner"):
        wallet.execute(net.stranger, net.app.address, call)
    wallet.execute(owner_signer, net.app.address, call)
    assert net.nox.is_allowed(handle, wallet.address)
    assert net.nox.is_viewer(handle, wallet.address)
    assert not net.nox.is_viewer(handle, owner.address)
