"""The key ceremonies' commands: ``tkms dkg``, ``tkms reshare`` and ``tkms import-key``.

The admin key signs each ceremony's statements; it comes from a file or the
environment, never the command line (where ``ps`` shows it to everyone).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tkms.cli_output import console, fail
from tkms.crypto.encoding import parse_hex
from tkms.crypto.wallet import Wallet
from tkms.keyfiles import read_hex

ADMIN_KEY_ENV = "TKMS_ADMIN_KEY"

# The old --admin-key/--gateway-key: accepted only to say why they are refused.
RawKeyOption = Annotated[str | None, typer.Option(hidden=True)]
AdminKeyFile = Annotated[
    Path | None,
    typer.Option(help=f"file holding the committee admin key (hex), or set {ADMIN_KEY_ENV}"),
]


def wallet_from(
    key_file: Path | None, env_var: str, option: str, what: str, raw: str | None = None
) -> Wallet:
    """A key from its file or its environment variable: never from the command line,
    where every user of the machine reads it (``ps``, /proc/<pid>/cmdline)."""
    if raw is not None:
        fail(
            f"{what}: a key given on the command line is visible to every user (ps); "
            f"give {option} or set {env_var}"
        )
    try:
        if key_file is not None:
            return Wallet(read_hex(key_file))
        value = os.environ.get(env_var, "").strip()
        if value:
            return Wallet(parse_hex(value, name=env_var, length=32))
    except (OSError, ValueError) as exc:
        fail(f"{what}: {exc}")
    fail(f"{what}: give {option} (a file holding the hex key) or set {env_var}")


def _admin(admin_key_file: Path | None, admin_key: str | None) -> Wallet:
    return wallet_from(admin_key_file, ADMIN_KEY_ENV, "--admin-key-file", "admin key", admin_key)


def _report(outcome: Any) -> None:
    for index, complaint in sorted(outcome.complaints.items()):
        console.print(f"node {index} complained about dealers {complaint}")
    for index, errors in sorted(outcome.rejected.items()):
        console.print(f"node {index} refused {len(errors)} message(s): {errors[0]}")


def _write_keyset(keyset: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        out.write_text(json.dumps(keyset, indent=2) + "\n")
        console.print(f"keyset written to {out}")
    typer.echo(f"public key: {keyset['publicKey']}")


def dkg(
    committee: Annotated[
        Path, typer.Option(help='committee.json: {"chainId", "nodes": [{"index", "url"}]}')
    ],
    threshold: Annotated[int, typer.Option(min=1, help="partials needed to decrypt")],
    admin_key: RawKeyOption = None,
    admin_key_file: AdminKeyFile = None,
    epoch: Annotated[int, typer.Option(min=0, help="the keyset epoch to create")] = 1,
    out: Annotated[Path | None, typer.Option(help="write the signed keyset here")] = None,
) -> None:
    """Run a DKG ceremony across a committee of nodes, as its relay."""
    from tkms.client.relay import CeremonyError, Committee, run_ceremony
    from tkms.ui import ceremony_progress

    admin = _admin(admin_key_file, admin_key)
    try:
        members = Committee.load(committee)
        console.print(
            f"key generation: {len(members.nodes)} nodes, threshold {threshold}, "
            f"chain {members.chain_id}, epoch {epoch}"
        )
        with ceremony_progress(console) as progress:
            outcome = run_ceremony(members, admin, threshold, epoch=epoch, progress=progress)
    except CeremonyError as exc:
        fail(str(exc))
    _report(outcome)
    if outcome.keyset is None:
        detail = "; ".join(f"node {i}: {e}" for i, e in sorted(outcome.errors.items()))
        fail(f"the ceremony failed: {detail}")
    console.print(f"qualified dealers {outcome.qualified}")
    _write_keyset(outcome.keyset, out)


def reshare(
    old: Annotated[Path, typer.Option(help="committee file of the committee holding the key")],
    new: Annotated[Path, typer.Option(help="committee file of the committee to reshare to")],
    threshold: Annotated[int, typer.Option(min=1, help="the new committee's threshold")],
    admin_key: RawKeyOption = None,
    admin_key_file: AdminKeyFile = None,
    trusted_key: Annotated[
        str | None,
        typer.Option(help="the trusted Y (0x…, compressed): the old keyset must have it"),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the new signed keyset here")] = None,
) -> None:
    """Reshare a chain's key to a new committee: same public key, epoch + 1."""
    from tkms.client.relay import CeremonyError, Committee
    from tkms.client.reshare_relay import run_reshare
    from tkms.ui import ceremony_progress

    admin = _admin(admin_key_file, admin_key)
    try:
        trusted = parse_hex(trusted_key, length=33) if trusted_key is not None else None
    except ValueError as exc:
        fail(f"--trusted-key: {exc}")
    try:
        before, after = Committee.load(old), Committee.load(new)
        console.print(
            f"reshare: {len(before.nodes)} → {len(after.nodes)} nodes, threshold {threshold}, "
            f"chain {after.chain_id}"
        )
        with ceremony_progress(console) as progress:
            outcome = run_reshare(
                before, after, admin, threshold, trusted=trusted, progress=progress
            )
    except CeremonyError as exc:
        fail(str(exc))
    assert outcome.progress is not None
    _report(outcome.progress)
    if outcome.keyset is None:
        detail = "; ".join(
            f"{outcome.urls.get(k, k)}: {e}" for k, e in sorted(outcome.errors.items())
        )
        fail(f"the reshare failed, the old epoch serves on: {detail}")
    console.print(
        f"epoch {outcome.keyset['epoch']}: qualified dealers {outcome.qualified}"
        + (f", disqualified {outcome.disqualified}" if outcome.disqualified else "")
    )
    _write_keyset(outcome.keyset, out)


def import_key(
    chain_id: Annotated[int, typer.Option(min=1, help="the chain whose ECC_KEY to import")],
    key_file: Annotated[
        Path | None,
        typer.Option(help="the key (hex); else NOX_KMS_CHAINS__<id>__ECC_KEY[_FILE] as nox-kms"),
    ] = None,
) -> None:
    """Seal a nox-kms key into this node's keystore as a 1-of-1 committee (then reshare it).

    Run with the node's environment (wallet, TKMS_NODE_STATE_DIR, TKMS_NODE_SEALING_KEY),
    with the node stopped. Then start the node without ECC_KEY and run `tkms reshare`.
    """
    from tkms.envconfig import ConfigError
    from tkms.node.config import load_node_config
    from tkms.node.import_key import import_key as seal

    try:
        config = load_node_config()
        if key_file is not None:
            secret = read_hex(key_file)
        else:
            chain = config.chains.get(chain_id)
            if chain is None or chain.ecc_key is None:
                fail(f"no --key-file and no NOX_KMS_CHAINS__{chain_id}__ECC_KEY")
            secret = parse_hex(chain.ecc_key.get_secret_value(), length=32)
        keyset = seal(config, chain_id, secret)
    except (ConfigError, OSError, ValueError) as exc:
        fail(str(exc))
    del secret
    console.print(
        f"chain {chain_id}: sealed as a 1-of-1 committee (epoch {keyset['epoch']}); start the"
        " node WITHOUT its ECC_KEY, then `tkms reshare` it to the new committee"
    )
    typer.echo(f"public key: {keyset['publicKey']}")


def register_ceremony_commands(app: typer.Typer) -> None:
    app.command()(dkg)
    app.command()(reshare)
    app.command("import-key")(import_key)
