"""Which served chain a request is for (nox v0.6's rule).

Wherever a handle is given, the chain is the handle's (bytes 1..4); a
``chain_id`` query value, when also given, must be a served chain and the
handle's. Without a handle (``POST /v0/secrets``, ``GET /v1/keyset``) it is
``chain_id``, or the default chain (``DEFAULT_CHAIN_ID``). A chain the gateway
does not serve is 400 ``unknown_chain``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from tkms.gateway.served_chain import ServedChain
from tkms.protocol.handle import HandleError, parse_handle
from tkms.web.errors import ApiError
from tkms.web.params import parse_chain_id


class Chains:
    def __init__(self, chains: Mapping[int, ServedChain], default: int) -> None:
        if default not in chains:
            raise ValueError(f"the default chain {default} is not served")
        self.by_id = dict(sorted(chains.items()))
        self.default = default

    def __iter__(self) -> Iterator[ServedChain]:
        return iter(self.by_id.values())

    def served(self, chain_id: int) -> ServedChain:
        chain = self.by_id.get(chain_id)
        if chain is None:
            raise ApiError(400, "unknown_chain", f"chain {chain_id} is not served by this gateway")
        return chain

    def for_query(self, raw: str | None) -> ServedChain:
        """``chain_id`` of the query (syntax 400 ``invalid_chain_id``), else the default."""
        return self.served(self.default if raw is None else parse_chain_id(raw))

    def for_handle(
        self, handle_raw: object, query: ServedChain | None
    ) -> tuple[ServedChain, bytes]:
        """The handle's chain and bytes; ``query``: the chain ``chain_id`` named, if given."""
        try:
            handle = parse_handle(handle_raw)
        except HandleError as exc:
            raise ApiError(400, "invalid_handle", str(exc)) from None
        chain = self.served(handle.chain_id)
        if query is not None and query is not chain:
            raise ApiError(
                400,
                "invalid_handle",
                f"handle belongs to chain {handle.chain_id}, not {query.chain_id}",
            )
        return chain, handle.to_bytes()

    def query_chain(self, raw: str | None) -> ServedChain | None:
        """The chain ``chain_id`` names (checked), or None when it is absent."""
        return None if raw is None else self.for_query(raw)
