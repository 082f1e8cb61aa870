"""`tkms import-key`: a nox-kms key (made by `tkms keygen`) becomes a 3-of-5 committee, same Y.

Node 6 plays the nox-kms operator's node: its key is sealed as a 1-of-1
committee, it deals it to nodes 1..5 in a normal reshare and leaves; its
copy of the whole key is destroyed at the switch (grace 0). A record sealed
to the key before the migration and one sealed after both decrypt through the
new committee, and the key a NoxCompute on anvil was deployed with (the nox
deployment's ``kmsPublicKey()``) is the new committee's, with no transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.cluster import CHAIN_ID, Cluster
from tests.procs import start, wait_healthy
from tests.reshare_net import committee_of, decrypts, directory_of, partials, start_slowly, verified
from tkms.chain.anvil import Anvil
from tkms.chain.contract import deploy_nox_compute
from tkms.chain.tx import TxSigner
from tkms.cli import app
from tkms.client.relay import Committee, CommitteeNode
from tkms.client.reshare_relay import run_reshare
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import to_hex
from tkms.keyfiles import read_hex

OPERATOR = 6
NEW = [1, 2, 3, 4, 5]
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster.create(Path(tmp_path_factory.mktemp("import-key")), 6)
    try:
        start_slowly(c, NEW)
        yield c
    finally:
        c.stop_all()


def test_a_keygen_key_is_imported_and_reshared_to_three_of_five(
    cluster: Cluster, tmp_path: Path
) -> None:
    key_file = tmp_path / "ecc.key"
    made = runner.invoke(app, ["keygen", "--out", str(key_file)])
    assert made.exit_code == 0, made.output
    x = int.from_bytes(read_hex(key_file))
    y = curve.encode_point(curve.base_mul(x))
    before = ecies.encrypt(curve.base_mul(x), b"sealed to the nox key")
    anvil = Anvil.start(chain_id=CHAIN_ID, accounts=2)
    try:
        deployer = TxSigner(anvil.rpc(), anvil.private_keys[0], chain_id=CHAIN_ID)
        who = deployer.address
        nox = deploy_nox_compute(deployer, admin=who, upgrader=who, kms_public_key=y, gateway=who)
        committee_key = _migrate(cluster, key_file, y, before)
        # The chain never heard of the migration, and needs not: its key is the committee's.
        assert nox.kms_public_key() == committee_key == y
    finally:
        anvil.stop()


def _migrate(cluster: Cluster, key_file: Path, y: bytes, before: ecies.EciesRecord) -> bytes:
    """Import, reshare 1-of-1 to 3-of-5, decrypt; the new committee's public key."""
    spec = cluster.nodes[OPERATOR]
    env = {
        **cluster.env(spec),
        "TKMS_NODE_RESHARE_GRACE": "0",
        f"NOX_KMS_CHAINS__{CHAIN_ID}__ECC_KEY": to_hex(read_hex(key_file)),
    }
    imported = runner.invoke(app, ["import-key", "--chain-id", str(CHAIN_ID)], env=env)
    assert imported.exit_code == 0, imported.output
    assert f"public key: {to_hex(y)}" in imported.output
    again = runner.invoke(app, ["import-key", "--chain-id", str(CHAIN_ID)], env=env)
    assert again.exit_code != 0 and "already has a key state" in again.output

    # The node serves as the 1-of-1 committee, without the ECC_KEY in its environment.
    del env[f"NOX_KMS_CHAINS__{CHAIN_ID}__ECC_KEY"]
    spec.service = start(["node"], env, spec.log, spec.port)
    wait_healthy(spec.service, timeout=90.0)
    served = httpx.get(spec.url + "/v1/keyset", params={"chain_id": CHAIN_ID}).json()
    assert (served["epoch"], served["threshold"], served["publicKey"]) == (0, 1, to_hex(y))

    outcome = run_reshare(
        Committee(CHAIN_ID, (CommitteeNode(1, spec.url),)),
        committee_of(cluster, CHAIN_ID, NEW),
        cluster.admin,
        3,
        trusted=y,
    )
    assert outcome.keyset is not None, outcome.errors
    keyset = verified(outcome.keyset, CHAIN_ID, y)
    assert (keyset.epoch, keyset.threshold, outcome.keyset["publicKey"]) == (1, 3, to_hex(y))
    after = ecies.encrypt(keyset.public_key, b"sealed after the migration")
    user = rsa.generate_private_key()
    for record, plain in (
        (before, b"sealed to the nox key"),
        (after, b"sealed after the migration"),
    ):
        answers = partials(cluster, CHAIN_ID, directory_of(cluster, NEW), record, user)
        assert answers.failures == {}
        assert decrypts(keyset, user, record, answers) == plain

    # The operator's node left and holds nothing of the key any more.
    gone = httpx.get(spec.url + "/v1/keyset", params={"chain_id": CHAIN_ID})
    assert gone.status_code == 503 and gone.json()["error"] == "dkg_incomplete"
    asked = partials(cluster, CHAIN_ID, {1: (spec.url, spec.wallet.address)}, before, user)
    assert asked.answers == [] and "dkg_incomplete" in asked.failures[1]
    metrics = httpx.get(spec.url + "/metrics").text
    assert f'tkms_node_key_status{{chain_id="{CHAIN_ID}",status="left"}} 1.0' in metrics
    assert "tkms_node_key_epoch{" not in metrics
    return curve.encode_point(keyset.public_key)
