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
