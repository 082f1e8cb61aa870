"""`tkms devnet` (what `make devnet` runs): comes up, and its printed examples work as printed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.procs import (
    check_devnet_chain,
    check_devnet_secrets,
    devnet_chain,
    free_port_block,
    start_devnet,
    wait_printed,
)
from tkms.crypto.encoding import parse_hex


def test_single_node_devnet_examples_work_as_printed(tmp_path: Path) -> None:
    port = free_port_block(3)  # the gateway, the node, the chain: below the ephemeral range
    state = tmp_path / "state"
    log = tmp_path / "devnet.log"
    venv_bin = Path(sys.executable).parent
    process = start_devnet(state, port, log, "--nodes", "1")
    try:
        text = wait_printed(log, process)
        manifest = json.loads((state / "devnet.json").read_text())
        assert manifest["nodes"][0]["url"] == f"http://127.0.0.1:{port + 1}"
        assert manifest["gateway"]["url"] == f"http://127.0.0.1:{port}"
        check_devnet_secrets(state)
        # A v0 node checks its key against kmsPublicKey() at start: it is on chain.
        assert manifest["rpcUrl"] == f"http://127.0.0.1:{port + 2}"
        check_devnet_chain(state)

        cli_line = next(line for line in text.splitlines() if "tkms delegate" in line).strip()
        expected = re.search(r"shared secret x:\s+(0x[0-9a-f]{64})", text)
        assert expected is not None
        args = shlex.split(cli_line)
        args[0] = str(venv_bin / "tkms")  # the README runs it from the checkout as .venv/bin/tkms
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert expected.group(1) in result.stdout
        assert manifest["nodes"][0]["signer"] in result.stdout

        curl_line = next(
            line for line in text.splitlines() if line.strip().startswith("curl ")
        ).strip()
        assert shutil.which("curl"), "curl is needed to replay the printed example"
        result = subprocess.run(
            shlex.split(curl_line), capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        answer = json.loads(result.stdout)
        assert set(answer) == {"encryptedSharedSecret", "proof"}
        assert httpx.get(f"http://127.0.0.1:{port + 1}/health").json() == {"status": "ok"}

        # The printed story works too, through the gateway's nox (v0) mode.
        story = [line.strip() for line in text.splitlines() if ".venv/bin/tkms " in line]
        script = "\n".join(
            line for line in story if "encrypt" in line or "grant" in line or "decrypt" in line
        )
        script = script.replace(".venv/bin/tkms", str(Path(sys.executable).parent / "tkms"))
        result = subprocess.run(
            ["bash", "-c", "set -e\n" + script + '\necho "handle $H"'],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-2] == "1000"
        handle = parse_hex(result.stdout.split("handle ")[-1].strip(), length=32)
        bob = parse_hex(manifest["users"]["bob"]["address"], length=20)
        _, nox = devnet_chain(state)
        assert nox.is_viewer(handle, bob)
        # One node too: the gateway reads the chain's ACL, the grant was only addViewer.
        assert manifest["acl"] == "chain" and "owner" not in result.stdout
    finally:
        process.terminate()
        process.wait(timeout=20)
    # Every process it started is gone with it.
    time.sleep(0.3)
    try:
        httpx.get(f"http://127.0.0.1:{port + 1}/health", timeout=1)
        raise AssertionError("the node outlived the devnet")
    except httpx.HTTPError:
        pass

    # Restarted on the same state it keeps its keys; with --acl embedded, on the gateway's
    # own grants (the same chain still linked).
    first = json.loads((state / "devnet.json").read_text())
    port2 = free_port_block(3)
    log2 = tmp_path / "devnet2.log"
    process = start_devnet(state, port2, log2, "--nodes", "1", "--acl", "embedded")
    try:
        wait_printed(log2, process)
        second = json.loads((state / "devnet.json").read_text())
        assert second["publicKey"] == first["publicKey"]
        assert second["nodes"][0]["signer"] == first["nodes"][0]["signer"]
        # ... and its chain (anvil's --state): the same contracts, the grant still there.
        assert (second["noxCompute"], second["app"]) == (first["noxCompute"], first["app"])
        check_devnet_chain(state)
        assert devnet_chain(state)[1].is_viewer(handle, bob)
        assert second["acl"] == "embedded" and "ACL             embedded" in log2.read_text()
        # The handle granted on chain only is not in the gateway's ACL; a new story
        # writes both: the gateway's grant (its listing) and the owner's addViewer.
        tkms = str(Path(sys.executable).parent / "tkms")
        flag = f"--devnet {state}/devnet.json"
        story = subprocess.run(
            [
                "bash",
                "-c",
                f"set -e\nH=$({tkms} encrypt {flag} --type uint8 7)\n"
                f"{tkms} grant {flag} $H bob\n"
                f"{tkms} decrypt {flag} $H --key-file {state}/keys/bob.key",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert story.returncode == 0, story.stderr
        assert "  owner   " in story.stdout and "on chain (tx 0x" in story.stdout
        assert story.stdout.strip().splitlines()[-1] == "7"
    finally:
        process.terminate()
        process.wait(timeout=20)
