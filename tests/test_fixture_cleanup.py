"""Fixtures that fail in their setup, and test processes that are killed, leave no process.

A fixture's cleanup after its ``yield`` never runs when its setup raises, and a
killed xdist worker runs no cleanup at all: each case is made to happen for a real
reason (a port already taken, a wrong port, anvil's binary missing, SIGKILL), then
every process that was started is checked by pid to be gone, and waited for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import reaper
from tests.cluster import Cluster
from tests.conftest import NodeKeys
from tests.procs import free_port, start_healthy
from tests.test_runner_threshold import World
from tkms.devnet.processes import ServiceFailed

REPO = Path(__file__).resolve().parent.parent


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


def log_of(root: Path) -> str:
    return (root / "inner.log").read_text(errors="replace")


INNER_TEST = """
import os, time
from pathlib import Path
from tests.procs import free_port, start_healthy

def test_a_node_then_a_long_wait(node_keys, tmp_path):
    port = free_port()
    node = start_healthy(["node"], node_keys.env(port), tmp_path / "node.log", port)
    Path(os.environ["PIDS"]).write_text(f"{os.getpid()} {node.process.pid}")
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_killed_xdist_worker_leaves_no_service_running(tmp_path: Path) -> None:
    """The worker starts a node and is SIGKILLed: its controller stops the node at once."""
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TEST))
    pids = tmp_path / "pids"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env |= {"PYTHONPATH": str(REPO), "PIDS": str(pids)}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest"]
    args += ["-n", "1", "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")]
    with (tmp_path / "inner.log").open("wb") as log:
        run = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        while not pids.exists() or not pids.read_text():
            assert run.poll() is None and time.monotonic() < deadline, log_of(tmp_path)
            time.sleep(0.1)
        worker, node = map(int, pids.read_text().split())
        node_started = reaper.start_time(node)
        assert node_started is not None and reaper.running(node, node_started)
        os.kill(worker, signal.SIGKILL)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert "node down" in log_of(tmp_path), log_of(tmp_path)
    assert not reaper.running(node, node_started)
