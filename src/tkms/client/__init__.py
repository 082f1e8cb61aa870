"""The SDK a user or a compute runner imports."""

from tkms.client.errors import (
    AccessDenied,
    BadRequest,
    Conflict,
    InvalidInput,
    NotEnoughPartials,
    NotFound,
    ServiceError,
    TkmsError,
    TransactionReverted,
    TransportError,
    Unauthorized,
    Unavailable,
    UntrustedResponse,
)
from tkms.client.gateway_open import Acl, Encrypted
from tkms.client.runner import AsyncRunner, Runner
from tkms.client.sdk import AsyncClient, Client

__all__ = [
    "AccessDenied",
    "Acl",
    "AsyncClient",
    "AsyncRunner",
    "BadRequest",
    "Client",
    "Conflict",
    "Encrypted",
    "InvalidInput",
    "NotEnoughPartials",
    "NotFound",
    "Runner",
    "ServiceError",
    "TkmsError",
    "TransactionReverted",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UntrustedResponse",
]
