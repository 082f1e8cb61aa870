"""``devnet.json``: what a devnet is and where to find it, written and read only here.

It holds no key, only the paths of the key files (``gatewayKeyFile``, each
user's ``keyFile``), and is 0600 all the same, written atomically. Its shape
(``nodes``, ``threshold``, ``chainId``) is what a state directory was made
for: :func:`tkms.devnet.run.run_devnet` refuses to reuse it for another.

    {"chainId", "threshold", "publicKey", "gatewayKeyFile",
     "nodes": [{"index", "url", "signer"}],
     "gateway": {"url", "signer"}, "verifyingContract",
     "users": {"<name>": {"address", "keyFile"}},
     "runner": {"address", "keyFile"},
     "rpcUrl", "noxCompute", "app", "acl"}

``runner`` is the dev runner wallet, the gateway's ``RUNNER_ADDRESS`` (docs/runner.md).

``rpcUrl`` is the devnet's chain (anvil), ``noxCompute`` the NoxCompute contract's
address (also the ``verifyingContract`` of the gateway's EIP-712 domains) and ``app``
the demo app's, through which the CLI and the SDK register new handles. An older
manifest without them still loads (no chain: the clients then skip the transactions).
``acl`` says whose ACL the gateway reads: ``chain`` (NoxCompute's ``isViewer``, the
default: grants are the owner's transactions only) or ``embedded`` (the gateway's
database, ``tkms devnet --acl embedded``: the clients post the gateway's grant too).
A manifest without it is an older devnet's, whose gateway was embedded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tkms.keyfiles import write_private

FILE_NAME = "devnet.json"
ACL_MODES = ("chain", "embedded")
DEFAULT_STATE_DIR = Path("devnet-state")
DEFAULT_PATH = DEFAULT_STATE_DIR / FILE_NAME


class ManifestError(ValueError):
    """devnet.json is missing or is not a devnet's; the message says which and what to do."""


@dataclass(frozen=True)
class ManifestNode:
    index: int
    url: str
    signer: str


@dataclass(frozen=True)
class ManifestUser:
    address: str
    key_file: Path


@dataclass(frozen=True)
class Shape:
    """What a state directory was made for: reusing it for another is refused."""

    nodes: int
    threshold: int
    chain_id: int

    def __str__(self) -> str:
        if self.nodes == 1:
            return f"single-node devnet (chain {self.chain_id})"
        return f"{self.nodes}-node devnet (threshold {self.threshold}, chain {self.chain_id})"


@dataclass(frozen=True)
class DevnetManifest:
    chain_id: int
    threshold: int
    public_key: str
    gateway_key_file: Path
    nodes: tuple[ManifestNode, ...]
    gateway_url: str | None = None
    gateway_signer: str | None = None
    verifying_contract: str | None = None
    users: dict[str, ManifestUser] = field(default_factory=dict)
    rpc_url: str | None = None
    nox_compute: str | None = None
    app: str | None = None
    runner: ManifestUser | None = None
    acl: str = "embedded"

    @property
    def acl_on_chain(self) -> bool:
        """Whether the gateway reads NoxCompute (then it answers /v1/acl/* with 501)."""
        return self.acl == "chain" and self.rpc_url is not None

    @property
    def shape(self) -> Shape:
        return Shape(len(self.nodes), self.threshold, self.chain_id)

    def node(self, index: int) -> ManifestNode:
        for node in self.nodes:
            if node.index == index:
                return node
        raise ManifestError(f"the devnet has no node {index}")

    def user(self, name: str) -> ManifestUser:
        if name not in self.users:
            raise ManifestError(f"{name!r} is not a user of this devnet")
        return self.users[name]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "chainId": self.chain_id,
            "threshold": self.threshold,
            "publicKey": self.public_key,
            "gatewayKeyFile": str(self.gateway_key_file),
            "nodes": [{"index": n.index, "url": n.url, "signer": n.signer} for n in self.nodes],
        }
        if self.gateway_url is not None:
            data["gateway"] = {"url": self.gateway_url, "signer": self.gateway_signer}
            data["verifyingContract"] = self.verifying_contract
            data["users"] = {
                name: {"address": u.address, "keyFile": str(u.key_file)}
                for name, u in self.users.items()
            }
        if self.runner is not None:
            data["runner"] = {"address": self.runner.address, "keyFile": str(self.runner.key_file)}
        if self.rpc_url is not None:
            data["rpcUrl"] = self.rpc_url
            data["noxCompute"] = self.nox_compute
            data["app"] = self.app
        if self.gateway_url is not None:
            data["acl"] = self.acl
        return data

    @classmethod
    def from_json(cls, data: Any) -> DevnetManifest:
        """Raises KeyError, TypeError or ValueError on anything that is not a manifest."""
        gateway = data.get("gateway")
        runner = data.get("runner")
        return cls(
            chain_id=int(data["chainId"]),
            threshold=int(data["threshold"]),
            public_key=str(data["publicKey"]),
            gateway_key_file=Path(data["gatewayKeyFile"]),
            nodes=tuple(
                ManifestNode(int(n["index"]), str(n["url"]), str(n["signer"]))
                for n in data["nodes"]
            ),
            gateway_url=None if gateway is None else str(gateway["url"]),
            gateway_signer=None if gateway is None else str(gateway["signer"]),
            verifying_contract=data.get("verifyingContract"),
            users={
                name: ManifestUser(str(u["address"]), Path(u["keyFile"]))
                for name, u in (data.get("users") or {}).items()
            },
            rpc_url=_optional_str(data.get("rpcUrl")),
            nox_compute=_optional_str(data.get("noxCompute")),
            app=_optional_str(data.get("app")),
            acl=_acl(data.get("acl")),
            runner=None
            if runner is None
            else ManifestUser(str(runner["address"]), Path(runner["keyFile"])),
        )

    def write(self, state_dir: Path) -> Path:
        path = state_dir / FILE_NAME
        write_private(path, (json.dumps(self.to_json(), indent=2) + "\n").encode())
        return path

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> DevnetManifest:
        """The manifest at ``path``; ManifestError (one line, with what to do) otherwise."""
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ManifestError(f"no devnet at {path}: {_start_hint(path)}") from None
        except OSError as exc:
            raise ManifestError(f"{path}: cannot read it: {exc.strerror}") from None
        try:
            return cls.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(
                f"{path} is not a devnet's devnet.json ({type(exc).__name__})"
            ) from None

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> DevnetManifest | None:
        """The manifest a devnet left in ``state_dir``, or None if it has none."""
        if not (state_dir / FILE_NAME).exists():
            return None
        return cls.load(state_dir / FILE_NAME)


def _optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _acl(value: Any) -> str:
    if value is None:
        return "embedded"  # written before the devnet's gateway read the chain
    if value not in ACL_MODES:
        raise ValueError(f"acl must be one of {ACL_MODES}")
    return str(value)


def _start_hint(path: Path) -> str:
    if path == DEFAULT_PATH and not Path("Makefile").exists():
        return (
            "run this from the tkms checkout where `make devnet` runs, "
            "or give --devnet <state dir>/devnet.json"
        )
    return "start one with `make devnet` (or `tkms devnet`), or give --devnet <path>"
