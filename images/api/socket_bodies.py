"""Upload bodies read from gunicorn's socket straight into the caller's buffer.

gunicorn's own body reader hands out each MiB as new bytes after copying it through
two or three BytesIO buffers (and, for a chunked body, a generator per chunk); on a
2-core machine those copies were a CPU-second per GiB uploaded. Here the kernel
copies the bytes once, into the upload's ring (images/ingest.py, `readinto`).

gunicorn stays in charge of the connection. A Content-Length body keeps its
`LengthReader.length` exact, so a body left unread (a refusal) is drained or the
connection closed as for any other request (glance_site/wsgi.py). A chunked body is
taken over from its first byte; bytes read past its end (a pipelined request) are
handed back, and a body abandoned midway leaves gunicorn unable to parse the rest,
which closes the connection: never a request read from the middle of an image.
"""

import inspect

# What a chunk-size line or the trailer section may take, as gunicorn allows.
MAX_LINE = 8190
MAX_TRAILERS = 8190 * 32
_RECV = 64 * 1024


def socket_body(meta):
    """The fast reader for this request's body, or None where the server is not
    gunicorn (the test client, another server) or its body reader is not fresh."""
    body, sock = meta.get("wsgi.input"), meta.get("gunicorn.socket")
    reader = getattr(body, "reader", None)
    if sock is None or reader is None or not _untouched(body):
        return None
    kind = type(reader).__name__
    if kind == "LengthReader" and hasattr(reader, "length") and hasattr(reader, "unreader"):
        return LengthBody(body, reader, sock)
    if kind == "ChunkedReader" and _fresh_chunked(reader):
        return ChunkedBody(reader, sock)
    return None


def _held(buffer) -> int:
    buffer.seek(0, 2)
    return buffer.tell()


def _untouched(body) -> bool:
    return hasattr(body, "buf") and _held(body.buf) == 0


def _fresh_chunked(reader) -> bool:
    parser = getattr(reader, "parser", None)
    return (
        parser is not None
        and inspect.getgeneratorstate(parser) == inspect.GEN_CREATED
        and _held(reader.buf) == 0
        and hasattr(getattr(reader.req, "unreader", None), "take_buffered")
    )


class LengthBody:
    """A Content-Length body; what gunicorn already buffered is read through it."""

    def __init__(self, body, reader, sock):
        self.body, self.reader, self.sock = body, reader, sock
        self.length = reader.length

    def readinto(self, buffer) -> int:
        held = _held(self.body.buf) + _held(self.reader.unreader.buf)
        if held:
            data = self.body.read(min(held, len(buffer)))
            buffer[: len(data)] = data
            return len(data)
        wanted = min(len(buffer), self.reader.length)
        if not wanted:
            return 0
        got = self.sock.recv_into(buffer, wanted)
        if not got:
            raise ConnectionError(
                f"the connection closed {self.reader.length} bytes before the end of the body "
                f"(Content-Length {self.length})"
            )
        self.reader.length -= got
        return got


class ChunkedBody:
    """A chunked body (glanceclient sends one), decoded here: chunk data goes from
    the socket into the caller's buffer; only the size lines pass through `pending`."""

    def __init__(self, reader, sock):
        self.reader, self.sock = reader, sock
        self.unreader = reader.req.unreader
        self.pending = bytearray(self.unreader.take_buffered())
        self.left = 0  # bytes of the current chunk not yet handed out
        self.started = False
        self.done = False

    def readinto(self, buffer) -> int:
        while not self.left:
            if self.done:
                return 0
            self._next_chunk()
        if self.pending:
            got = min(len(buffer), self.left, len(self.pending))
            buffer[:got] = self.pending[:got]
            del self.pending[:got]
        else:
            got = self.sock.recv_into(buffer, min(len(buffer), self.left))
            if not got:
                raise ConnectionError(f"the connection closed {self.left} bytes into a chunk")
        self.left -= got
        return got

    def _next_chunk(self) -> None:
        if self.started:
            self._want(2)
            if self.pending[:2] != b"\r\n":
                raise ValueError("a chunk does not end with CRLF")
            del self.pending[:2]
        self.started = True
        line = self._line()
        size = line.split(b";", 1)[0].strip(b" \t")
        if not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
            raise ValueError(f"invalid chunk size {bytes(size)!r}")
        self.left = int(size, 16)
        if not self.left:
            self._trailers()

    def _trailers(self) -> None:
        while not (self.pending.startswith(b"\r\n") or b"\r\n\r\n" in self.pending):
            if len(self.pending) > MAX_TRAILERS:
                raise ValueError("the trailer section is too large")
            self._receive()
        end = 2 if self.pending.startswith(b"\r\n") else self.pending.index(b"\r\n\r\n") + 4
        # Bytes past the body belong to the next request: gunicorn gets them back,
        # and its reader of this body has nothing left to give.
        self.unreader.unread(bytes(self.pending[end:]))
        self.pending.clear()
        self.reader.parser = None
        self.done = True

    def _line(self) -> bytearray:
        while (end := self.pending.find(b"\r\n")) < 0:
            if len(self.pending) > MAX_LINE:
                raise ValueError("a chunk-size line is too long")
            self._receive()
        line = self.pending[:end]
        del self.pending[: end + 2]
        return line

    def _want(self, count: int) -> None:
        while len(self.pending) < count:
            self._receive()

    def _receive(self) -> None:
        data = self.sock.recv(_RECV)
        if not data:
            raise ConnectionError("the connection closed inside a chunked body")
        self.pending += data
