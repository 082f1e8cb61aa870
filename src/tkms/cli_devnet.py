"""``tkms devnet``: run a local devnet; ``stop-node`` and ``restart-node`` one of its processes."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tkms.cli_output import console, fail
from tkms.envconfig import ConfigError

devnet_app = typer.Typer(
    name="devnet",
    invoke_without_command=True,
    no_args_is_help=False,
)


class AclMode(StrEnum):
    chain = "chain"
    embedded = "embedded"


class NodeMode(StrEnum):
    user = "user"
    gateway = "gateway"


StateDirOption = Annotated[Path, typer.Option(help="keys, shares and devnet.json live here")]
TargetArgument = Annotated[str, typer.Argument(help="a node index (2) or 'gateway'")]


@devnet_app.callback()
def devnet(
    ctx: typer.Context,
    state_dir: StateDirOption = Path("devnet-state"),
    nodes: Annotated[int, typer.Option(min=1, max=64, help="KMS nodes (1: nox single-node)")] = 5,
    threshold: Annotated[int, typer.Option(min=1, help="partials needed to decrypt")] = 3,
    base_port: Annotated[int, typer.Option(help="node i listens on base-port + i")] = 9100,
    chain_id: Annotated[int, typer.Option(help="the devnet's chain id")] = 421614,
    acl: Annotated[
        AclMode,
        typer.Option(
            help="whose ACL the gateway reads: chain (NoxCompute's isViewer; grants are "
            "transactions) or embedded (the gateway's own grants, on the same chain)"
        ),
    ] = AclMode.chain,
    node_mode: Annotated[
        NodeMode,
        typer.Option(
            help="what the nodes check (docs/node-authorization.md): user (each checks the "
            "user, the runner, on chain) or gateway (the gateway's signature only; always "
            "with --acl embedded)"
        ),
    ] = NodeMode.user,
) -> None:
    """Run a local devnet: n node processes, a DKG ceremony, a gateway, and how to use them.

    The gateway reads the ACL on chain, as nox's does (--acl embedded: its own).
    A state directory serves one shape (nodes, threshold, chain): give each its own
    --state-dir. A process that exits is reported and the rest stay up; `tkms devnet
    stop-node 2` and `tkms devnet restart-node 2` stop and start one.
    """
    if ctx.invoked_subcommand is not None:
        return
    from tkms.devnet.run import run_devnet

    if nodes == 1:
        threshold = 1
    try:
        run_devnet(
            state_dir=state_dir,
            base_port=base_port,
            chain_id=chain_id,
            nodes=nodes,
            threshold=threshold,
            console=console,
            acl=acl.value,
            node_mode=node_mode.value,
        )
    except ConfigError as exc:
        fail(str(exc))


def _send(state_dir: Path, action: str, target: str) -> None:
    from tkms.devnet.control import send

    try:
        typer.echo(send(state_dir, action, target))
    except ConfigError as exc:
        fail(str(exc), 1)


@devnet_app.command("stop-node")
def stop_node(target: TargetArgument, state_dir: StateDirOption = Path("devnet-state")) -> None:
    """Stop one process of the running devnet (the others stay up)."""
    _send(state_dir, "stop", target)


@devnet_app.command("restart-node")
def restart_node(target: TargetArgument, state_dir: StateDirOption = Path("devnet-state")) -> None:
    """Start one process of the running devnet again (stopping it first if it runs)."""
    _send(state_dir, "restart", target)


@devnet_app.command("reshare")
def reshare(
    nodes: Annotated[int, typer.Option(min=2, max=64, help="nodes of the new committee")],
    threshold: Annotated[int, typer.Option(min=1, help="the new committee's threshold")],
    state_dir: StateDirOption = Path("devnet-state"),
) -> None:
    """Reshare the running devnet's key to nodes 1..N (same public key, epoch + 1).

    Starts the nodes it adds, updates devnet.json, restarts the gateway with the new
    committee and stops the nodes that left.
    """
    _send(state_dir, "reshare", f"{nodes}/{threshold}")
