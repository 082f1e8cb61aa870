"""A `tkms devnet` for a benchmark: started on free ports, waited for, stopped; what its
nodes' metrics say they served.

bench/e2e.py, first_call.py, gateway_ab.py, node_cpu.py, sdk_decrypt.py, soak.py and
shape_floor.py each run one or more.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tkms.devnet.manifest import DevnetManifest
from tkms.devnet.processes import free_port_block


@contextmanager
def devnet(acl: str, node_mode: str = "user") -> Iterator[tuple[Path, int]]:
    """(the manifest's path, the devnet's pid) of a devnet running until the block ends."""
    with tempfile.TemporaryDirectory(prefix="tkms-e2e-") as root:
        state = Path(root) / "state"
        log = Path(root) / "devnet.log"
        command = [sys.executable, "-m", "tkms", "devnet", "--state-dir", str(state)]
        command += ["--acl", acl, "--base-port", str(free_port_block(6))]  # gateway…anvil
        command += ["--node-mode", node_mode]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 120
            while "Ctrl-C stops the devnet" not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text())
                time.sleep(0.2)
            yield state / "devnet.json", process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def node_seconds(manifest: DevnetManifest) -> tuple[float, float]:
    """(sum, count) of the nodes' own /v1/delegate handling time, from their /metrics."""
    total, count = 0.0, 0.0
    name = "tkms_node_http_request_duration_seconds"
    for node in manifest.nodes:
        for line in httpx.get(node.url + "/metrics").text.splitlines():
            if 'route="/v1/delegate"' in line:
                if line.startswith(name + "_sum"):
                    total += float(line.rsplit(" ", 1)[1])
                elif line.startswith(name + "_count"):
                    count += float(line.rsplit(" ", 1)[1])
    return total, count
