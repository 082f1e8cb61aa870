"""The README's user story, run as printed against `tkms devnet` (what `make devnet` runs)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests import reaper
from tests.procs import check_devnet_chain, devnet_chain, free_port_block, wait_printed
from tkms.crypto.encoding import parse_hex

TKMS = str(Path(sys.executable).parent / "tkms")


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_encrypt_grant_decrypt_and_a_stranger_refused(tmp_path: Path) -> None:
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
        gateway = manifest["gateway"]
        assert gateway["url"] == f"http://127.0.0.1:{base}" and gateway["url"] in text
        assert re.fullmatch(r"0x[0-9a-f]{40}", gateway["signer"])
        assert re.fullmatch(r"0x[0-9a-f]{40}", manifest["verifyingContract"])
        assert set(manifest["users"]) == {"user", "bob"}
        # On a chain: anvil on base + 6, NoxCompute's gateway() and kmsPublicKey() are the
        # devnet's, and the Nox SDK's three settings are printed.
        assert manifest["rpcUrl"] == f"http://127.0.0.1:{base + 6}"
        check_devnet_chain(tmp_path / "devnet-state")
        nox_sdk = text[text.index("The Nox SDK on this chain") :]
        assert f"gatewayUrl            {gateway['url']}" in nox_sdk
        assert f"smartContractAddress  {manifest['noxCompute']}" in nox_sdk
        assert manifest["rpcUrl"] in nox_sdk
        # The gateway reads the chain's ACL: it keeps no grants of its own.
        assert manifest["acl"] == "chain" and "ACL             on chain" in text

        story = text[text.index("The user's story") :].splitlines()[1:4]
        assert [line.split()[0] for line in story] == [
            "H=$(.venv/bin/tkms",
            ".venv/bin/tkms",
            ".venv/bin/tkms",
        ]
        script = "\n".join(line.strip().replace(".venv/bin/tkms", TKMS) for line in story)
        result = _sh(script + '\necho "handle $H"', tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-2] == "1000"
        assert f"viewer to {manifest['users']['bob']['address']}" in result.stdout
        # Only the owner's transaction: no gateway grant (whose listing would print "owner").
        assert "on chain (tx 0x" in result.stdout and "owner" not in result.stdout
        # ... and on chain: encrypt registered the handle through the demo app (its owner
        # is an admin), grant sent addViewer.
        assert "registered on chain (tx 0x" in result.stderr
        handle = parse_hex(result.stdout.split("handle ")[-1].strip(), length=32)
        listing = httpx.get(f"{gateway['url']}/v1/acl/0x{handle.hex()}", timeout=5)
        assert listing.status_code == 501 and listing.json()["error"] == "not_configured"
        _, nox = devnet_chain(tmp_path / "devnet-state")
        user, bob = (parse_hex(manifest["users"][n]["address"], length=20) for n in ("user", "bob"))
        assert nox.is_allowed(handle, user) and nox.is_viewer(handle, bob)
        assert not nox.is_allowed(handle, bob) and not nox.is_publicly_decryptable(handle)
        public = _sh(f"{TKMS} grant 0x{handle.hex()} public", tmp_path)
        assert public.returncode == 0, public.stderr
        assert "on chain (tx 0x" in public.stdout and nox.is_publicly_decryptable(handle)

        stranger = _sh(
            f"{TKMS} keygen --kind wallet --out devnet-state/stranger.key >/dev/null\n"
            f"H=$({TKMS} encrypt --type string 'for bob only')\n"
            f"{TKMS} grant $H bob >/dev/null\n"
            f"{TKMS} decrypt $H --key-file devnet-state/keys/bob.key\n"
            f"{TKMS} decrypt $H --key-file devnet-state/stranger.key",
            tmp_path,
        )
        assert stranger.returncode == 1
        assert stranger.stdout.strip() == "for bob only"
        assert "403 access_denied" in stranger.stderr and "Traceback" not in stranger.stderr
        # allowPublicDecryption above: the chain now lets anyone read the first handle.
        public_read = _sh(
            f"{TKMS} decrypt 0x{handle.hex()} --key-file devnet-state/stranger.key", tmp_path
        )
        assert public_read.returncode == 0, public_read.stderr
        assert public_read.stdout.strip() == "1000"

        # The README's Python story, as printed.
        readme = (Path(__file__).parent.parent / "README.md").read_text()
        python = next(
            block.split("\n", 1)[1]
            for block in readme.split("```")
            if block.startswith("python") and "Client.from_devnet() as alice" in block
        )
        sdk = subprocess.run(
            [sys.executable, "-c", python],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert sdk.returncode == 0, sdk.stderr
        assert "is not a viewer of this handle" in sdk.stdout
        assert sdk.stdout.strip().endswith("-> 1000")

        negative = _sh(f"H=$({TKMS} encrypt --type int8 -5)\n{TKMS} decrypt $H", tmp_path)
        assert negative.returncode == 0, negative.stderr
        assert negative.stdout.strip().splitlines()[-1] == "-5"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    try:
        httpx.get(f"http://127.0.0.1:{base}/health", timeout=1)
        raise AssertionError("the gateway outlived the devnet")
    except httpx.HTTPError:
        pass
