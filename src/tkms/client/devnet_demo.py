"""``tkms delegate --devnet``: the threshold flow against a devnet, without a gateway."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx

from tkms.client.errors import untrusted
from tkms.client.nodes import fetch_partials
from tkms.client.recombine import combine_partials
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.dkg.keyset import verify_keyset
from tkms.keyfiles import read_hex


def threshold_delegate(
    devnet_file: Path, private: rsa.RSAPrivateKey, ephemeral_pubkey: str | None
) -> Iterator[str]:
    manifest = json.loads(devnet_file.read_text())
    chain_id = int(manifest["chainId"])
    trusted = parse_hex(manifest["publicKey"], length=33)
    gateway = Wallet(read_hex(Path(manifest["gatewayKeyFile"])))
    nodes = {
        int(n["index"]): (str(n["url"]), parse_hex(n["signer"], length=20))
        for n in manifest["nodes"]
    }
    first_url = nodes[min(nodes)][0]
    keyset_body = httpx.get(f"{first_url}/v1/keyset", params={"chain_id": str(chain_id)}).json()
    with untrusted():
        keyset = verify_keyset(keyset_body, chain_id, trusted)
    record = None
    if ephemeral_pubkey is None:
        record = ecies.encrypt(curve.parse_point(trusted), b"hello from the tkms devnet")
        ephemeral_pubkey = to_hex(record.ephemeral_pubkey)
        yield f"encrypted a demo record to {manifest['publicKey']}"
    ephemeral = curve.parse_point(parse_hex(ephemeral_pubkey, name="ephemeralPubKey", length=33))
    answers = asyncio.run(
        fetch_partials(
            nodes, gateway, chain_id, ephemeral_pubkey, to_hex(rsa.public_key_der(private))
        )
    )
    yield f"partials from nodes {[a.index for a in answers.answers]}"
    for index, why in sorted(answers.failures.items()):
        yield f"node {index} failed: {why}"
    shared_x = combine_partials(keyset, private, ephemeral, answers.answers, answers.failures)
    yield f"shared secret x:  {to_hex(shared_x)}"
    if record is not None:
        plaintext = ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)
        yield f"decrypted:        {plaintext.decode()}"
