"""Writing and reading key files: hex text, mode 0600, written atomically; 0700 directories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` so that a crash leaves the old file or the new one, never a torn one.

    A directory this makes is 0700 (an existing one keeps its mode).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def private_dir(path: Path) -> Path:
    """``path`` as a 0700 directory (tightened if an older run left it open)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_hex(path: Path, data: bytes) -> None:
    write_private(path, ("0x" + data.hex() + "\n").encode())


def read_hex(path: Path) -> bytes:
    text = path.read_text().strip()
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)
