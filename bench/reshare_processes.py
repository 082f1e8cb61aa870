"""(e') of bench/threshold.py: resharing over real node processes, 5 → 7 (and a 7 → 7 refresh)."""

from __future__ import annotations

import time

from bench.processes import node_cluster
from tkms.client.relay import Committee, CommitteeNode, run_ceremony
from tkms.client.reshare_relay import run_reshare

HEADER = ["reshare", "t", "wall s", "messages relayed", "KiB relayed"]


def reshare_process_rows(chain_id: int) -> list[list[str]]:
    """7 node processes; a 3-of-5 DKG on nodes 1..5, then 5 → 7 (t 4) and 7 → 7 (t 4)."""
    rows = []
    with node_cluster(7, chain_id) as cluster:

        def committee(nodes: range) -> Committee:
            return Committee(chain_id, tuple(CommitteeNode(i, cluster.urls[i]) for i in nodes))

        five, seven = committee(range(1, 6)), committee(range(1, 8))
        dkg = run_ceremony(five, cluster.admin, 3)
        assert dkg.keyset is not None, dkg.errors
        for label, old, new in (("5 → 7", five, seven), ("7 → 7 (refresh)", seven, seven)):
            start = time.perf_counter()
            outcome = run_reshare(old, new, cluster.admin, 4)
            wall = time.perf_counter() - start
            assert outcome.keyset is not None, outcome.errors
            assert outcome.keyset["publicKey"] == dkg.keyset["publicKey"]
            tally = outcome.progress
            assert tally is not None
            rows.append(
                [
                    label,
                    "3 → 4" if old is five else "4 → 4",
                    f"{wall:.3f}",
                    str(tally.messages),
                    f"{tally.bytes_relayed / 1024:.1f}",
                ]
            )
    return rows
