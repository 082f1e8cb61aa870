"""Command-line words ↔ Python values for ``tkms encrypt|grant|decrypt``."""

from __future__ import annotations

from pathlib import Path

from tkms.crypto.encoding import to_hex
from tkms.devnet.manifest import DevnetManifest
from tkms.protocol.solidity import PlainInput, PlainValue


def parse_cli_value(text: str, solidity_type: str) -> PlainInput:
    """The value its type wants; the SDK then checks range and length."""
    kind = solidity_type.rstrip("0123456789")
    if kind in ("uint", "int"):
        try:
            return int(text, 0)  # 1000, -5, 0xff
        except ValueError:
            raise ValueError(f"{solidity_type}: {text!r} is not an integer") from None
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError("bool: give true or false")
        return text.lower() in ("true", "1")
    return text  # address, bytes, bytesN: 0x hex; string: the text itself


def resolve_account(account: str, devnet_file: Path) -> str:
    """An address as given, or the address of a devnet user by name (``bob``)."""
    if account.startswith(("0x", "0X")):
        return account
    users = DevnetManifest.load(devnet_file).users
    if account not in users:
        raise ValueError(f"{account!r} is neither an address nor a user of {devnet_file}")
    return users[account].address


def show_value(value: PlainValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return to_hex(value)
    return str(value)
