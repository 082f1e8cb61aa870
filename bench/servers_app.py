"""The servers bench/servers.py compares, one per child process.

    .venv/bin/python bench/servers_app.py SERVER APP PORT   # run by bench/servers.py

SERVER is ``uvicorn`` (tkms.web.serve's options: uvloop, the bounded httptools
protocol of tkms.web.limits) or ``granian`` (its ASGI interface, one worker,
one runtime thread). APP is

* ``fastapi``: the node's app as it was before the fast path (create_app, with
  the fast path turned off);
* ``fastpath``: the node's app as it is (create_app: FastPath in front);
* ``bare``: a raw ASGI callable that reads the body and calls the same
  delegators, with no limit, metric, audit or error shape: the least an app
  on that server can cost, a bound and not an option.

The node's environment comes from bench/servers.py (nox-kms names); the
share of ``/v1/delegate`` is ``BENCH_SHARE`` (a scalar, hex), installed as a
finished DKG would install it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.delegate_fixture import CHAIN_ID
from tkms.crypto.dleq import Prover
from tkms.node.app import create_app
from tkms.node.config import load_node_config
from tkms.node.delegation_v1 import ShareHolding
from tkms.web.common import _COMPACT

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Any, Any], Awaitable[None]]
APPS = ("fastapi", "fastpath", "bare")
SERVERS = ("uvicorn", "granian")


def node_app(kind: str) -> Any:
    app = create_app(load_node_config(os.environ))
    share = int(os.environ["BENCH_SHARE"], 16)
    app.state.threshold.partials.holdings[CHAIN_ID] = ShareHolding(1, 1, Prover(share), {})
    if kind == "fastapi":
        app.fast_path_off()
        return app
    if kind == "fastpath":
        return app
    return bare_app(app)


def bare_app(app: Any) -> ASGI:
    routes = {
        "/v0/delegate": app.state.delegator.delegate_v0,
        "/v1/delegate": app.state.threshold.partials.delegate_v1,
    }

    async def bare(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        auth = next((v.decode() for k, v in scope["headers"] if k == b"authorization"), None)
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        answer = routes[scope["path"]](query.get("chain_id"), query.get("salt"), auth,
                                       b"".join(chunks))  # fmt: skip
        body = _COMPACT.encode(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return bare


def granian_factory() -> Any:
    """What granian imports in its worker (``bench.servers_app:granian_factory``)."""
    return node_app(os.environ["BENCH_APP"])


def main() -> None:
    server, kind, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if server == "uvicorn":
        from tkms.web.serve import run

        run(node_app(kind), "", host="127.0.0.1", port=port, workers=1, access_log=False)
        return
    from granian import Granian

    os.environ["BENCH_APP"] = kind
    Granian(
        "bench.servers_app:granian_factory",
        address="127.0.0.1",
        port=port,
        interface="asgi",  # type: ignore[arg-type]
        factory=True,
        workers=1,
        runtime_threads=1,
        loop="uvloop",  # type: ignore[arg-type]
        websockets=False,
        log_access=False,
        working_dir=Path(__file__).resolve().parent.parent,
    ).serve()


if __name__ == "__main__":
    main()
