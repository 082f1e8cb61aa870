"""Issue 13's targets, each printed with its ratio and "met" / "NOT met" (bench/e2e.py,
bench/delegate.py, bench/servers.py)."""

from __future__ import annotations

from bench.common import print_table

CPU_PER_DECRYPT = 2.0  # all processes' CPU per decryption ≤ 2× its crypto floor
USERS_RATE = 300.0  # 16 concurrent users: ≥ 300 decryptions/s …
USERS_P99 = 0.100  # … with p99 under 100 ms
SERVER_CPU = 1.6  # one node's server CPU per request ≤ 1.6× its primitive floor


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def server_cpu_row(what: str, cpu_us: float, floor_us: float) -> list[str]:
    ratio = cpu_us / floor_us
    return [
        f"{what}: server CPU µs/req ≤ {SERVER_CPU}× floor",
        f"{cpu_us:,.0f} µs vs floor {floor_us:,.0f} µs",
        f"{ratio:.2f}×",
        verdict(ratio <= SERVER_CPU),
    ]


def e2e_rows(
    cpu: float, cpu_floor: float, partials: float, rate: float, p99: float
) -> list[list[str]]:
    ratio = cpu / cpu_floor
    return [
        [
            f"CPU of all processes per decryption ≤ {CPU_PER_DECRYPT}× floor"
            f" (client + {partials:.2f} partials computed)",
            f"{cpu * 1000:.2f} ms vs floor {cpu_floor * 1000:.2f} ms",
            f"{ratio:.2f}×",
            verdict(ratio <= CPU_PER_DECRYPT),
        ],
        [
            f"16 users ≥ {USERS_RATE:.0f} decryptions/s",
            f"{rate:.0f}/s",
            f"{rate / USERS_RATE:.2f}× the target",
            verdict(rate >= USERS_RATE),
        ],
        [
            f"16 users p99 < {USERS_P99 * 1000:.0f} ms",
            f"{p99 * 1000:.1f} ms",
            f"{p99 / USERS_P99:.2f}× the bound",
            verdict(p99 < USERS_P99),
        ],
    ]


def print_targets(rows: list[list[str]], *, markdown: bool, caption: str = "") -> None:
    print_table(
        "Issue 13 targets", ["target", "measured", "ratio", ""], rows, markdown=markdown,
        caption=caption,
    )  # fmt: skip
