"""Prometheus view of a node's key lifecycle: epoch, status, the last ceremony (no secrets).

Read at scrape time from the keystore state and the services, so that the
figures cannot drift from what the node holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tkms.node import lifecycle_store as states
from tkms.node.keystore import NodeSecrets


@dataclass(frozen=True)
class CeremonyRecord:
    kind: str  # "dkg" or "reshare"
    outcome: str  # "done" or "failed"
    seconds: float
    complaints: int  # this node's own accusations
    disqualified: int  # dealers this node saw disqualified


class LifecycleCollector(Collector):
    def __init__(
        self, secrets: NodeSecrets, last: Callable[[], Mapping[int, CeremonyRecord]]
    ) -> None:
        self.secrets = secrets
        self.last = last

    def collect(self) -> Iterator[GaugeMetricFamily]:
        epoch = GaugeMetricFamily(
            "tkms_node_key_epoch", "Epoch of the share this node serves", labels=["chain_id"]
        )
        status = GaugeMetricFamily(
            "tkms_node_key_status",
            "Lifecycle status of the chain's key (1 for the current one)",
            labels=["chain_id", "status"],
        )
        chains = set(self.secrets.chains) | set(self.secrets.lifecycle)
        for chain_id in sorted(chains):
            held = self.secrets.chains.get(chain_id)
            if held is not None:
                epoch.add_metric([str(chain_id)], held.epoch)
            now = states.status_of(self.secrets, chain_id)
            for name in states.STATUSES:
                status.add_metric([str(chain_id), name], 1.0 if name == now else 0.0)
        yield epoch
        yield status
        seconds = GaugeMetricFamily(
            "tkms_node_ceremony_seconds",
            "Duration of the last ceremony",
            labels=["chain_id", "kind"],
        )
        outcome = GaugeMetricFamily(
            "tkms_node_ceremony_succeeded",
            "1 if the last ceremony completed, 0 if it failed or was aborted",
            labels=["chain_id", "kind"],
        )
        complaints = GaugeMetricFamily(
            "tkms_node_ceremony_complaints",
            "Dealers this node accused in the last ceremony",
            labels=["chain_id", "kind"],
        )
        disqualified = GaugeMetricFamily(
            "tkms_node_ceremony_disqualified",
            "Dealers disqualified in the last ceremony, as this node saw it",
            labels=["chain_id", "kind"],
        )
        for chain_id, record in sorted(self.last().items()):
            labels = [str(chain_id), record.kind]
            seconds.add_metric(labels, record.seconds)
            outcome.add_metric(labels, 1.0 if record.outcome == "done" else 0.0)
            complaints.add_metric(labels, record.complaints)
            disqualified.add_metric(labels, record.disqualified)
        yield from (seconds, outcome, complaints, disqualified)
