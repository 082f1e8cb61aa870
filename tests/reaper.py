"""Services that outlive the test process that started them: recorded, then reaped.

A test process (a pytest-xdist worker, or pytest itself without -n) that is killed
runs no fixture teardown and no atexit: the nodes, gateways, devnets and PostgreSQL
it started keep running, orphaned. PR_SET_PDEATHSIG does not answer it, as it fires
when the parent *thread* exits and services are started from worker threads too.

So each test process appends every process it starts to a file of its own in
``REGISTRY`` (``<pid> <start time> [directory]`` lines, the file named after its
own pid and start time). ``reap_orphans`` (at every session's start, and in the
xdist controller as soon as a worker goes down) takes the files whose owner is no
longer running and stops each recorded process that still is, with its
descendants, then removes the recorded directory (a throwaway PostgreSQL's) and the
file. A pid is only signalled while its start time is the recorded one: a pid the
kernel has since handed to another process is left alone. At a normal exit a test
process reaps its own file, as a safety net for a fixture that forgot something.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

REGISTRY = Path(tempfile.gettempdir()) / f"tkms-test-services-{os.getuid()}"
STOP_WITHIN = 10.0  # SIGTERM, then SIGKILL for what still runs after this


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks since boot) of ``pid``, None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and ")"
    return fields[0], int(fields[1]), int(fields[19])


def start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[2]


def running(pid: int, started: int) -> bool:
    """``pid`` is the process that started at ``started`` and it has not exited."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[2] == started


_lock = threading.Lock()
_own: Path | None = None


def _own_file() -> Path:
    global _own
    if _own is None:
        pid = os.getpid()
        _own = REGISTRY / f"{pid}-{start_time(pid)}.pids"
        REGISTRY.mkdir(mode=0o700, exist_ok=True)
        atexit.register(_reap_own)
    return _own


def record(pid: int, directory: Path | None = None) -> None:
    """Note ``pid`` (and a directory to remove with it) as started by this process."""
    started = start_time(pid)
    if started is None:  # it is gone already: nothing can outlive us
        return
    line = f"{pid} {started}" + (f" {directory}" if directory is not None else "") + "\n"
    with _lock, _own_file().open("a") as out:  # one short append per line: threads share it
        out.write(line)


def _descendants(root: int) -> list[tuple[int, int]]:
    """(pid, start time) of every running process below ``root``, read from /proc."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def _signal(pid: int, started: int, sig: int) -> None:
    if running(pid, started):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_tree(pid: int, started: int) -> None:
    """SIGTERM to the process and all below it, SIGKILL to what still runs after a while."""
    if not running(pid, started):
        return
    tree = [(pid, started), *_descendants(pid)]
    for member in tree:
        _signal(*member, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    while any(running(*m) for m in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    for member in tree:
        _signal(*member, signal.SIGKILL)


def _reap_file(path: Path) -> None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return  # another session's reaper took it first
    for line in lines:
        pid, started, *directory = line.split(" ", 2)
        stop_tree(int(pid), int(started))
        if directory:
            shutil.rmtree(directory[0], ignore_errors=True)
    path.unlink(missing_ok=True)


def _owner_running(path: Path) -> bool:
    pid, _, started = path.stem.partition("-")
    return started.isdigit() and running(int(pid), int(started))


def reap_orphans() -> None:
    """Stop what test processes that are no longer running left running."""
    if not REGISTRY.is_dir():
        return
    for path in REGISTRY.glob("*.pids"):
        if not _owner_running(path):
            _reap_file(path)


def _reap_own() -> None:
    if _own is not None:
        _reap_file(_own)
