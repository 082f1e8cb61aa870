"""Rich displays shared by the CLI and the devnet."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tkms.client.relay import ROUND_NAMES


@contextmanager
def ceremony_progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """One bar per DKG round, filled as nodes answer."""
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}
        for name in ("start", *ROUND_NAMES):
            tasks[name] = progress.add_task(name, total=None, start=False)

        def update(name: str, done: int, total: int) -> None:
            task = tasks[name]
            progress.start_task(task)
            progress.update(task, completed=done, total=total)

        yield update
