"""HTTP load on a real node for bench/delegate.py: wrk, or an asyncio fallback.

.venv/bin/python bench/http_load.py --loadgen-child JSON   # the fallback, as a child process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import (
    machine_cpu_times,
    percentile,
    process_tree_cpu,
)
from bench.delegate_fixture import Fixture
from tkms.crypto.encoding import to_hex
from tkms.devnet.processes import Service, ServiceFailed, free_port, wait_service_healthy

# --- 3. HTTP -------------------------------------------------------------------------

WRK_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "{authorization}"

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  responses = 0
  non200 = 0
end

function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local seen, bad = 0, 0
  for _, thread in ipairs(threads) do
    seen = seen + thread:get("responses")
    bad = bad + thread:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    "TKMS_RESULT requests=%d duration_us=%d responses=%d non200=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\\n",
    summary.requests, summary.duration, seen, bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class HttpRun:
    generator: str
    workers: int
    seconds: float
    requests: int
    non200: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float | None = None
    generator_cpu_s: float | None = None
    machine_busy_s: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def server_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1e6

    @property
    def foreign_cores(self) -> float | None:
        """Cores used by processes other than the server and the load generator."""
        if None in (self.machine_busy_s, self.server_cpu_s, self.generator_cpu_s):
            return None
        assert self.machine_busy_s is not None
        assert self.server_cpu_s is not None and self.generator_cpu_s is not None
        rest = self.machine_busy_s - self.server_cpu_s - self.generator_cpu_s
        return max(0.0, rest / self.seconds)


class NodeProcess:
    """``tkms node --workers N`` on a free loopback port."""

    def __init__(self, fx: Fixture, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="tkms-bench-node-", suffix=".log"
        )
        tkms = Path(sys.executable).with_name("tkms")
        command = [str(tkms)] if tkms.exists() else [sys.executable, "-m", "tkms"]
        self.proc = subprocess.Popen(
            [*command, "node", "--workers", str(workers)],
            env=fx.env(self.port),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers = workers

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.log.flush()
        service = Service(self.url, self.proc, Path(self.log.name), "tkms node")
        try:
            wait_service_healthy(service, timeout)
        except ServiceFailed as exc:
            raise SystemExit(str(exc)) from None
        if self.workers > 1:  # every worker must be up, not only the first one
            time.sleep(1.0)

    def tail(self) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def run_child(command: list[str]) -> tuple[str, float]:
    """Run a load generator; its stdout and its own CPU seconds (user + system)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({proc.returncode}):\n{output}")
    return output, usage.ru_utime + usage.ru_stime


def run_wrk(
    wrk: str, script: Path, url: str, seconds: float, connections: int, threads: int
) -> tuple[dict[str, int], float]:
    """One wrk run; returns its TKMS_RESULT fields and wrk's own CPU seconds."""
    output, cpu = run_child(
        [
            wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
            "--timeout", "10s", "-s", str(script), url,
        ]
    )  # fmt: skip
    match = re.search(r"^TKMS_RESULT (.*)$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk printed no result:\n{output}")
    fields = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return fields, cpu


def loadgen_command(url: str, fx: Fixture, seconds: float, connections: int) -> list[str]:
    config = {
        "url": url,
        "path": fx.path(to_hex(bytes(32))),
        "authorization": fx.authorization,
        "body": fx.body.decode(),
        "seconds": seconds,
        "connections": connections,
    }
    return [sys.executable, str(Path(__file__).resolve()), "--loadgen-child", json.dumps(config)]


def loadgen_child(config_json: str) -> None:
    """The fallback load generator (its own process): asyncio + httpx, keep-alive."""
    config = json.loads(config_json)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass

    async def main() -> dict[str, Any]:
        latencies: list[float] = []
        non200 = errors = 0
        limits = httpx.Limits(max_connections=config["connections"])
        headers = {"content-type": "application/json", "authorization": config["authorization"]}
        body = config["body"].encode()
        async with httpx.AsyncClient(base_url=config["url"], limits=limits, timeout=10) as client:
            stop = time.perf_counter() + config["seconds"]

            async def worker() -> None:
                nonlocal non200, errors
                while (start := time.perf_counter()) < stop:
                    try:
                        response = await client.post(config["path"], content=body, headers=headers)
                    except httpx.HTTPError:
                        errors += 1
                        continue
                    latencies.append(time.perf_counter() - start)
                    non200 += response.status_code != 200

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(config["connections"])))
            elapsed = time.perf_counter() - began
        latencies.sort()
        return {
            "requests": len(latencies),
            "seconds": elapsed,
            "non200": non200,
            "errors": errors,
            "p50_ms": percentile(latencies, 50) * 1e3,
            "p99_ms": percentile(latencies, 99) * 1e3,
        }

    print(json.dumps(asyncio.run(main())))


def http_run(
    fx: Fixture, workers: int, args: argparse.Namespace, wrk: str | None, script: Path
) -> HttpRun:
    node = NodeProcess(fx, workers)
    try:
        node.wait_ready()
        salt = secrets.token_bytes(32)
        answer = httpx.post(
            node.url + fx.path(to_hex(salt)),
            content=fx.body,
            headers={"content-type": "application/json", "authorization": fx.authorization},
        )
        if answer.status_code != 200:
            raise SystemExit(f"node answered {answer.status_code}: {answer.text}")
        fx.check_answer(salt, answer.json())
        url = node.url + fx.path(to_hex(bytes(32)))
        # Warm every worker's caches (RSA key, domain separators) and the socket paths.
        if wrk is not None:
            run_wrk(wrk, script, url, args.warmup, args.connections, args.threads)
        else:
            run_child(loadgen_command(node.url, fx, args.warmup, args.connections))
        server_before = process_tree_cpu(node.proc.pid)
        machine_before = machine_cpu_times()
        if wrk is not None:
            result, generator_cpu = run_wrk(
                wrk, script, url, args.duration, args.connections, args.threads
            )
            errors = sum(result[k] for k in ("connect", "read", "write", "timeout"))
            run = HttpRun(
                generator=f"wrk -t {args.threads} -c {args.connections}",
                workers=workers,
                seconds=result["duration_us"] / 1e6,
                requests=result["requests"],
                non200=result["non200"],
                errors=errors,
                p50_ms=result["p50_us"] / 1e3,
                p99_ms=result["p99_us"] / 1e3,
                generator_cpu_s=generator_cpu,
            )
        else:
            output, generator_cpu = run_child(
                loadgen_command(node.url, fx, args.duration, args.connections)
            )
            data = json.loads(output)
            run = HttpRun(
                generator=f"httpx fallback -c {args.connections}",
                workers=workers,
                seconds=data["seconds"],
                requests=data["requests"],
                non200=data["non200"],
                errors=data["errors"],
                p50_ms=data["p50_ms"],
                p99_ms=data["p99_ms"],
                generator_cpu_s=generator_cpu,
            )
        server_after = process_tree_cpu(node.proc.pid)
        machine_after = machine_cpu_times()
        if server_before is not None and server_after is not None:
            run.server_cpu_s = server_after - server_before
        if machine_before is not None and machine_after is not None:
            run.machine_busy_s = machine_after[0] - machine_before[0]
        return run
    finally:
        node.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--loadgen-child":
        loadgen_child(sys.argv[2])
    else:
        raise SystemExit("usage: http_load.py --loadgen-child JSON (run by bench/delegate.py)")
