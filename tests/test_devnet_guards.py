"""A running 5-node `tkms devnet`: what a second one, another shape, and a dead node do.

One devnet serves every check (a DKG costs seconds): a second `tkms devnet`
on its state directory or its ports exits at once with one line and no
banner; `--nodes 1` on a state directory made for 5 nodes is refused; a node
killed with SIGKILL is reported while the others serve, and
`tkms devnet restart-node` brings it back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.procs import free_port_block, start_devnet, wait_printed
from tkms.client import Client
from tkms.devnet.manifest import DevnetManifest

TKMS = str(Path(sys.executable).parent / "tkms")


@dataclass
class Running:
    state: Path
    base: int
    log: Path
    process: subprocess.Popen[bytes]
    manifest: DevnetManifest


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("guards")
    base = free_port_block(6)
    state, log = root / "state", root / "devnet.log"
    process = start_devnet(state, base, log)
    try:
        wait_printed(log, process)
        yield Running(state, base, log, process, DevnetManifest.load(state / "devnet.json"))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def _tkms(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TKMS, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "devnet up" not in lines[0] and "Traceback" not in lines[0]
    return lines[0]


def test_a_second_devnet_on_the_same_state_dir_says_it_is_running(devnet: Running) -> None:
    begin = time.monotonic()
    result = _tkms(
        "devnet",
        "--state-dir",
        str(devnet.state),
        "--base-port",
        str(devnet.base),
        cwd=devnet.state.parent,
    )
    assert result.returncode == 2
    line = _one_line(result)
    assert "already running" in line and str(devnet.process.pid) in line
    assert time.monotonic() - begin < 10


def test_a_second_devnet_on_busy_ports_names_the_port(devnet: Running, tmp_path: Path) -> None:
    result = _tkms(
        "devnet",
        "--state-dir",
        str(tmp_path / "other"),
        "--base-port",
        str(devnet.base),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    line = _one_line(result)
    assert f"port {devnet.base} is already in use" in line and "--base-port" in line
    assert not (tmp_path / "other" / "logs").exists()  # nothing was started


def test_a_state_dir_made_for_five_nodes_refuses_one(devnet: Running, tmp_path: Path) -> None:
    copy = tmp_path / "five"
    copy.mkdir()
    shutil.copy(devnet.state / "devnet.json", copy / "devnet.json")
    port = free_port_block(2)
    for extra in (["--nodes", "1"], ["--nodes", "5", "--threshold", "2"]):
        result = _tkms(
            "devnet", "--state-dir", str(copy), "--base-port", str(port), *extra, cwd=tmp_path
        )
        assert result.returncode == 2
        line = _one_line(result)
        assert "was made for a 5-node devnet (threshold 3" in line and "--state-dir" in line
    assert not (copy / "logs").exists()


def test_a_killed_node_is_reported_the_rest_serve_and_it_restarts(devnet: Running) -> None:
    node2 = devnet.manifest.node(2)
    pid = _pid_on_port(int(node2.url.rsplit(":", 1)[1]), devnet.process.pid)
    os.kill(pid, signal.SIGKILL)
    # The report is written in more than one piece (the exit, the log's last lines, the
    # hint): wait for the hint after the exit, not for the report's first line.
    text = wait_printed(
        devnet.log, devnet.process, r"node 2 exited with code -9(.|\n)*restart-node 2"
    )
    assert "restart-node 2" in text[text.index("node 2 exited") :]
    for node in devnet.manifest.nodes:
        if node.index != 2:
            assert httpx.get(node.url + "/health", timeout=5).status_code == 200
    with Client.from_devnet(devnet.state / "devnet.json") as client:
        secret = client.encrypt(7, "uint8")
        client.register_on_chain(secret)  # the gateway reads the chain's ACL
        assert client.decrypt(secret) == 7  # four nodes are enough for t = 3

    result = _tkms(
        "devnet", "restart-node", "2", "--state-dir", str(devnet.state), cwd=devnet.state.parent
    )
    assert result.returncode == 0, result.stderr
    assert "node 2 restarted" in result.stdout
    assert httpx.get(node2.url + "/health", timeout=5).status_code == 200
    keyset = httpx.get(node2.url + "/v1/keyset", params={"chain_id": devnet.manifest.chain_id})
    assert keyset.json()["publicKey"] == devnet.manifest.public_key  # its sealed share

    result = _tkms(
        "devnet", "stop-node", "2", "--state-dir", str(devnet.state), cwd=devnet.state.parent
    )
    assert result.returncode == 0 and "node 2 stopped" in result.stdout
    with pytest.raises(httpx.HTTPError):
        httpx.get(node2.url + "/health", timeout=2)
    result = _tkms(
        "devnet", "restart-node", "2", "--state-dir", str(devnet.state), cwd=devnet.state.parent
    )
    assert result.returncode == 0 and "node 2 restarted" in result.stdout
    result = _tkms(
        "devnet", "restart-node", "9", "--state-dir", str(devnet.state), cwd=devnet.state.parent
    )
    assert result.returncode == 1 and "has no process '9'" in _one_line(result)
    assert devnet.process.poll() is None


def test_restart_node_without_a_devnet_is_one_line(tmp_path: Path) -> None:
    result = _tkms("devnet", "restart-node", "2", "--state-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "no devnet is running" in _one_line(result)


def _pid_on_port(port: int, parent: int) -> int:
    """The child of ``parent`` listening on ``port`` (from /proc: no psutil)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inode = fields[9]
    assert inode is not None, f"nobody listens on {port}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(proc.name)
        except OSError:
            continue
    raise AssertionError(f"no child of {parent} listens on {port}")
