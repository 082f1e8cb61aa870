"""Typed client errors: one base class, one subclass per way a call can fail."""

from __future__ import annotations


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
