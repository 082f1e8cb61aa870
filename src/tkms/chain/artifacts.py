"""The compiled contracts of ``contracts/`` (committed JSON; see ``contracts/compile.mjs``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from tkms.chain.abi import ContractAbi

NAMES = ("NoxCompute", "DemoApp", "ContractWallet")


@dataclass(frozen=True)
class Artifact:
    name: str
    abi_json: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str

    @property
    def abi(self) -> ContractAbi:
        return _abi(self.name)


@cache
def load(name: str) -> Artifact:
    if name not in NAMES:
        raise KeyError(f"no artifact {name!r}")
    text = resources.files("tkms.chain").joinpath("artifacts", f"{name}.json").read_text()
    raw = json.loads(text)
    return Artifact(
        name=raw["contractName"],
        abi_json=tuple(raw["abi"]),
        bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
        deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
        compiler_version=raw["compiler"]["version"],
    )


@cache
def _abi(name: str) -> ContractAbi:
    return ContractAbi(load(name).abi_json)
