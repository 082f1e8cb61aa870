"""How a service listens: one model for the node and the gateway (``…_SERVER__*``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from tkms.web.limits import HttpLimits


class ServerConfig(BaseModel):
    """Address, workers, access log and the connection limits of one service.

    A service with its own default port (or more settings) subclasses it.
    """

    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    access_log: bool = False
    http: HttpLimits = HttpLimits()
