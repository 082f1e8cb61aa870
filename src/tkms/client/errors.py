"""Every error the SDK raises: one base class, one subclass per way a call can fail.

    TkmsError
    ├── TransportError        the service is unreachable or spoke no protocol
    ├── ServiceError          a documented {"error", "message"} answer
    │   ├── BadRequest        400
    │   ├── Unauthorized      401
    │   ├── AccessDenied      403
    │   ├── NotFound          404
    │   ├── Conflict          409
    │   └── Unavailable       5xx
    ├── UntrustedResponse     a signature, proof or keyset does not check out
    ├── NotEnoughPartials     fewer than t good partials, naming each failed node
    ├── TransactionReverted   an *_on_chain transaction was refused by the contract
    ├── InvalidInput          (also a ValueError) a bad argument; nothing was sent
    └── CeremonyError         the DKG relay (``tkms dkg``) could not complete a ceremony

The protocol's own checks (``tkms.protocol``) raise
``ProtocolError``; :func:`untrusted` is where the SDK turns it into
``UntrustedResponse``, so no protocol error leaves the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from tkms.protocol.errors import ProtocolError


class TkmsError(Exception):
    """Base of every error the tkms client raises."""


class TransportError(TkmsError):
    """The service could not be reached or answered something that is not the protocol."""


class ServiceError(TkmsError):
    """The service answered a documented error ``{"error", "message"}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class UntrustedResponse(TkmsError):
    """A response's signature or proof does not check out against the trusted signer."""


@contextmanager
def untrusted() -> Iterator[None]:
    """Run a protocol check at the SDK's edge: its :class:`ProtocolError` is untrusted."""
    try:
        yield
    except ProtocolError as exc:
        raise UntrustedResponse(str(exc)) from None


class NotEnoughPartials(TkmsError):
    """Fewer than ``t`` valid partials; ``failures`` says which node failed and why."""

    def __init__(self, threshold: int, valid: int, failures: Mapping[int, str]) -> None:
        detail = "; ".join(f"node {i}: {why}" for i, why in sorted(failures.items()))
        super().__init__(
            f"need {threshold} valid partials, have {valid}" + (f" ({detail})" if detail else "")
        )
        self.threshold = threshold
        self.valid = valid
        self.failures = dict(failures)


# --- the gateway's documented refusals, one class per status ---------------------------


class BadRequest(ServiceError):
    """400: the request itself is malformed (a bad handle, value or key)."""


class Unauthorized(ServiceError):
    """401: the signed authorization is missing, malformed, expired or not yours."""


class AccessDenied(ServiceError):
    """403: the caller may not read (or grant on) this handle."""


class NotFound(ServiceError):
    """404: no secret is stored under this handle."""


class Conflict(ServiceError):
    """409: the handle already exists."""


class Unavailable(ServiceError):
    """5xx: the gateway, its database or the KMS cannot serve right now."""


_BY_STATUS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: AccessDenied,
    404: NotFound,
    409: Conflict,
}


def service_error(status: int, code: str, message: str) -> ServiceError:
    """The typed error of a documented ``{"error", "message"}`` answer."""
    kind = _BY_STATUS.get(status, Unavailable if status >= 500 else ServiceError)
    return kind(status, code, message)


class InvalidInput(TkmsError, ValueError):
    """A value, type, handle or address given to the SDK is not acceptable (nothing was sent)."""


class TransactionReverted(TkmsError):
    """A transaction the SDK sent was refused by the contract (``error`` names why)."""

    def __init__(self, what: str, error: str | None, reason: str) -> None:
        super().__init__(f"{what} reverted on chain: {reason}")
        self.error = error


class CeremonyError(TkmsError):
    """The ceremony could not complete; the message says which nodes and why."""
