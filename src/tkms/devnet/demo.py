"""``tkms delegate --devnet``: the threshold flow against a devnet, without a gateway.

The devnet's nodes run in ``user`` mode: the gateway's key alone gets no partial. For a
record it makes itself the demo asks as the devnet's runner (purpose ``runner``: the
record's bound handle among the operands of a statement signed by the runner's key,
sealed to the demo's RSA key; docs/node-authorization.md, "The runner"). A K given on
the command line names no record: only nodes in ``gateway`` mode serve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx

from tkms.chain.errors import ChainError
from tkms.chain.rpc import RpcClient
from tkms.client.errors import TransportError, untrusted
from tkms.client.nodes import fetch_partials
from tkms.client.recombine import combine_partials
from tkms.crypto import curve, ecies, rsa
from tkms.crypto.encoding import parse_hex, to_hex
from tkms.crypto.wallet import Wallet
from tkms.devnet.manifest import DevnetManifest
from tkms.keyfiles import read_hex
from tkms.protocol.binding import bound_input_handle
from tkms.protocol.delegation import user_fields
from tkms.protocol.keyset import verify_keyset
from tkms.protocol.runner_statement import operand_access_header


def threshold_delegate(
    devnet_file: Path, private: rsa.RSAPrivateKey, ephemeral_pubkey: str | None
) -> Iterator[str]:
    manifest = DevnetManifest.load(devnet_file)
    chain_id = manifest.chain_id
    trusted = parse_hex(manifest.public_key, length=33)
    gateway = Wallet(read_hex(manifest.gateway_key_file))
    nodes = {n.index: (n.url, parse_hex(n.signer, length=20)) for n in manifest.nodes}
    first_url = nodes[min(nodes)][0]
    try:
        response = httpx.get(f"{first_url}/v1/keyset", params={"chain_id": str(chain_id)})
    except httpx.HTTPError as exc:
        raise TransportError(
            f"cannot reach node {min(nodes)} at {first_url} ({type(exc).__name__}): "
            "is the devnet running? (`make devnet`)"
        ) from None
    with untrusted():
        keyset = verify_keyset(response.json(), chain_id, trusted)
    record = None
    if ephemeral_pubkey is None:
        record = ecies.encrypt(curve.parse_point(trusted), b"hello from the tkms devnet")
        ephemeral_pubkey = to_hex(record.ephemeral_pubkey)
        yield f"encrypted a demo record to {manifest.public_key}"
    ephemeral = curve.parse_point(parse_hex(ephemeral_pubkey, name="ephemeralPubKey", length=33))
    target = to_hex(rsa.public_key_der(private))
    context = None if record is None else _as_runner(manifest, record, target)
    answers = asyncio.run(
        fetch_partials(nodes, gateway, chain_id, ephemeral_pubkey, target, context=context)
    )
    yield f"partials from nodes {[a.index for a in answers.answers]}"
    for index, why in sorted(answers.failures.items()):
        yield f"node {index} failed: {why}"
    shared_x = combine_partials(keyset, private, ephemeral, answers.answers, answers.failures)
    yield f"shared secret x:  {to_hex(shared_x)}"
    if record is not None:
        plaintext = ecies.decrypt_with_shared_x(shared_x, record.iv, record.ciphertext)
        yield f"decrypted:        {plaintext.decode()}"


def _as_runner(
    manifest: DevnetManifest, record: ecies.EciesRecord, target: str
) -> dict[str, str] | None:
    """The runner fields of a request for ``record``, if the devnet has a runner and a chain."""
    if manifest.runner is None or manifest.rpc_url is None:
        return None
    handle = bound_input_handle(manifest.chain_id, "string", record)
    runner = Wallet(read_hex(manifest.runner.key_file))
    try:
        with RpcClient(manifest.rpc_url) as rpc:
            head = rpc.block_number()
    except ChainError as exc:
        raise TransportError(f"cannot read the devnet's chain head: {exc}") from None
    header = operand_access_header(runner, manifest.chain_id, head, [to_hex(handle)], target)
    return user_fields(handle, record.iv, record.ciphertext, header, purpose="runner")
