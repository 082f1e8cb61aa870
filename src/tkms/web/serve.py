"""Running a service under uvicorn (uvloop + httptools), one process or several."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI


def run(
    app: FastAPI, factory: str, *, host: str, port: int, workers: int, access_log: bool
) -> None:
    """Serve ``app`` itself, or with ``workers > 1`` let each worker build its own
    from the same environment through the ``module:function`` ``factory``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request with its URL at INFO: noise, and a log is no place
    # for request material even when, as here, none of it is secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if workers > 1:
        uvicorn.run(
            factory,
            factory=True,
            workers=workers,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=access_log,
            log_level="info",
            server_header=False,
            proxy_headers=False,  # the peer is the client; see RATE_LIMIT__TRUST_FORWARDED_FOR
        )
    else:
        uvicorn.run(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            access_log=access_log,
            log_level="info",
            server_header=False,
            proxy_headers=False,  # the peer is the client; see RATE_LIMIT__TRUST_FORWARDED_FOR
        )
