"""Starting the node."""

from __future__ import annotations

from tkms.node.app import create_app
from tkms.node.config import load_node_config
from tkms.web.serve import run


def serve() -> None:
    """Validate the configuration here, once, so a bad one is one clear line."""
    config = load_node_config()
    app = create_app(config)  # also checks what only the app can: keystore, sealing key
    server = config.server
    run(
        app,
        "tkms.node.app:create_app_from_env",
        host=server.host,
        port=server.port,
        workers=server.workers,
        access_log=server.access_log,
        limits=server.http,
    )
