"""The gateway asks t + spare nodes, the others only on a failure or when late (gateway.md §8).

The order is unit-tested on :class:`NodeHealth` with a fake clock; over real
processes (a 5-node committee, t = 3, spare 1) the nodes' own counters show
that a healthy committee computes fewer partials than protocol.md §4's "ask
every node" would, that a node down is replaced at once and then asked last,
and that ``ASK_ALL_NODES`` restores §4.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.gatewaynet import GatewayNet, module_net
from tkms.gateway.node_health import COOLDOWN, HEDGE_FLOOR, NodeHealth

ROUNDS = 12


def test_the_order_puts_failed_nodes_last_and_fast_ones_first() -> None:
    now = [100.0]
    health = NodeHealth(clock=lambda: now[0])
    assert health.order([3, 1, 2]) == [1, 2, 3]  # nothing measured: by index
    health.answered(1, 0.010)
    health.answered(2, 0.002)
    assert health.order([1, 2, 3]) == [3, 2, 1]  # unmeasured first (tried), then fastest
    health.answered(3, 0.005)
    health.failed(2)
    assert health.order([1, 2, 3]) == [3, 1, 2]  # a failure: last, for a while
    now[0] += COOLDOWN + 0.1
    assert health.order([1, 2, 3]) == [2, 3, 1]  # then back by its latency
    for _ in range(30):
        health.answered(2, 0.050)  # it grew slow: the moving average follows
    assert health.order([1, 2, 3]) == [3, 1, 2]


def test_the_hedge_waits_for_the_slowest_chosen_node_within_bounds() -> None:
    health = NodeHealth()
    assert health.hedge_after([1, 2], deadline=2.0) == HEDGE_FLOOR  # nothing known yet
    health.answered(1, 0.002)
    health.answered(2, 0.030)
    assert health.hedge_after([1, 2], deadline=2.0) == pytest.approx(0.120)
    assert health.hedge_after([1], deadline=2.0) == HEDGE_FLOOR
    health.answered(2, 5.0)
    assert health.hedge_after([1, 2], deadline=2.0) == 1.0  # never past half the deadline


net = module_net("choice")


def _asked(net: GatewayNet, before: dict[int, float]) -> dict[int, float]:
    after = net.delegations()
    return {i: after[i] - before[i] for i in after}


def _node_failures(gateway_url: str, index: int) -> float:
    text = httpx.get(gateway_url + "/metrics", timeout=5).text
    labels = f'node="{index}",outcome="(?!ok")[^"]*"'
    pattern = re.compile(r"^tkms_gateway_node_requests_total\{" + labels + r"\} (\S+)$")
    return sum(float(m.group(1)) for line in text.splitlines() if (m := pattern.match(line)))


def test_a_healthy_committee_computes_only_the_partials_asked_for(
    net: GatewayNet, tmp_path: Path
) -> None:
    with (
        net.gateway(str(tmp_path / "g.sqlite3"), tmp_path / "g.log") as gateway,
        net.client(gateway.url) as alice,
    ):
        secret = alice.encrypt(41, "uint256")
        assert alice.decrypt(secret) == 41  # warm: keyset, material, connections
        before = net.delegations()
        for _ in range(ROUNDS):
            assert alice.decrypt(secret) == 41
        asked = _asked(net, before)
    # §4 would make 5 partials per decryption; t + spare = 4 are asked, and a hedge
    # (a late answer on a loaded machine) asks the fifth only now and then.
    assert sum(asked.values()) < 5 * ROUNDS, asked
    assert sum(asked.values()) >= 4 * ROUNDS, asked


def test_ask_all_nodes_restores_protocol_4(net: GatewayNet, tmp_path: Path) -> None:
    with (
        net.gateway(
            str(tmp_path / "g.sqlite3"), tmp_path / "g.log", TKMS_GATEWAY_ASK_ALL_NODES="true"
        ) as gateway,
        net.client(gateway.url) as alice,
    ):
        secret = alice.encrypt(42, "uint256")
        assert alice.decrypt(secret) == 42
        before = net.delegations()
        for _ in range(ROUNDS):
            assert alice.decrypt(secret) == 42
        asked = _asked(net, before)
    assert asked == {i: ROUNDS for i in asked}, asked


def test_a_node_down_is_replaced_at_once_and_then_asked_last(
    net: GatewayNet, tmp_path: Path
) -> None:
    with (
        net.gateway(str(tmp_path / "g.sqlite3"), tmp_path / "g.log") as gateway,
        net.client(gateway.url) as alice,
    ):
        secret = alice.encrypt(43, "uint256")  # the keyset: no partial, nothing measured
        # Stopped before any decryption: while no node is measured the gateway asks
        # by index, so node 1 is among the first asked. Stopped after one, it need
        # not be: the nodes then go by latency, and the unmeasured fifth comes first
        # (the clean-clone CI saw node 1 never asked, 0 failures).
        net.cluster.stop(1)
        try:
            for _ in range(ROUNDS):
                assert alice.decrypt(secret) == 43  # each with no retry round
                assert alice.core.last_rounds == 1
            failures = _node_failures(gateway.url, 1)
        finally:
            net.cluster.start(1)
    # Asked last once it failed: not once per decryption (only after each cooldown).
    assert 1 <= failures < ROUNDS / 2, failures
