"""Errors of chain access.

The one rule: when the chain could not be asked, or its answer cannot be read, the
error is :class:`ChainUnavailable` (a service answers 503) and never a yes or a no.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base of every chain access error."""


class ChainUnavailable(ChainError):
    """No trustworthy answer: connection refused, timeout, HTTP error, oversized or
    malformed response, a JSON-RPC error object, or a result that does not decode."""


class RpcError(ChainUnavailable):
    """The node answered with a JSON-RPC error that is not a contract revert."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: JSON-RPC error {code}: {message[:200]}")
        self.method = method
        self.code = code
        self.rpc_message = message


class Reverted(ChainError):
    """The contract reverted. ``error`` names the custom error (``NotAllowed``),
    ``Error`` for ``require`` strings or ``Panic``; ``error_args`` are its decoded arguments;
    ``data`` is the raw revert data (empty when the node gave none)."""

    def __init__(
        self,
        error: str | None,
        args: tuple[object, ...] = (),
        data: bytes = b"",
        *,
        reason: str | None = None,
    ) -> None:
        self.error = error
        self.error_args = args
        self.data = data
        self.reason = reason or _describe(error, args, data)
        super().__init__(f"execution reverted: {self.reason}")


class TransactionFailed(Reverted):
    """A mined transaction has status 0 (it reverted on chain, after its gas estimate)."""


class ReceiptTimeout(ChainUnavailable):
    """A sent transaction was not mined within the wait."""


def _describe(error: str | None, args: tuple[object, ...], data: bytes) -> str:
    if error is None:
        return "0x" + data.hex() if data else "(no revert data)"
    if error == "Error" and len(args) == 1:
        return str(args[0])
    shown = ", ".join("0x" + a.hex() if isinstance(a, bytes) else str(a) for a in args)
    return f"{error}({shown})"
