"""The bytes of a request to the nodes: encoded and checked once per read, ``Host`` apart.

transport/http1.py's ``encode_request`` checks every field (a CR or LF in a value would
split the request); a read sends the same POST to t + spare nodes, so it is encoded once
and each node's checked ``Host`` line is put in (:class:`~tkms.gateway.nodehttp.NodeConnections`).
"""

from __future__ import annotations

from tkms.transport.http1 import ProtocolError, encode_request


class NodeRequest:
    """A POST's bytes but its ``Host`` line: encoded and checked once for every node asked.

    A read sends the same request to t + spare nodes; only ``Host`` differs, and
    encoding a request (its checks, ~2.5 kB of fields and body) costs ~25 µs."""

    __slots__ = ("line", "rest")

    def __init__(self, target: str, headers: list[tuple[str, str]], body: bytes) -> None:
        fields = [("Content-Length", str(len(body))), *headers]
        try:
            encoded = encode_request("POST", target, fields, body)
        except ProtocolError:
            # Our own values, but a CR or LF in one would split the request: refuse it.
            raise ValueError("a request line or header is not HTTP") from None
        end = encoded.index(b"\r\n") + 2
        self.line, self.rest = encoded[:end], encoded[end:]

    def to(self, host: bytes) -> bytes:
        """The whole request with ``host`` (a checked ``Host`` line) first after its line."""
        return b"".join((self.line, host, self.rest))


def host_line(authority: str) -> bytes:
    """``Host: <authority>``, checked by http1 as any field, with its CRLF."""
    try:
        encoded = encode_request("GET", "/", [("Host", authority)], None)
    except ProtocolError:
        raise ValueError("node URL's authority is not HTTP") from None
    return encoded[encoded.index(b"\r\n") + 2 : -2]
