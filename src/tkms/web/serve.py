"""Running a service under uvicorn (uvloop + httptools), one process or several."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from tkms.web.limits import HttpLimits, protocol_factory


def run(
    app: FastAPI,
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    limits: HttpLimits | None = None,
) -> None:
    """Serve ``app`` itself, or with ``workers > 1`` let each worker build its own
    from the same environment through the ``module:function`` ``factory``.

    Connections are bounded by ``limits`` (:mod:`tkms.web.limits`), in each process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request with its URL at INFO: noise, and a log is no place
    # for request material even when, as here, none of it is secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    limits = limits or HttpLimits()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": protocol_factory(limits),
        "ws": "none",  # no service speaks WebSocket: no second protocol to bound
        "timeout_keep_alive": limits.idle_timeout,
        "access_log": access_log,
        "log_level": "info",
        "server_header": False,
        "proxy_headers": False,  # the peer is the client; see RATE_LIMIT__TRUST_FORWARDED_FOR
    }
    if workers > 1:
        uvicorn.run(factory, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)
