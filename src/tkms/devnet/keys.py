"""Dev keys of a devnet: 0600 hex files in ``state/keys`` (0700), made on first use."""

from __future__ import annotations

from pathlib import Path

from tkms.crypto import curve
from tkms.crypto.wallet import Wallet
from tkms.keyfiles import private_dir, read_hex, write_hex


class KeyDir:
    """Dev keys under ``state/keys``, made on first use and reused afterwards."""

    def __init__(self, state_dir: Path) -> None:
        self.path = private_dir(state_dir / "keys")

    def file(self, name: str) -> Path:
        path = self.path / f"{name}.key"
        if not path.exists():
            write_hex(path, curve.scalar_to_bytes(curve.random_scalar()))
        return path.resolve()

    def wallet(self, name: str) -> Wallet:
        return Wallet(read_hex(self.file(name)))
