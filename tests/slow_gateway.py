"""The gateway with its fast path off: every request through FastAPI's whole stack.

    python -m tests.slow_gateway   # the gateway's environment, as `tkms gateway`

The reference tests/test_gateway_fastpath.py compares the fast path's answers
with: the same configuration, the same server options, only the reads' path
differs.
"""

from __future__ import annotations

from tkms.gateway.app import create_app
from tkms.gateway.chain_start import check_chain_at_start
from tkms.gateway.config import load_gateway_config
from tkms.web.fastpath import FastAPIWithFastPath
from tkms.web.serve import run


def main() -> None:
    config = check_chain_at_start(load_gateway_config())
    app = create_app(config)
    assert isinstance(app, FastAPIWithFastPath)
    app.fast_path_off()
    server = config.server
    run(
        app,
        "",
        host=server.host,
        port=server.port,
        workers=1,
        access_log=server.access_log,
        limits=server.http,
    )


if __name__ == "__main__":
    main()
