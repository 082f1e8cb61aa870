"""Helpers shared by the benchmarks: timing loops, CPU accounting, tables, ratios.

Timing: :func:`measure_interleaved` calibrates each case so one run lasts
about ``target`` seconds, then runs the cases round-robin for ``rounds``
rounds and keeps the per-call time of every run. Interleaving matters on a
shared machine: a burst of foreign load hits every case of a round rather
than one case, so the ratios between cases stay honest even when the
absolute numbers move. Report the median; the minimum is the quiet-machine
cost.

Everything here is standard library, plus rich for tables when it is
installed (plain aligned text otherwise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# --- timing ------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Per-call cost over several runs, in microseconds."""

    runs_us: tuple[float, ...]
    calls_per_run: int

    @property
    def median_us(self) -> float:
        return statistics.median(self.runs_us)

    @property
    def min_us(self) -> float:
        return min(self.runs_us)

    @property
    def max_us(self) -> float:
        return max(self.runs_us)

    @property
    def per_second(self) -> float:
        return 1e6 / self.median_us


def _loop(
    fn: Callable[[], object], number: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    start = clock()
    for _ in range(number):
        fn()
    return clock() - start


def calibrate(fn: Callable[[], object], target: float = 0.1) -> int:
    """The call count that makes one run of ``fn`` last at least ``target`` seconds."""
    fn()  # warm caches (lru_cache, imports, CPU caches)
    number = 1
    while True:
        elapsed = _loop(fn, number)
        if elapsed >= target / 4:
            return max(1, round(number * target / elapsed))
        number *= 4 if elapsed < target / 40 else 2


def measure(
    fn: Callable[[], object],
    *,
    rounds: int = 7,
    target: float = 0.1,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    return measure_interleaved({"_": fn}, rounds=rounds, target=target, clock=clock)["_"]


def measure_interleaved(
    cases: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 7,
    target: float = 0.1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timing]:
    """Time every case ``rounds`` times, round-robin (see the module docstring).

    ``clock=time.process_time`` times CPU instead: the floor of a figure that is
    CPU (a server's µs per request), which a loaded machine's wall clock inflates.
    """
    numbers = {name: calibrate(fn, target) for name, fn in cases.items()}
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            runs[name].append(_loop(fn, numbers[name], clock) / numbers[name] * 1e6)
    return {name: Timing(tuple(runs[name]), numbers[name]) for name in cases}


def summed(timings: Sequence[Timing]) -> Timing:
    """Round-by-round sum of interleaved timings (a cost made of several parts)."""
    rounds = zip(*(t.runs_us for t in timings), strict=True)
    return Timing(tuple(sum(parts) for parts in rounds), 0)


def round_ratio(value: Timing, base: Timing) -> float:
    """Median over rounds of value/base, both from the same interleaved rounds.

    Steadier than a ratio of medians: a slow round slows both sides of it.
    """
    return statistics.median(v / b for v, b in zip(value.runs_us, base.runs_us, strict=True))


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base else "n/a"


def fmt_us(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in [0, 100])."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats drifting
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


# --- CPU accounting (Linux /proc; degrades to None elsewhere) ------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu_times() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    total = sum(ticks)
    return (total - idle) / _TICK, total / _TICK


def machine_busy_cores(seconds: float = 1.0) -> float | None:
    """How many cores' worth of CPU the machine burns right now (sampled)."""
    before = machine_cpu_times()
    time.sleep(seconds)
    after = machine_cpu_times()
    if before is None or after is None:
        return None
    return (after[0] - before[0]) / seconds


def process_tree_cpu(root: int) -> float | None:
    """User + system CPU seconds of ``root`` and all its live descendants."""
    try:
        stats: dict[int, tuple[int, float]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "stat").read_text()
            except OSError:
                continue
            rest = raw.rsplit(")", 1)[1].split()
            # after "pid (comm)": state ppid ... utime(12th) stime(13th) of rest
            stats[int(entry.name)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK)
    except OSError:
        return None
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def children(parent: int) -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of each live child of ``parent`` (a devnet's services, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            found.append((int(entry.name), argv))
    return found


def child_pid(parent: int, word: str) -> int | None:
    """The devnet's child process whose command line has ``word`` (gateway, anvil)."""
    for pid, argv in children(parent):
        if any(Path(a.decode(errors="replace")).name == word for a in argv):
            return pid
    return None


def load_summary() -> str:
    """One line on the machine's load, for the header of a benchmark's output."""
    cores = os.cpu_count() or 1
    try:
        one, five, _ = os.getloadavg()
        avg = f"load average {one:.2f} (1 min) / {five:.2f} (5 min)"
    except OSError:
        avg = "load average n/a"
    busy = machine_busy_cores(1.0)
    now = f", {busy:.2f} of {cores} cores busy before start" if busy is not None else ""
    warning = (
        "\nWARNING: the machine is not idle; expect depressed numbers (re-run when it is)"
        if busy is not None and busy > 0.25
        else ""
    )
    return f"{cores} cores, {avg}{now}{warning}"


# --- tables --------------------------------------------------------------------


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    markdown: bool = False,
    caption: str | None = None,
) -> None:
    """A table: rich on a terminal (plain text without rich), or markdown for the docs.

    Columns after the first are right-aligned: they hold numbers.
    """
    if markdown:
        print(markdown_table(title, headers, rows, caption))
        return
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a project dependency
        print(plain_table(title, headers, rows, caption))
        return
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console(width=max(250, Console().width), highlight=False)
    with console.capture() as captured:
        console.print(table)
    print("\n".join(line.rstrip() for line in captured.get().strip("\n").splitlines()))
    if caption:  # below the table, not wrapped to its width
        print(caption)
    print()


def _widths(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]


def markdown_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None
) -> str:
    widths = _widths(headers, rows)

    def line(cells: Sequence[str]) -> str:
        padded = (
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)
    )
    out = [f"**{title}**", "", line(headers), rule + "|", *(line(r) for r in rows)]
    if caption:
        out += ["", caption]
    return "\n".join(out) + "\n"


def plain_table(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None
) -> str:
    widths = _widths(headers, rows)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    out = [title, line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    if caption:
        out.append(caption)
    return "\n".join(out) + "\n"


def checkout_src(parser: argparse.ArgumentParser, checkout: Path, package: str) -> Path:
    """``checkout``'s ``src`` directory for a ``--baseline`` A/B; a parser error unless it
    holds ``tkms/<package>`` (the part of tkms the benchmark runs)."""
    src = (checkout / "src").resolve()
    if not (src / "tkms" / package).is_dir():
        parser.error(f"{checkout} is not a tkms checkout (no src/tkms/{package})")
    return src
