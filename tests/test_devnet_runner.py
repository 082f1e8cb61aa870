"""The README's runner round trip, run as printed against `tkms devnet` (what `make devnet` runs).

The devnet makes a dev runner wallet, names it in devnet.json (``runner``:
``address``, ``keyFile``) and configures it as the gateway's
``RUNNER_ADDRESS``; the README's Python snippet then runs unchanged.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests import reaper
from tests.procs import free_port_block, wait_printed
from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import Wallet, address_hex
from tkms.keyfiles import read_hex

TKMS = str(Path(sys.executable).parent / "tkms")
README = Path(__file__).resolve().parent.parent / "README.md"


def runner_snippet() -> str:
    text = README.read_text()
    start = text.index("**The compute runner.**")
    block = text[text.index("```python\n", start) + len("```python\n") :]
    return block[: block.index("```")]


def test_the_readme_runner_round_trip(tmp_path: Path) -> None:
    base = free_port_block(6)
    log = tmp_path / "devnet.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [TKMS, "devnet", "--state-dir", "devnet-state", "--base-port", str(base)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    reaper.record(process.pid)  # its nodes and chain are reaped with it
    try:
        text = wait_printed(log, process)
        manifest = json.loads((tmp_path / "devnet-state" / "devnet.json").read_text())
        runner = manifest["runner"]
        key = Path(runner["keyFile"])
        assert key == (tmp_path / "devnet-state" / "keys" / "runner.key").resolve()
        assert runner["address"] == address_hex(Wallet(read_hex(key)).address)
        assert runner["address"] in text and parse_hex(runner["address"], length=20)
        result = subprocess.run(
            [sys.executable, "-c", runner_snippet()],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["1 created, 0 unchanged, 0 conflicted", "42"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
