"""Starting the gateway under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging

import uvicorn

from tkms.gateway.app import create_app
from tkms.gateway.config import load_gateway_config


def serve() -> None:
    """Validate the configuration here, once, so a bad one is one clear line."""
    config = load_gateway_config()
    app = create_app(config)  # also opens the database: a bad URL fails here
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request with its URL at INFO: noise, and a log is no place
    # for request material even when, as here, none of it is secret.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    common = {
        "host": config.server.host,
        "port": config.server.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": config.server.access_log,
        "log_level": "info",
        "server_header": False,
    }
    if config.server.workers > 1:
        app.state.service.store.close()  # each worker opens its own
        uvicorn.run(
            "tkms.gateway.app:create_app_from_env",
            factory=True,
            workers=config.server.workers,
            **common,  # type: ignore[arg-type]
        )
    else:
        uvicorn.run(app, **common)  # type: ignore[arg-type]
