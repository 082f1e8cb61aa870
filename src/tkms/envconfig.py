"""Environment → nested dict, the way nox-kms reads it.

``PREFIX_A__B=v`` becomes ``{"a": {"b": "v"}}``; a variable ``X_FILE`` names a
file whose stripped content is the value of ``X`` (for secrets mounted as
files). Several prefixes may be given; later ones win on conflicts. We keep
the variable name of every leaf so a validation error names the variable the
operator has to fix.

Why not pydantic-settings: it reads one prefix, knows no ``<VAR>_FILE``
convention, and reports errors by field path; nox-kms's names, ours and the
file form all have to meet in one model, and an error must name the variable.
Pydantic still validates the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from tkms.crypto import curve
from tkms.crypto.encoding import EncodingError, parse_address, parse_hex


class ConfigError(Exception):
    """Invalid configuration: the message is one line naming the variable."""


def collect(
    prefixes: Iterable[str], environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Return the nested values and, for each leaf path, the variable it came from."""
    env = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for prefix in prefixes:
        for name in sorted(env):
            if not name.startswith(prefix) or len(name) == len(prefix):
                continue
            value = env[name]
            key = name[len(prefix) :]
            if key.endswith("_FILE"):
                key = key[: -len("_FILE")]
                try:
                    value = Path(value).read_text().strip()
                except OSError as exc:
                    raise ConfigError(f"{name}: cannot read {value}: {exc.strerror}") from None
            elif (name + "_FILE") in env:
                continue  # the file form wins when both are set
            path = tuple(part.lower() for part in key.split("__"))
            node = tree
            for part in path[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ConfigError(f"{name}: conflicts with another variable")
                node = child
            node[path[-1]] = value
            origin[path] = name
    return tree, origin


def variable_for(
    loc: tuple[str | int, ...], origin: Mapping[tuple[str, ...], str], prefixes: tuple[str, ...]
) -> str:
    """The environment variable behind a pydantic error location."""
    path = tuple(str(p).lower() for p in loc if p != "[key]")
    # The variable itself, or one whose (JSON) value the error lies inside.
    for size in range(len(path), 0, -1):
        if path[:size] in origin:
            return origin[path[:size]]
    for leaf, name in sorted(origin.items()):
        if leaf[: len(path)] == path:
            # An error on a whole section (a bad chain id): name the variable's stem.
            return name[: len(name) - sum(len(p) + 2 for p in leaf[len(path) :])]
    suffix = "__".join(str(p).upper() for p in loc if p != "[key]")
    return " or ".join(prefix + suffix for prefix in prefixes)


M = TypeVar("M", bound=BaseModel)


def validate(
    model: type[M],
    prefixes: tuple[str, ...],
    environ: Mapping[str, str] | None,
    also_missing: Callable[[dict[str, Any]], list[str]] | None = None,
) -> M:
    """The environment as ``model``; ConfigError with one line naming the variable, or
    every missing variable by its full name (``also_missing``: those the model cannot
    tell, by the collected values)."""
    tree, origin = collect(prefixes, environ)
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        errors = exc.errors()
        missing = [e for e in errors if e["type"] == "missing"]
        if missing:
            names = [
                " or ".join(prefix + leaf for prefix in prefixes)
                for e in missing
                for leaf in missing_leaves(model, tuple(e["loc"]))
            ]
            names += also_missing(tree) if also_missing is not None else []
            raise ConfigError(f"missing {', '.join(names)}") from None
        err = errors[0]
        var = variable_for(tuple(err["loc"]), origin, prefixes)
        raise ConfigError(f"{var}: {err['msg'].removeprefix('Value error, ')}") from None


def missing_leaves(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The full variable suffixes (``SIGNER__WALLET_KEY``) a missing field at ``loc`` needs:
    a missing section is named by its required fields, not by the section."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            current = None
            break
        current = fields[part].annotation
    stem = "__".join(str(p).upper() for p in loc)
    if isinstance(current, type) and issubclass(current, BaseModel):
        leaves = [
            leaf
            for name, info in current.model_fields.items()
            if info.is_required()
            for leaf in missing_leaves(current, (name,))
        ]
        return [f"{stem}__{leaf}" for leaf in leaves] or [stem]
    return [stem]


# Field checks shared by the services' settings (pydantic validators call them).


def check_private_key(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    try:
        curve.parse_scalar(parse_hex(value.get_secret_value(), length=32))
    except (EncodingError, curve.CurveError):
        raise ValueError("must be a 32-byte hex secp256k1 private key in [1, n-1]") from None
    return value


def check_address(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_address(value)
        except EncodingError:
            raise ValueError("must be a 20-byte hex address") from None
    return value


def check_directory(value: Path | None) -> Path | None:
    """A directory, or a path one can be made at: neither it nor a parent is a file."""
    if value is not None:
        for path in (value, *value.parents):
            if path.exists():
                if not path.is_dir():
                    what = "is a file" if path == value else f"lies under {path}, a file"
                    raise ValueError(f"{value} {what}: a directory is needed")
                break
    return value
