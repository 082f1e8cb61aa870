"""Limits on what one HTTP connection may cost a service, enforced under uvicorn.

uvicorn's httptools protocol bounds neither the request line nor the headers
(httptools joins the pieces of a header it gets in several reads, so a long
header costs quadratic time as well as memory), never times out a request
whose headers or body stop arriving, never times out a connection that has
not sent its first request, and its only cap (``limit_concurrency``) answers
503 to everything, ``/health`` included. :class:`LimitedHttpToolsProtocol`
is uvicorn's protocol with these bounds (one instance per connection):

* the request target is at most ``max_request_line_bytes`` (414) and the
  request line and headers together at most ``max_request_line_bytes +
  max_header_bytes`` bytes (431): bytes are counted in ``data_received``
  *before* httptools sees them, so no more than that is ever fed to it;
* at most ``max_headers`` header fields (431);
* every state of a connection has a deadline: ``idle_timeout`` while no
  request is in progress (a fresh connection, or between keep-alive
  requests: closed without an answer), ``header_timeout`` from the first
  byte of a request to the end of its headers, ``body_timeout`` from there
  to the end of its body (408). Each is a deadline, not an inactivity
  timer, so a client that trickles a byte now and then does not keep it;
* at most ``max_connections`` open connections per process. A connection
  past the cap first displaces the open connection idle for the longest,
  else the oldest one still sending its headers (a legitimate client sends
  those within milliseconds of connecting, an attacker's connections are
  the old ones); only when every connection is busy with a request (body
  being received, or the application at work) is the new one refused with
  a JSON 503. So a flood of idle or slow connections cannot lock ``/health``
  or real requests out, and descriptors stay well under the process limit.

Every refusal, and httptools' own parse errors (uvicorn answers those in
``text/plain``), is the JSON error shape of :mod:`tkms.web.errors` with
``Connection: close``. After a refusal the connection is half-closed and
what the client still sends is read and dropped for a moment, so that it
sees the answer rather than a reset; its memory stays flat either way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, cast

import httptools
from pydantic import BaseModel, ConfigDict, Field
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from tkms.web.errors import error_body

log = logging.getLogger("tkms.web")


class HttpLimits(BaseModel):
    """The per-connection limits of a service (``…_SERVER__HTTP__<NAME>``)."""

    model_config = ConfigDict(extra="forbid")
    max_request_line_bytes: int = Field(8 * 1024, ge=256, le=1024 * 1024)
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=4 * 1024 * 1024)
    max_headers: int = Field(100, ge=8, le=10_000)
    header_timeout: float = Field(10.0, gt=0, le=600)
    body_timeout: float = Field(30.0, gt=0, le=3600)
    idle_timeout: float = Field(5.0, gt=0, le=3600)
    max_connections: int = Field(512, ge=2, le=1_000_000)


# What a connection is doing.
IDLE, HEAD, BODY, BUSY, CLOSING = range(5)
# Which connections a new one past the cap may displace, first to last.
_DISPLACEABLE = {CLOSING: 0, IDLE: 1, HEAD: 2}

# After a refusal: how long, and how much, of what the client still sends is dropped.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 1024 * 1024


class _Refusal(Exception):
    """Raised in a parser callback; httptools re-raises it as its own error."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds of :class:`HttpLimits`."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]  # a float is fine
        self._head_budget = limits.max_request_line_bytes + limits.max_header_bytes
        self._phase = IDLE
        self._since = 0.0  # when the current phase began (loop time)
        self._head_bytes = 0
        self._url_bytes = 0
        self._refusal: tuple[int, str, str] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._lingered = 0

    # --- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter_idle()
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            log.debug("connection refused: %d open", len(self.connections))
            self._answer(503, "too_many_connections", "too many open connections, retry later")
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = CLOSING
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def _make_room(self) -> bool:
        """Past the cap: close one connection that is lingering after a refusal, else
        the one idle for the longest, else the oldest still sending its headers.
        False when every open connection is busy with a request."""
        victim: LimitedHttpToolsProtocol | None = None
        best: tuple[int, float] | None = None
        live = 0
        for other in self.connections:
            if not isinstance(other, LimitedHttpToolsProtocol) or other.transport.is_closing():
                continue  # already on its way out: it frees its slot in a moment
            live += 1
            if other is self:
                continue
            rank = _DISPLACEABLE.get(other._phase)
            if rank is not None and (best is None or (rank, other._since) < best):
                victim, best = other, (rank, other._since)
        if live <= self.limits.max_connections:
            return True
        if victim is None:
            return False
        log.debug("connection displaced (phase %d)", victim._phase)
        victim._close()
        return True

    # --- reading ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._phase == CLOSING:
            self._linger(len(data))
            return
        try:
            if self._phase != BODY and len(data) <= self._head_budget - self._head_bytes:
                # The common case: a whole request (or its head) within the budget.
                self._head_bytes += len(data)
                self.parser.feed_data(data)
            else:
                self._feed_bounded(data)
        except httptools.HttpParserUpgrade:
            pass  # as uvicorn: no upgrade is supported, the request itself was served
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                self._refuse(400, "bad_request", "malformed HTTP request")
            return
        # Deadlines are armed only for a request still incomplete when a read is
        # done with: most requests arrive whole and never need a timer.
        if self._deadline is None:
            if self._phase == HEAD:
                self._arm(self.limits.header_timeout, self._head_timed_out)
            elif self._phase == BODY:
                self._arm(self.limits.body_timeout, self._body_timed_out)

    def _feed_bounded(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._phase != CLOSING:
            if self._phase != BODY:
                # Whatever is not a body is a request's head (or leads up to one):
                # never feed httptools more of it than the budget, refuse there.
                room = self._head_budget - self._head_bytes
                if room <= 0:
                    self._refuse(431, "headers_too_large", self._too_large_message())
                    return
                piece, view = view[:room], view[room:]
                self._head_bytes += len(piece)
                self.parser.feed_data(piece)
            else:
                piece, view = view, view[:0]
                self.parser.feed_data(piece)

    def _too_large_message(self) -> str:
        return (
            f"request line and headers exceed {self._head_budget} bytes "
            f"(line {self.limits.max_request_line_bytes}, headers {self.limits.max_header_bytes})"
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = 0
        self._unset_keepalive_if_required()
        self._enter(HEAD)

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.limits.max_request_line_bytes:
            limit = self.limits.max_request_line_bytes
            self._refusal = (414, "uri_too_long", f"request target exceeds {limit} bytes")
            raise _Refusal
        super().on_url(url)

    def on_headers_complete(self) -> None:
        # Counted here, not per header: the byte budget already bounds their memory.
        if len(self.headers) > self.limits.max_headers:
            limit = self.limits.max_headers
            self._refusal = (431, "too_many_headers", f"more than {limit} header fields")
            raise _Refusal
        if self._deadline is not None:
            self._cancel_deadline()
        self._phase = BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes = 0
        if self._deadline is not None:
            self._cancel_deadline()
        self._phase = BUSY
        super().on_message_complete()
        if self.cycle.response_complete and not self.pipeline:
            # Answered before its body was in: the connection is idle from now on.
            self._enter_idle()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is None:
            return  # closing, or the next pipelined request has started
        if self._phase == BUSY:
            self._enter(IDLE)
        else:  # the next request is already arriving: its own deadline runs
            self._unset_keepalive_if_required()

    # --- deadlines -------------------------------------------------------------------

    def _enter_idle(self) -> None:
        self._enter(IDLE)
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.idle_timeout, self.timeout_keep_alive_handler
        )

    def _enter(self, phase: int) -> None:
        self._cancel_deadline()
        self._phase = phase
        self._since = self.loop.time()

    def _arm(self, timeout: float, on_timeout: Callable[[], None]) -> None:
        self._deadline = self.loop.call_later(timeout, on_timeout)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if self._phase == HEAD:
            self._refuse(408, "request_timeout", "request headers not received in time")

    def _body_timed_out(self) -> None:
        self._deadline = None
        if self._phase != BODY:
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self._close()
            return
        if cycle is not None:
            # The application sees a disconnect; whatever it sends now is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(408, "request_timeout", "request body not received in time")

    # --- refusing --------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn's own 400 (for parse errors), in our JSON shape."""
        self._refuse(400, "bad_request", "malformed HTTP request")

    def _answer(self, status: int, code: str, message: str) -> None:
        body = error_body(code, message)
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[status],
                    b"content-type: application/json\r\n",
                    b"content-length: %d\r\n" % len(body),
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer, half-close, and drop what still arrives for a moment, then close."""
        if self._phase == CLOSING or self.transport.is_closing():
            return
        log.debug("refused %d %s", status, code)
        cycle = self.cycle
        if self.pipeline or (
            cycle is not None and not (cycle.response_complete or cycle.disconnected)
        ):
            # An earlier pipelined request is still being answered: an answer now would
            # land in the middle of it. Close instead.
            self._close()
            return
        self._answer(status, code, message)
        self._enter(CLOSING)
        self._unset_keepalive_if_required()
        self.parser = None  # type: ignore[assignment]
        if self.cycle is not None:
            self.cycle.keep_alive = False
        try:
            self.transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            self.transport.close()
            return
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def _linger(self, size: int) -> None:
        self._lingered += size
        if self._lingered > _LINGER_BYTES:
            self.transport.close()

    def _close(self) -> None:
        self._enter(CLOSING)
        self._unset_keepalive_if_required()
        self.transport.close()


def protocol_factory(limits: HttpLimits) -> type[asyncio.Protocol]:
    """What uvicorn's ``http=`` takes: a callable building one protocol per connection.

    A partial (not a subclass made here) so that it pickles by reference into
    the worker processes of ``--workers N``.
    """
    return cast(type[asyncio.Protocol], functools.partial(LimitedHttpToolsProtocol, limits=limits))
