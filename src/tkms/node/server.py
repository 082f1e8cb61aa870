"""Starting the node under uvicorn (uvloop + httptools)."""

from __future__ import annotations

import logging

import uvicorn

from tkms.node.app import create_app
from tkms.node.config import load_node_config


def serve() -> None:
    """Validate the configuration here, once, so a bad one is one clear line."""
    config = load_node_config()
    app = create_app(config)  # also checks what only the app can: keystore, sealing key
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
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
        # Workers re-read the same environment through the factory.
        uvicorn.run(
            "tkms.node.app:create_app_from_env",
            factory=True,
            workers=config.server.workers,
            **common,  # type: ignore[arg-type]
        )
    else:
        uvicorn.run(app, **common)  # type: ignore[arg-type]
