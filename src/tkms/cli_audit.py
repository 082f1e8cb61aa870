"""``tkms audit verify PATH…``: check a node's audit log, or a rotated set (docs/audit.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tkms.cli_output import fail
from tkms.node.audit_verify import Verdict, expand, verify

audit_app = typer.Typer(name="audit", help="Check a node's audit log.", no_args_is_help=True)
out = Console(soft_wrap=True, highlight=False)

PathsArgument = Annotated[
    list[Path],
    typer.Argument(
        help="log files in chain order (audit-0-000001.jsonl …), or a node's audit directory"
    ),
]


def _report(files: list[Path], verdict: Verdict) -> None:
    label = files[0].parent if len(files) > 1 else files[0]
    start = "" if verdict.from_genesis else f", from entry {verdict.first_seq} (earlier not given)"
    if verdict.broken is None:
        out.print(f"[green]ok[/] {label}: {verdict.entries} entries in {len(files)} file(s){start}")
        return
    broken = verdict.broken
    out.print(
        f"[bold red]broken[/] {broken.path}:{broken.line}: {broken.why} "
        f"({verdict.entries} entries check out before it{start})"
    )


@audit_app.command("verify")
def verify_command(paths: PathsArgument) -> None:
    """Check every hash link; report the entries and the first broken link (exit code 1)."""
    for path in paths:
        if not path.exists():
            fail(f"{path}: no such file or directory")
    chains = expand(paths)
    if not any(chains):
        fail("no audit log files found")
    failed = False
    for files in chains:
        if not files:
            continue
        verdict = verify(files)
        _report(files, verdict)
        failed = failed or not verdict.ok
    if failed:
        raise typer.Exit(1)
