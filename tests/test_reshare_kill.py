"""SIGKILL of a random node at random instants of reshares: never a torn share, no record lost.

Five node processes, one chain, a 3-of-5 DKG; then, twenty times, a refresh
of the whole committee during which one random node is killed at a random
instant and restarted. After each, every node serves a keyset of the newest
epoch or an older one, each node's partial proves its share matches that
keyset's ``Y_i`` (so the share it reopened from disk is whole), and the record
sealed at the start decrypts through the nodes of the newest epoch. A last
reshare with nobody killed brings every node, however far behind, to one epoch.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster import CHAIN_ID, Cluster
from tests.procs import wait_healthy
from tests.reshare_net import committee_of, decrypts, directory_of, partials, start_slowly, verified
from tkms.client.recombine import open_partial
from tkms.client.relay import run_ceremony
from tkms.client.reshare_relay import ReshareOutcome, run_reshare
from tkms.crypto import curve, ecies, rsa

NODES = [1, 2, 3, 4, 5]
KILLS = int(os.environ.get("TKMS_TEST_RESHARE_KILLS", "20"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster.create(Path(tmp_path_factory.mktemp("reshare-kill")), 5)
    try:
        start_slowly(c)
        yield c
    finally:
        c.stop_all()


def _reshare(cluster: Cluster, trusted: bytes, out: list[ReshareOutcome | Exception]) -> None:
    committee = committee_of(cluster, CHAIN_ID, NODES)
    try:
        out.append(run_reshare(committee, committee, cluster.admin, 3, trusted=trusted, timeout=10))
    except Exception as exc:  # a relay that lost its node mid-round: reported, not raised
        out.append(exc)


def test_sigkill_at_random_instants_never_tears_a_share(cluster: Cluster) -> None:
    seed = int(os.environ.get("TKMS_TEST_RESHARE_SEED") or random.randrange(2**32))  # a rerun
    rng = random.Random(seed)
    first = run_ceremony(committee_of(cluster, CHAIN_ID, NODES), cluster.admin, 3)
    assert first.keyset is not None, first.errors
    trusted = bytes.fromhex(first.keyset["publicKey"][2:])
    record = ecies.encrypt(verified(first.keyset, CHAIN_ID, trusted).public_key, b"not lost")
    key = rsa.generate_private_key()
    ephemeral = curve.parse_point(record.ephemeral_pubkey)
    started = time.monotonic()
    warm: list[ReshareOutcome | Exception] = []
    _reshare(cluster, trusted, warm)  # how long a reshare takes here: the window to kill in
    window = time.monotonic() - started
    newest, switched = 2, 0
    for kill in range(KILLS):
        out: list[ReshareOutcome | Exception] = []
        relay = threading.Thread(target=_reshare, args=(cluster, trusted, out))
        victim = rng.choice(NODES)
        relay.start()
        time.sleep(rng.uniform(0, window * 1.2))
        service = cluster.nodes[victim].service
        assert service is not None
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        relay.join()
        cluster.start(victim)
        wait_healthy(cluster.nodes[victim].service, timeout=90.0)  # type: ignore[arg-type]

        # Every node: a valid keyset of the newest epoch or the one before, and a share
        # that proves itself against that keyset's Y_i.
        epochs = {}
        for n in NODES:
            body = httpx.get(cluster.nodes[n].url + "/v1/keyset", params={"chain_id": CHAIN_ID})
            assert body.status_code == 200, (seed, kill, n, body.text)
            keyset = verified(body.json(), CHAIN_ID, trusted)
            spec = cluster.nodes[n]
            index = next(x.index for x in keyset.nodes if x.signer == spec.wallet.address)
            answers = partials(
                cluster, CHAIN_ID, {index: (spec.url, spec.wallet.address)}, record, key
            )
            assert answers.failures == {}, (seed, kill, n, answers.failures)
            (answer,) = answers.answers
            assert answer.epoch == keyset.epoch
            open_partial(keyset, key, ephemeral, answer)  # raises unless x_i·G = Y_i
            epochs[n] = keyset
        top = max(k.epoch for k in epochs.values())
        assert top in (newest, newest + 1), (seed, kill, top, newest)
        # A node may lag more than one epoch: killed in one reshare, it only receives in
        # the next, and a kill there may cut the relay before its last message too (the
        # CI saw seed 4006790108 do it at kill 19). Lagging is no loss: the last reshare
        # below, with nobody killed, brings every node to one epoch.
        assert all(k.epoch <= top for k in epochs.values()), (seed, kill)
        switched += top - newest
        newest = top
        current = next(k for k in epochs.values() if k.epoch == top)
        serving = {n: v for n, v in directory_of(cluster, NODES).items() if epochs[n].epoch == top}
        answers = partials(cluster, CHAIN_ID, serving, record, key)
        assert decrypts(current, key, record, answers) == b"not lost", (seed, kill)
    # Nobody killed: the committee comes together on one epoch, one past the newest.
    last: list[ReshareOutcome | Exception] = []
    _reshare(cluster, trusted, last)
    (outcome,) = last
    assert isinstance(outcome, ReshareOutcome) and outcome.keyset is not None, (seed, outcome)
    final = {}
    for n in NODES:
        body = httpx.get(cluster.nodes[n].url + "/v1/keyset", params={"chain_id": CHAIN_ID})
        final[n] = verified(body.json(), CHAIN_ID, trusted)
    assert {k.epoch for k in final.values()} == {newest + 1}, (seed, final)
    answers = partials(cluster, CHAIN_ID, directory_of(cluster, NODES), record, key)
    assert decrypts(final[1], key, record, answers) == b"not lost", seed
    print(f"seed {seed}: {KILLS} kills, {switched} reshares switched, epoch {newest + 1}")
