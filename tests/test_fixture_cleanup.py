"""Fixtures that fail in their setup leave no process.

A fixture's cleanup after its ``yield`` never runs when its setup raises: each case
is made to happen for a real reason (a port already taken, a wrong port, anvil's
binary missing), then every process that was started is checked by pid to be gone,
and waited for.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import Cluster
from tests.conftest import NodeKeys
from tests.procs import free_port, start_healthy
from tests.test_runner_threshold import World
from tkms.devnet.processes import ServiceFailed


def children() -> set[int]:
    """Our child processes, exited ones not yet waited for (zombies) included."""
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == os.getpid():  # after the name: ppid
            found.add(int(entry.name))
    return found


@pytest.fixture
def no_new_children() -> Iterator[None]:
    """The test leaves no child of ours behind, running or unwaited-for."""
    before = children()
    yield
    assert children() - before == set()


@pytest.fixture
def taken_port() -> Iterator[tuple[int, socket.socket]]:
    """A port someone else listens on (and never answers)."""
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as sock:
        yield port, sock


@pytest.mark.usefixtures("no_new_children")
def test_a_cluster_whose_node_cannot_bind_stops_the_nodes_it_started(
    tmp_path: Path, taken_port: tuple[int, socket.socket]
) -> None:
    cluster = Cluster.create(tmp_path, 3)
    cluster.nodes[2].port = taken_port[0]  # 1 gets healthy, 2 exits: 1 and 3 run at the error
    with pytest.raises(ServiceFailed, match=r"exited with code \d+ before it was healthy"):
        cluster.start_all()
    for spec in cluster.nodes.values():
        assert spec.service is not None
        assert spec.service.process.returncode is not None  # exited and waited for
        assert not os.path.exists(f"/proc/{spec.service.process.pid}")


@pytest.mark.usefixtures("no_new_children")
def test_a_service_that_never_gets_healthy_is_stopped(
    tmp_path: Path, node_keys: NodeKeys, taken_port: tuple[int, socket.socket]
) -> None:
    """The node listens on a port of its own; its health is asked on a silent one."""
    env, log = node_keys.env(free_port()), tmp_path / "n.log"
    with pytest.raises(ServiceFailed, match="was not healthy within 3 s"):
        start_healthy(["node"], env, log, taken_port[0], timeout=3)


@pytest.mark.slow
@pytest.mark.usefixtures("no_new_children")
def test_the_runner_world_without_anvil_stops_its_committee(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/test_runner_threshold.py's World from a checkout without anvil: five node
    processes and a ceremony are up when anvil's start fails; none is left running."""
    missing = tmp_path / "node_modules" / ".bin" / "anvil"
    monkeypatch.setenv("TKMS_ANVIL", str(missing))
    with pytest.raises(FileNotFoundError, match="anvil"):
        World(tmp_path)
    logs = [log.read_text() for log in sorted(tmp_path.glob("node*.log"))]
    assert len(logs) == 5
    for log in logs:  # each was up, then shut down on our SIGTERM
        assert "Application startup complete" in log and "Finished server process" in log, log
