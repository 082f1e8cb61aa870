"""The ``tkms`` command line: keys, a node, a dev delegation client, the devnet."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tkms.cli_audit import audit_app
from tkms.cli_ceremony import RawKeyOption, register_ceremony_commands
from tkms.cli_ceremony import wallet_from as _wallet_from
from tkms.cli_devnet import devnet_app
from tkms.cli_output import console, exit_code, fail
from tkms.cli_records import migrate_records
from tkms.cli_values import parse_cli_value, resolve_account, show_value
from tkms.crypto import curve, rsa
from tkms.crypto.encoding import EncodingError, parse_hex, to_hex
from tkms.crypto.wallet import Wallet, address_hex
from tkms.envconfig import ConfigError
from tkms.keyfiles import write_hex, write_private
from tkms.protocol.solidity import PlainInput

if TYPE_CHECKING:
    from tkms.client import Client
    from tkms.devnet.manifest import DevnetManifest

app = typer.Typer(
    name="tkms",
    help=(
        "Threshold KMS for ECIES decryption delegation on secp256k1.\n\n"
        "Start with `tkms devnet` (what `make devnet` runs), then try the printed example."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class KeyKind(StrEnum):
    kms = "kms"
    wallet = "wallet"
    rsa = "rsa"


@app.command()
def keygen(
    kind: Annotated[KeyKind, typer.Option(help="kms: ECIES key; wallet: signer; rsa: RSA-2048")] = (
        KeyKind.kms
    ),
    out: Annotated[
        Path | None, typer.Option(help="write the private key here (mode 0600), not stdout")
    ] = None,
) -> None:
    """Make a new KMS key, wallet key or RSA key; prints its public part."""
    if kind is KeyKind.rsa:
        key = rsa.generate_private_key()
        if out is not None:
            write_private(out, rsa.private_key_der(key))
        else:
            typer.echo(f"private (PKCS#8 DER): {to_hex(rsa.private_key_der(key))}")
        typer.echo(f"public (SPKI DER):    {to_hex(rsa.public_key_der(key))}")
        return
    secret = curve.scalar_to_bytes(curve.random_scalar())
    if out is not None:
        write_hex(out, secret)
        typer.echo(f"private key written to {out} (mode 0600)")
    else:
        typer.echo(f"private key: {to_hex(secret)}")
    if kind is KeyKind.kms:
        typer.echo(
            f"public key:  {to_hex(curve.encode_point(curve.base_mul(int.from_bytes(secret))))}"
        )
    else:
        typer.echo(f"address:     {address_hex(Wallet(secret).address)}")


@app.command()
def node(
    host: Annotated[str | None, typer.Option(help="overrides NOX_KMS_SERVER__HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides NOX_KMS_SERVER__PORT")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
) -> None:
    """Run a KMS node configured by NOX_KMS_* / TKMS_NODE_* variables."""
    from tkms.node.server import serve

    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"TKMS_NODE_SERVER__{name}"] = str(value)
    try:
        serve()
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")


# Not TKMS_GATEWAY_…: the gateway's own configuration owns that prefix (and refuses strangers).
DELEGATE_GATEWAY_KEY_ENV = "TKMS_DELEGATE_GATEWAY_KEY"


@app.command()
def delegate(
    node_url: Annotated[str | None, typer.Option("--node", help="a v0 node URL")] = None,
    devnet_file: Annotated[
        Path | None, typer.Option("--devnet", help="devnet.json: ask every node for a v1 partial")
    ] = None,
    ephemeral_pubkey: Annotated[
        str | None, typer.Option(help="K of a record (33-byte hex); with --devnet, optional")
    ] = None,
    chain_id: Annotated[int, typer.Option(help="chain id (--node)")] = 421614,
    gateway_key: RawKeyOption = None,
    gateway_key_file: Annotated[
        Path | None,
        typer.Option(
            help=f"file holding the gateway wallet key (hex), or set {DELEGATE_GATEWAY_KEY_ENV}"
        ),
    ] = None,
    rsa_key_file: Annotated[
        Path | None, typer.Option(help="your RSA PKCS#8 DER key; a fresh one if omitted")
    ] = None,
    node_signer: Annotated[
        str | None, typer.Option(help="expected node wallet address (checked if given)")
    ] = None,
) -> None:
    """Dev client: sign a delegation as the gateway, ask the node(s), open the answer.

    With --devnet and no --ephemeral-pubkey it encrypts a demo record to the
    devnet's key, gathers partials from every node, verifies and recombines
    them, and decrypts.
    """
    from tkms.client.errors import TkmsError

    private = (
        rsa.load_private_key(rsa_key_file.read_bytes())
        if rsa_key_file
        else rsa.generate_private_key()
    )
    try:
        if devnet_file is not None:
            from tkms.devnet.demo import threshold_delegate

            for line in threshold_delegate(devnet_file, private, ephemeral_pubkey):
                typer.echo(line)
            return
        if node_url is None or ephemeral_pubkey is None:
            fail("give --node and --ephemeral-pubkey, or --devnet")
        _delegate_v0(
            node_url,
            chain_id,
            ephemeral_pubkey,
            gateway_key,
            gateway_key_file,
            private,
            node_signer,
        )
    except (TkmsError, EncodingError, OSError, ValueError) as exc:
        fail(str(exc), exit_code(exc))
    except rsa.RsaDecryptError as exc:
        fail(str(exc), 1)


def _delegate_v0(
    node_url: str,
    chain_id: int,
    ephemeral_pubkey: str,
    gateway_key: str | None,
    gateway_key_file: Path | None,
    private: rsa.RSAPrivateKey,
    node_signer: str | None,
) -> None:
    from tkms.client.delegation import delegate_v0, open_shared_secret

    gateway = _wallet_from(
        gateway_key_file, DELEGATE_GATEWAY_KEY_ENV, "--gateway-key-file", "gateway key", gateway_key
    )
    answer = delegate_v0(
        node_url, gateway, chain_id, ephemeral_pubkey, to_hex(rsa.public_key_der(private))
    )
    if node_signer is not None and answer.signer != parse_hex(node_signer, length=20):
        fail(f"proof signed by {address_hex(answer.signer)}, expected {node_signer}", 1)
    shared_x = open_shared_secret(private, answer)
    typer.echo(f"proof signer:     {address_hex(answer.signer)}")
    typer.echo(f"shared secret x:  {to_hex(shared_x)}")


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="overrides TKMS_GATEWAY_SERVER__HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides TKMS_GATEWAY_SERVER__PORT")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
) -> None:
    """Run the Handle Gateway configured by NOX_HANDLE_GATEWAY_* / TKMS_GATEWAY_* variables."""
    from tkms.gateway.server import serve

    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[f"TKMS_GATEWAY_SERVER__{name}"] = str(value)
    try:
        serve()
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")


DEVNET_FILE = Path("devnet-state/devnet.json")
DevnetOption = Annotated[
    Path, typer.Option("--devnet", help="devnet.json: the gateway, its signer, the KMS key")
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(help="your wallet key file (default: the devnet's dev user, keys/user.key)"),
]


def _parsed(text: str, solidity_type: str) -> PlainInput:
    try:
        return parse_cli_value(text, solidity_type)
    except ValueError as exc:
        fail(str(exc))


def _manifest(devnet_file: Path) -> DevnetManifest:
    from tkms.devnet.manifest import DevnetManifest, ManifestError

    try:
        return DevnetManifest.load(devnet_file)
    except ManifestError as exc:
        fail(str(exc))


def _sdk(devnet_file: Path, key_file: Path | None) -> Client:
    from tkms.client import Client, TkmsError

    try:
        return Client.from_devnet(devnet_file, key_file=key_file, keep_material=True)
    except (TkmsError, OSError, ValueError) as exc:
        fail(str(exc), exit_code(exc))


@app.command(context_settings={"ignore_unknown_options": True})
def encrypt(
    value: Annotated[str, typer.Argument(help="1000, -5, true, 0x… (address, bytes), or text")],
    solidity_type: Annotated[
        str, typer.Option("--type", help="uint8..uint256, int8..int256, bool, address, …")
    ] = "uint256",
    devnet_file: DevnetOption = DEVNET_FILE,
    key_file: KeyFileOption = None,
    application: Annotated[str | None, typer.Option(help="application contract")] = None,
) -> None:
    """Encrypt a value; prints the new handle (your wallet owns it).

    In front of a threshold KMS the value is encrypted here, to kmsPublicKey() (or
    the devnet's key), and the gateway gets only the record (POST /v1/secrets).

    On a devnet with a chain it then registers the handle through the demo app (one
    transaction from your wallet, waited for), so that you are its admin on chain: on
    the chain's ACL (the devnet's default) that is what lets you decrypt it. With
    --application (another app) it does not: that app registers its handles."""
    from tkms.client import TkmsError

    with _sdk(devnet_file, key_file) as client:
        try:
            created = client.encrypt(
                _parsed(value, solidity_type), solidity_type, application=application
            )
            console.print(f"{solidity_type} stored, owner {client.address}", highlight=False)
            if client.on_chain and application is None:
                tx = client.register_on_chain(created)
                console.print(f"registered on chain (tx {tx})", highlight=False)
        except TkmsError as exc:
            fail(str(exc), exit_code(exc))
        typer.echo(created.handle)


@app.command()
def grant(
    handle: Annotated[str, typer.Argument(help="0x + 64 hex digits")],
    account: Annotated[
        str, typer.Argument(help="an address, a devnet user name (bob), or 'public'")
    ],
    role: Annotated[str, typer.Option(help="viewer or admin")] = "viewer",
    devnet_file: DevnetOption = DEVNET_FILE,
    key_file: KeyFileOption = None,
) -> None:
    """Let an account read a handle (you must own it or be one of its admins).

    On the devnet's chain ACL (its default) this is one transaction from your wallet,
    as in a dApp: addViewer (allow for --role admin, allowPublicDecryption for
    'public'), waiting for the receipt. On a devnet run with --acl embedded it also
    posts the gateway's grant first."""
    from tkms.client import TkmsError

    on_chain_acl = _manifest(devnet_file).acl_on_chain
    public = account == "public"
    acl = tx = None
    with _sdk(devnet_file, key_file) as client:
        try:
            who = account if public else resolve_account(account, devnet_file)
            if not on_chain_acl:  # the gateway decides by its own grants
                acl = client.make_public(handle) if public else client.grant(handle, who, role)
            if client.on_chain:
                if public:
                    tx = client.make_public_on_chain(handle)
                else:
                    tx = client.grant_on_chain(handle, who, role)
        except (TkmsError, ValueError) as exc:
            fail(str(exc), exit_code(exc))
    typer.echo(f"granted {'public read' if public else f'{role} to {who}'}")
    if acl is not None:
        typer.echo(f"  owner   {acl.owner}")
        for name, members in (("admins", acl.admins), ("viewers", acl.viewers)):
            if members:
                typer.echo(f"  {name:<7} {', '.join(members)}")
        if acl.public:
            typer.echo("  public  yes: anyone may decrypt")
    if tx is not None:
        typer.echo(f"  on chain (tx {tx})")
    if on_chain_acl:
        typer.echo("  the gateway reads this grant from NoxCompute (isViewer) from now on")


@app.command()
def decrypt(
    handle: Annotated[str, typer.Argument(help="0x + 64 hex digits")],
    devnet_file: DevnetOption = DEVNET_FILE,
    key_file: KeyFileOption = None,
) -> None:
    """Decrypt a handle you may read; prints its value."""
    from tkms.client import TkmsError

    with _sdk(devnet_file, key_file) as client:
        try:
            value = client.decrypt(handle)
        except TkmsError as exc:
            fail(str(exc), exit_code(exc))
    typer.echo(show_value(value))


register_ceremony_commands(app)
app.add_typer(devnet_app)
app.add_typer(audit_app)
app.command("migrate-records")(migrate_records)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
