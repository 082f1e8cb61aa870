"""Starting a devnet where something fails: the failing process's own log is on screen;
and the install step that `make devnet` and `make test` share is safe to run twice at once."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.procs import free_port, free_port_block
from tkms.devnet.manifest import DevnetManifest, ManifestNode
from tkms.devnet.processes import ServiceFailed, start, wait_service_healthy

TKMS = str(Path(sys.executable).parent / "tkms")
REPO = Path(__file__).resolve().parent.parent


def test_a_service_that_dies_is_reported_with_its_last_log_lines(tmp_path: Path) -> None:
    port = free_port()
    service = start(["node"], {"TKMS_NODE_SERVER__PORT": str(port)}, tmp_path / "n.log", port)
    with pytest.raises(ServiceFailed) as err:
        wait_service_healthy(service)
    message = str(err.value)
    assert "exited with code 2 before it was healthy" in message
    assert f"last lines of {tmp_path / 'n.log'}" in message
    assert "| error: invalid configuration: missing" in message  # the node's own words


def test_a_devnet_whose_node_cannot_start_shows_that_nodes_log(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "node2").mkdir(parents=True, mode=0o700)
    (state / "node2" / "keystore.sealed").write_bytes(b"not a keystore")
    base = free_port_block(3)
    result = subprocess.run(
        [
            TKMS,
            "devnet",
            "--state-dir",
            str(state),
            "--base-port",
            str(base),
            "--nodes",
            "2",
            "--threshold",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "devnet up" not in result.stderr
    first, *tail = result.stderr.strip().splitlines()
    assert "node 2 exited with code 2 before it was healthy" in first
    assert f"last lines of {state / 'logs' / 'node2.log'}" in first
    assert any(line.startswith("  | ") and "TKMS_NODE_" in line for line in tail), tail


def test_a_busy_chain_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    base = free_port_block(2)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", base + 2))  # anvil's port of a one-node devnet
        busy.listen()
        result = subprocess.run(
            [TKMS, "devnet", "--nodes", "1", "--state-dir", "st", "--base-port", str(base)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    assert result.returncode == 2
    line = result.stderr.strip()
    assert f"port {base + 2} is already in use" in line and "the chain" in line
    assert not (tmp_path / "st" / "chain").exists()


def test_the_manifest_keeps_the_chain_and_reads_one_without_it(tmp_path: Path) -> None:
    manifest = DevnetManifest(
        chain_id=421614,
        threshold=1,
        public_key="0x02" + "11" * 32,
        gateway_key_file=tmp_path / "gw.key",
        nodes=(ManifestNode(1, "http://127.0.0.1:9101", "0x" + "22" * 20),),
        gateway_url="http://127.0.0.1:9100",
        gateway_signer="0x" + "33" * 20,
        verifying_contract="0x" + "44" * 20,
        rpc_url="http://127.0.0.1:9102",
        nox_compute="0x" + "44" * 20,
        app="0x" + "55" * 20,
    )
    data = manifest.to_json()
    assert (data["rpcUrl"], data["noxCompute"], data["app"]) == (
        "http://127.0.0.1:9102",
        "0x" + "44" * 20,
        "0x" + "55" * 20,
    )
    assert DevnetManifest.from_json(json.loads(json.dumps(data))) == manifest
    for name in ("rpcUrl", "noxCompute", "app"):
        del data[name]
    older = DevnetManifest.from_json(data)
    assert older.rpc_url is None and older.nox_compute is None and older.app is None


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python3: -c runs the real one, -m venv makes a venv whose python
# logs each call (a pip install) and takes a second over it.
if [ "$1" = "-c" ]; then exec python3 "$@"; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin"
    log="$3/calls.log"
    printf '#!/usr/bin/env bash\\necho "$PPID $*" >> "%s"\\nsleep 1\\n' "$log" > "$3/bin/python"
    chmod +x "$3/bin/python"
    echo "venv $$" >> "$3/calls.log"
    exit 0
fi
exit 1
"""


def test_two_installs_at_once_both_succeed_and_one_installs(tmp_path: Path) -> None:
    fake = tmp_path / "python3-fake"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    stamp = venv / ".installed-test"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "VENV": str(venv)}
    begin = time.monotonic()
    runs = [
        subprocess.Popen(
            [str(REPO / ".ci" / "install-venv.sh"), str(stamp)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert time.monotonic() - begin < 20
    calls = (venv / "calls.log").read_text().splitlines()
    assert len([c for c in calls if c.startswith("venv ")]) == 1, calls
    installs = [c for c in calls if " -m pip install " in c]
    assert len(installs) == 3, calls  # pip itself, the lock, the project: once
    assert len({c.split()[0] for c in installs}) == 1
    assert stamp.exists()
