"""HTTP/1.1 on the client's side of one connection: a request's bytes, an answer's parts.

The transports' codec (transport/exchange.py drives it), in place of h11 since
issue 13: h11's events, state machine and per-header validation cost about
140 µs of CPU per exchange, a fifth of the SDK's overhead above its
cryptography, where this costs about 20 (bench/sdk_decrypt.py). It does what a
client of one origin needs and refuses the rest as :class:`ProtocolError`:

- a request: a token method, a printable target, token header names, values
  without CR, LF or NUL (no header can be smuggled into another), ASCII only;
- an answer: a ``HTTP/1.x`` status line, header lines (no obs-fold, names
  lower-cased), informational 1xx answers skipped (a 101 refused), the body
  framed by ``Transfer-Encoding: chunked`` (nothing else is a transfer coding
  we take), ``Content-Length`` (repeated only with one value, at most 18 digits;
  never with chunked), none for HEAD, 204 and 304, else the bytes up to the server's close;
  a head over :data:`MAX_HEAD_BYTES` (h11's bound) is refused, and bytes that
  cannot begin a status line as soon as they come;
- reuse: an HTTP/1.1 answer read whole by its framing, without
  ``Connection: close``, with no byte after it.
"""

from __future__ import annotations

import re

MAX_HEAD_BYTES = 16 * 1024  # a status line and headers, or a chunk's size line and trailers
_MAX_LENGTH_DIGITS = 18  # a Content-Length past any real bound, short of int()'s digit limit
_VERSION = b"HTTP/1."

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# A field value's bytes and a target's: what is left after deleting them
# (bytes.translate) is what is refused, a fifth of a regex's CPU on a 1 kB value.
_VALUE_BYTES = b"\t" + bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
_TARGET_BYTES = bytes(range(0x21, 0x7F))
_STATUS = re.compile(rb"HTTP/1\.([0-9]) ([0-9]{3})(?: [\t\x20-\x7e\x80-\xff]*)?")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ProtocolError(Exception):
    """Bytes that are not HTTP/1.1 as this client speaks it (either way)."""


class TooLong(ProtocolError):
    """A body longer than the bound the reader was given."""


class HeadTooLong(ProtocolError):
    """A head, a chunk's size line or trailers over :data:`MAX_HEAD_BYTES`."""


class BadLength(ProtocolError):
    """A ``Content-Length`` that is not one number."""


class BadCoding(ProtocolError):
    """A ``Transfer-Encoding`` other than ``chunked`` alone (or with a length)."""


class Http1:
    """One connection's HTTP/1.1 state: the request in flight and the bytes not yet parsed.

    A caller that makes its requests' bytes itself (:func:`encode_request`, once for
    several tries) reads each answer with a fresh one: a connection is reused only
    when :meth:`reusable`, so no byte of an earlier answer is left to carry over."""

    __slots__ = ("_buffer", "_chunk_left", "_eof", "_head_only", "_keep", "_parts", "_size", "done")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._head_only = False  # the request was a HEAD: no answer carries a body
        self._keep = True  # our request did not ask to close
        self.done = False  # the answer was read whole by its framing
        # A chunked body in progress: its chunks so far, their size, and the chunk being
        # read (None: a size line next; -1: the last chunk was read, the trailers next).
        self._parts: list[bytes] = []
        self._size = 0
        self._chunk_left: int | None = None

    def request(
        self, method: str, target: str, fields: list[tuple[str, str]], body: bytes | None
    ) -> bytes:
        """One whole request's bytes; :class:`ProtocolError` on a field that is not HTTP."""
        if self._buffer or self._eof:
            raise ProtocolError("the connection has bytes of an earlier answer")
        data = encode_request(method, target, fields, body)
        if any(k.lower() == "connection" and "close" in v.lower() for k, v in fields):
            self._keep = False
        self._head_only = method == "HEAD"
        self.done = False
        return data

    def receive(self, data: bytes) -> None:
        """Bytes read from the server; ``b""`` is its close."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def reusable(self) -> bool:
        """Whether the next request may go on this connection."""
        return self.done and self._keep and not self._buffer and not self._eof

    # --- the answer's parts, in order: each None until its bytes are all in ------------------

    def head(self) -> tuple[int, list[tuple[str, str]]] | None:
        """The final answer's (status, lower-cased header fields), past any 1xx."""
        while True:
            buffer = self._buffer
            if not buffer.startswith(_VERSION[: len(buffer)]):
                raise ProtocolError("not an HTTP/1.x status line")  # no wait for a head of junk
            # Only the bound's span is searched: a head ends in it or is too long.
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise HeadTooLong("answer head too long")
                self._more()
                return None
            lines = bytes(self._buffer[:end]).split(b"\r\n")
            del self._buffer[: end + 4]
            status = _STATUS.fullmatch(lines[0])
            if status is None:
                raise ProtocolError("not an HTTP/1.x status line")
            code = int(status[2])
            if code == 101 or code < 100:
                raise ProtocolError("the server switched protocols, or no status")
            if code >= 200:
                if status[1] != b"1":
                    self._keep = False  # HTTP/1.0: the server closes after it
                return code, _fields(lines[1:])
            # an informational answer (100 Continue, 103 Early Hints): the real one follows

    def framing(self, status: int, fields: list[tuple[str, str]]) -> int | None:
        """The body's length, or -1 (chunked), or None (up to the server's close)."""
        lengths: set[str] = set()
        codings: list[str] = []
        for name, value in fields:  # one pass: the fan-out reads four answers a decryption
            if name == "content-length":
                lengths.add(value.strip())
            elif name == "transfer-encoding":
                codings.append(value.strip().lower())
            elif name == "connection" and "close" in value.lower():
                self._keep = False
        if self._head_only or status in (204, 304):
            return 0
        if codings:
            if codings != ["chunked"] or lengths:
                raise BadCoding("a transfer coding other than chunked alone")
            return -1
        if lengths:
            (length,) = lengths if len(lengths) == 1 else (None,)
            if (
                length is None
                or not length.isdigit()
                or not length.isascii()
                or len(length) > _MAX_LENGTH_DIGITS
            ):
                raise BadLength("Content-Length is not one number")
            return int(length)
        self._keep = False
        return None

    def body(self, length: int | None, bound: int) -> bytes | None:
        """The whole body for this framing (see :meth:`framing`), within ``bound`` bytes."""
        if length is None:  # up to the close
            if len(self._buffer) > bound:
                raise TooLong
            if not self._eof:
                return None
            data = bytes(self._buffer)
            self._buffer.clear()
        elif length >= 0:
            if length > bound:
                raise TooLong
            if len(self._buffer) < length:
                self._more()
                return None
            data = bytes(self._buffer[:length])
            del self._buffer[:length]
        else:
            chunks = self._chunks(bound)
            if chunks is None:
                self._more()
                return None
            data = chunks
        self.done = True
        return data

    def _chunks(self, bound: int) -> bytes | None:
        """A whole chunked body, consumed chunk by chunk as its bytes come."""
        buffer = self._buffer
        while True:
            left = self._chunk_left
            if left is None:  # a chunk's size line
                line_end = buffer.find(b"\r\n")
                if line_end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise HeadTooLong("chunk size line too long")
                    return None
                size_hex = bytes(buffer[:line_end]).split(b";", 1)[0].strip(b" \t")
                if not _HEX.fullmatch(size_hex):
                    raise ProtocolError("not a chunk size")
                left = int(size_hex, 16)
                self._size += left
                if self._size > bound:
                    raise TooLong
                del buffer[: line_end + 2]
                self._chunk_left = left if left else -1
            elif left < 0:  # after the last chunk: trailers (ignored) up to an empty line
                end = 0 if buffer[:2] == b"\r\n" else buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise HeadTooLong("chunked trailers too long")
                    return None
                del buffer[: end + (2 if end == 0 else 4)]
                data, self._parts, self._size, self._chunk_left = b"".join(self._parts), [], 0, None
                return data
            else:  # a chunk's data, then its CRLF
                if len(buffer) < left + 2:
                    return None
                if buffer[left : left + 2] != b"\r\n":
                    raise ProtocolError("a chunk does not end with CRLF")
                self._parts.append(bytes(buffer[:left]))
                del buffer[: left + 2]
                self._chunk_left = None

    def _more(self) -> None:
        """None: more bytes are needed, unless the server closed (then, mid-answer)."""
        if self._eof:
            raise Truncated


class Truncated(ProtocolError):
    """The server closed the connection in the middle of an answer."""


def encode_request(
    method: str, target: str, fields: list[tuple[str, str]], body: bytes | None
) -> bytes:
    """One whole request's bytes, for a reader (:class:`Http1`) made for its answer alone.

    :class:`ProtocolError` on a field that is not HTTP: a token method, a printable
    target, token names, values without CR, LF or NUL, ASCII only. The names are
    checked joined (tokens joined are a token), the values too (one translate):
    per field, the checks cost more than the rest of the request."""
    names = [name for name, _ in fields]
    try:
        if (
            not _TOKEN.fullmatch(method.encode("ascii"))
            or not target
            or target.encode("ascii").translate(None, _TARGET_BYTES)
            or not all(names)
            or (names and not _TOKEN.fullmatch("".join(names).encode("ascii")))
            or "".join([value for _, value in fields]).encode("ascii").translate(None, _VALUE_BYTES)
        ):
            raise ProtocolError("a request field is not HTTP")
        lines = [f"{method} {target} HTTP/1.1", *[f"{k}: {v}" for k, v in fields]]
        return "\r\n".join(lines).encode("ascii") + b"\r\n\r\n" + (body or b"")
    except UnicodeEncodeError:
        raise ProtocolError("a request field is not ASCII") from None


def _fields(lines: list[bytes]) -> list[tuple[str, str]]:
    """Header lines' (lower-cased name, value stripped of SP and HTAB).

    Checked for all lines at once, the way :func:`encode_request` checks a request:
    no control character but HTAB in any (one translate), token names (joined)."""
    if b"".join(lines).translate(None, _VALUE_BYTES):
        raise ProtocolError("a header line with a control character")
    fields = []
    names = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name:
            raise ProtocolError("not a header line")
        names.append(name)
        fields.append((name.decode("latin-1").lower(), value.strip(b" \t").decode("latin-1")))
    if names and not _TOKEN.fullmatch(b"".join(names)):
        raise ProtocolError("not a header line")  # obs-fold (a leading space) is one
    return fields
