"""``tkms devnet``: KMS node processes on loopback with dev keys, kept in a state dir.

``--nodes 1`` runs one nox-compatible node holding the whole key (v0).
Otherwise ``n`` nodes create the key together by a DKG ceremony (shown with a
progress display) and serve v1 partial delegations, behind a Handle Gateway
on the base port (:mod:`tkms.devnet.gateway`). Both run on a local chain
(:mod:`tkms.devnet.chain`: anvil on ``base + n + 1``, NoxCompute, the demo
app): every node reads ``gateway()`` and ``kmsPublicKey()`` from it, and the
gateway decides reads by NoxCompute's ``isViewer`` (``--acl embedded``: by its own
grants, on the same chain). Restarted
on the same state directory it reuses its keys, shares and chain instead of a
new ceremony.

Before it starts anything it refuses, in one line: a devnet already running
on the state directory (:class:`~tkms.devnet.control.DevnetLock`), a state
directory made for another shape (nodes, threshold, chain), and a busy port.
Once up it writes ``devnet.json``, prints how to use it, and supervises: a
process that exits is reported with the last lines of its log while the
others stay up, and ``tkms devnet stop-node|restart-node`` stop and restart
one. SIGINT/SIGTERM stop every process it started.

Every secret it makes (wallet, sealing, admin, user keys) is a 0600 file in
``keys/`` (0700); ``devnet.json`` names those files (absolute paths) and holds
no key itself. The node and gateway directories are 0700, the gateway's
SQLite files 0600.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console

from tkms.crypto.wallet import address_hex
from tkms.devnet import control
from tkms.devnet.chain import DevnetChain, chain_port, start_chain
from tkms.devnet.gateway import (
    RUNNER,
    USERS,
    gateway_env,
    print_nox_sdk,
    print_story,
    state_flag,
    with_gateway,
)
from tkms.devnet.keys import KeyDir
from tkms.devnet.manifest import ACL_MODES, DevnetManifest, ManifestError, Shape
from tkms.devnet.processes import (
    Service,
    ServiceFailed,
    busy_port,
    log_tail,
    start,
    stop_all,
    wait_service_healthy,
)
from tkms.devnet.single import (
    print_single_node,
    single_manifest,
    single_node_env,
    single_public_key,
)
from tkms.devnet.threshold import keyset_of, print_threshold, threshold_manifest, threshold_node_env
from tkms.envconfig import ConfigError, check_directory

POLL_SECONDS = 0.3


def prepare_state_dir(state_dir: Path) -> None:
    """The state directory, or the one-line error of ``--state-dir``."""
    try:
        check_directory(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
    except ValueError as exc:
        raise ConfigError(f"--state-dir: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--state-dir: cannot create {state_dir}: {exc.strerror}") from None


def check_shape(state_dir: Path, wanted: Shape) -> None:
    """A state directory serves the one shape it was made for (its devnet.json says which)."""
    try:
        existing = DevnetManifest.in_state_dir(state_dir)
    except ManifestError as exc:
        raise ConfigError(f"--state-dir: {exc}") from None
    if existing is not None and existing.shape != wanted:
        raise ConfigError(
            f"--state-dir {state_dir}/ was made for a {existing.shape}, not a {wanted}: "
            f"give another --state-dir (e.g. {state_dir}-{wanted.nodes}) or delete {state_dir}/"
        )


def check_ports(base_port: int, nodes: int) -> None:
    last = chain_port(base_port, nodes)
    if not 1 <= base_port <= 65535 - nodes:
        raise ConfigError(f"--base-port: {base_port}…{last} are not all ports")
    busy = busy_port(range(base_port, last + 1))
    if busy is not None:
        raise ConfigError(
            f"port {busy} is already in use (another devnet or program): stop it, "
            f"or give another --base-port (the devnet needs {base_port}…{last}: "
            f"the gateway, {nodes} node(s), the chain)"
        )


@dataclass
class Member:
    """One process of the devnet, restartable with the same arguments and environment."""

    name: str  # "node 2", "gateway"
    target: str  # what `tkms devnet restart-node` calls it: "2", "gateway"
    args: list[str]
    env: dict[str, str]
    log: Path
    port: int
    service: Service | None = None
    stopped: bool = False  # on request: not reported as a crash
    reported: bool = False

    def start(self) -> Service:
        with self.log.open("ab") as out:
            out.write(b"--- start\n")
        self.service = start(self.args, self.env, self.log, self.port, append=True, name=self.name)
        self.stopped = self.reported = False
        return self.service

    def started(self) -> Service:
        assert self.service is not None
        return self.service


@dataclass
class Devnet:
    state_dir: Path
    base_port: int
    chain_id: int
    console: Console
    acl: str = "chain"
    node_mode: str = "user"  # docs/node-authorization.md; gateway: bench/e2e.py compares
    keys: KeyDir = field(init=False)
    members: dict[str, Member] = field(default_factory=dict)
    chain: DevnetChain | None = None
    chain_reported: bool = False

    def __post_init__(self) -> None:
        self.keys = KeyDir(self.state_dir)
        self.logs = self.state_dir / "logs"
        self.logs.mkdir(exist_ok=True)

    def add(self, target: str, args: list[str], env: dict[str, str], port: int) -> Member:
        name = "gateway" if target == "gateway" else f"node {target}"
        log = self.logs / ("gateway.log" if target == "gateway" else f"node{target}.log")
        member = Member(name, target, args, env, log, port)
        self.members[target] = member
        member.start()
        return member

    def url(self, offset: int) -> str:
        return f"http://127.0.0.1:{self.base_port + offset}"

    def start_chain(self, nodes: int, previous: DevnetManifest | None, key: str | None) -> None:
        """anvil and the contracts; ``key`` (if known) is set as kmsPublicKey() at once."""
        contracts = None
        if previous is not None and previous.nox_compute and previous.app:
            contracts = (previous.nox_compute, previous.app)
        self.chain = start_chain(
            self.state_dir,
            self.keys,
            port=chain_port(self.base_port, nodes),
            chain_id=self.chain_id,
            users=USERS,
            previous=contracts,
            kms_public_key=key,
        )

    def linked(self) -> DevnetChain:
        assert self.chain is not None
        return self.chain

    def start_nodes(self, nodes: int) -> dict[int, str]:
        chain = self.linked()
        for i in range(1, nodes + 1):
            port = self.base_port + i
            if nodes == 1:
                env = single_node_env(self.keys, port, self.chain_id)
                env.update(chain.node_env("NOX_KMS_", self.chain_id))
            else:
                env = self.threshold_env(i, port)
            self.add(str(i), ["node"], env, port)
        for member in self.members.values():
            wait_healthy(member)
        return {i: self.url(i) for i in range(1, nodes + 1)}

    def threshold_env(self, i: int, port: int) -> dict[str, str]:
        env = threshold_node_env(self.keys, self.state_dir, i, port, self.chain_id)
        env.update(self.linked().node_env("TKMS_NODE_", self.chain_id))
        # User mode (the default on a linked chain): each node checks the user,
        # and the runner's statement for its operands (docs/node-authorization.md).
        env["TKMS_NODE_RUNNER_ADDRESS"] = address_hex(self.keys.wallet(RUNNER).address)
        if self.acl == "embedded" or self.node_mode == "gateway":
            # --acl embedded: the gateway's own ACL decides, and its grants are
            # not on chain for a node to read. --node-mode gateway: the bench's
            # comparison (bench/e2e.py).
            env["TKMS_NODE_AUTHORIZATION_MODE"] = "gateway"
        return env

    def start_gateway(self, manifest: DevnetManifest) -> DevnetManifest:
        """The gateway on the base port; writes devnet.json once it is up."""
        manifest = with_gateway(manifest, self.keys, self.url(0), self.linked(), self.acl)
        env = gateway_env(self.keys, self.state_dir, self.base_port, manifest)
        wait_healthy(self.add("gateway", ["gateway"], env, self.base_port))
        manifest.write(self.state_dir)
        return manifest

    def stop(self) -> None:
        stop_all(m.service for m in self.members.values() if m.service is not None)
        if self.chain is not None:
            self.chain.stop()  # after the nodes; anvil writes its state as it exits


def wait_healthy(member: Member) -> None:
    try:
        wait_service_healthy(member.started())
    except ServiceFailed as exc:
        raise ConfigError(str(exc)) from None


def run_devnet(
    *,
    state_dir: Path,
    base_port: int,
    chain_id: int,
    nodes: int,
    threshold: int,
    console: Console,
    acl: str = "chain",
    node_mode: str = "user",
) -> None:
    if not 1 <= threshold <= nodes:
        raise ConfigError(f"--threshold must lie in [1, {nodes}]")
    if acl not in ACL_MODES:
        raise ConfigError(f"--acl must be one of {', '.join(ACL_MODES)}")
    prepare_state_dir(state_dir)
    with control.DevnetLock(state_dir):
        check_shape(state_dir, Shape(nodes, threshold, chain_id))
        previous = DevnetManifest.in_state_dir(state_dir)
        check_ports(base_port, nodes)
        devnet = Devnet(state_dir, base_port, chain_id, console, acl, node_mode)

        def stop(signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            key: str | None
            if nodes == 1:
                # A v0 node checks its key against kmsPublicKey() at start: set it first.
                key = single_public_key(devnet.keys)
            else:
                # Restarted nodes that hold a keyset serve (and are healthy) only once
                # kmsPublicKey() is its Y: the previous run's, which a new ceremony replaces.
                key = None if previous is None else previous.public_key
            devnet.start_chain(nodes, previous, key)
            urls = devnet.start_nodes(nodes)
            if nodes == 1:
                manifest = devnet.start_gateway(single_manifest(devnet.keys, urls[1], chain_id))
                print_single_node(state_dir, devnet.keys, manifest, console)
                print_story(state_dir, console)
            else:
                keyset = keyset_of(urls, devnet.keys, chain_id, threshold, console)
                # Right after the ceremony: the nodes serve v1 only once it is on chain.
                devnet.linked().set_kms_public_key(str(keyset["publicKey"]))
                manifest = threshold_manifest(devnet.keys, urls, chain_id, keyset)
                manifest = devnet.start_gateway(manifest)
                print_threshold(state_dir, manifest, console)
            print_nox_sdk(manifest, console)
            flag = state_flag(state_dir)
            console.print(
                "\nA process that exits is reported; the others stay up. "
                f"`tkms devnet stop-node 2{flag}` stops node 2, "
                f"`tkms devnet restart-node 2{flag}` starts it again (or `gateway`).",
                highlight=False,
            )
            console.print("Ctrl-C stops the devnet.")
            supervise(devnet)
        except KeyboardInterrupt:
            console.print("stopping devnet")
        finally:
            devnet.stop()


def supervise(devnet: Devnet) -> None:
    """Forever: report a process that exits, carry out stop and restart requests."""
    while True:
        chain = devnet.chain
        if chain is not None and not chain.anvil.alive() and not devnet.chain_reported:
            devnet.chain_reported = True
            devnet.console.print(
                f"[bold yellow]the chain (anvil) exited with code "
                f"{chain.anvil.process.returncode}[/]: the nodes answer chain_unavailable "
                f"until the devnet is started again; its log is {chain.anvil.workdir}/anvil.log",
                highlight=False,
            )
        for member in devnet.members.values():
            service = member.started()
            if service.alive() or member.reported:
                continue
            member.reported = True
            if member.stopped:
                continue
            devnet.console.print(
                f"[bold yellow]{member.name} exited with code {service.process.returncode}[/]; "
                f"the rest of the devnet stays up. Last lines of {member.log}:\n"
                f"{log_tail(member.log)}\n"
                f"  start it again: tkms devnet restart-node {member.target}"
                f"{state_flag(devnet.state_dir)}",
                highlight=False,
            )
        for request in control.pending_requests(devnet.state_dir):
            ok, message = carry_out(devnet, request)
            devnet.console.print(message, highlight=False)
            control.answer(request, ok, message)
        time.sleep(POLL_SECONDS)


def carry_out(devnet: Devnet, request: control.Request) -> tuple[bool, str]:
    if request.action == "reshare":
        from tkms.devnet.reshare import reshare_devnet

        return reshare_devnet(devnet, request.target)
    member = devnet.members.get(request.target)
    if member is None:
        known = ", ".join(devnet.members)
        return False, f"the devnet has no process {request.target!r} (it has {known})"
    if request.action not in control.ACTIONS:
        return False, f"unknown action {request.action!r}"
    member.stopped = True
    member.started().stop()
    if request.action == "stop":
        return True, f"{member.name} stopped"
    member.start()
    try:
        wait_healthy(member)
    except ConfigError as exc:
        member.reported = True
        return False, str(exc)
    service = member.started()
    return True, f"{member.name} restarted: {service.url} (pid {service.process.pid})"
