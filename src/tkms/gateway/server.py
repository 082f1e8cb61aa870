"""Starting the gateway."""

from __future__ import annotations

from tkms.gateway.app import create_app
from tkms.gateway.chain_start import check_chain_at_start
from tkms.gateway.config import load_gateway_config
from tkms.web.serve import run


def serve() -> None:
    """Validate the configuration here, once, so a bad one is one clear line."""
    config = check_chain_at_start(load_gateway_config())  # nox v0.6's checks on a chain
    app = create_app(config)  # also opens the database: a bad URL fails here
    server = config.server
    if server.workers > 1:
        app.state.service.store.close()  # each worker opens its own
    run(
        app,
        "tkms.gateway.app:create_app_from_env",
        host=server.host,
        port=server.port,
        workers=server.workers,
        access_log=server.access_log,
        limits=server.http,
    )
