"""What every ``tkms`` command prints on failure, and its help without placeholders."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
import typer.core
from rich.console import Console

console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line, no traceback. Exit code 2: the command cannot run as given (an
    option, a value, a file, or a key the service does not accept: 400, 401); 1: the
    operation failed (refused with 403, not found, unreachable, an untrusted answer)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def exit_code(exc: Exception) -> int:
    """2 for an input error (ours, or the service's 400 and 401), 1 for any other failure."""
    from tkms.client.errors import ServiceError, TkmsError

    if isinstance(exc, ValueError | OSError):
        return 2
    if isinstance(exc, ServiceError) and exc.status in (400, 401, 413):
        return 2
    return 1 if isinstance(exc, TkmsError) else 2


def _no_flag_placeholder(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """A flag (``--help``) takes no value: its help row shows no ``<bool>``."""
    if self.is_flag:
        return None
    return _option_type(self, ctx)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _no_flag_placeholder  # type: ignore[method-assign]  # no hook for it
