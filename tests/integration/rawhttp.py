"""A tiny HTTP/1.x client over raw sockets.

`requests` hides the framing (chunked encoding, keep-alive, interim responses,
connection close), which is exactly what many integration tests need to see.
This module sends bytes exactly as given and parses what comes back, strictly.
Every socket operation is bounded by a timeout.
"""

import socket
import time

DEFAULT_TIMEOUT = 10.0


class ProtocolError(AssertionError):
    """The server's bytes are not a well-formed HTTP/1.x response."""


class Response:
    def __init__(self, version, status, reason, headers, body, head_bytes, chunked=False, trailers=()):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) in wire order
        self.body = body
        self.head_bytes = head_bytes
        self.chunked = chunked
        self.trailers = list(trailers)

    def header_values(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name, default=None):
        values = self.header_values(name)
        if not values:
            return default
        return ", ".join(values)

    def has_header(self, name):
        return bool(self.header_values(name))

    def connection_tokens(self):
        value = self.header("Connection", "")
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %s %r headers=%r body[%d]=%r>" % (
            self.version,
            self.status,
            self.reason,
            self.headers,
            len(self.body),
            self.body[:200],
        )


def build_request(method, target, headers=None, body=b"", version="HTTP/1.1", host="127.0.0.1", content_length=True):
    """Build request bytes. headers: list of (name, value) pairs, sent in order.

    A Host header is added for HTTP/1.1 unless one is given; Content-Length is
    added when a body is given (unless content_length=False or the caller set
    Content-Length/Transfer-Encoding itself).
    """
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if "host" not in names and host is not None:
        headers.insert(0, ("Host", host))
    if body and content_length and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    lines = ["%s %s %s" % (method, target, version)]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body


def chunked_body(pieces, extensions=False, trailers=()):
    """Encode pieces (bytes) with chunked transfer coding."""
    out = bytearray()
    for i, piece in enumerate(pieces):
        if not piece:
            continue
        out += b"%x" % len(piece)
        if extensions:
            out += b";name=value%d" % i
        out += b"\r\n" + piece + b"\r\n"
    out += b"0\r\n"
    for name, value in trailers:
        out += ("%s: %s\r\n" % (name, value)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


def address_family(address):
    """AF_UNIX for a path, AF_INET6 for ("::1", port), else AF_INET."""
    if isinstance(address, (str, bytes)):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET


class Connection:
    """One client connection. Responses are read from an internal buffer, so
    pipelined responses that arrive in one segment are parsed in order."""

    def __init__(self, address, family=None, timeout=DEFAULT_TIMEOUT):
        if family is None:
            family = address_family(address)
        self.family = family
        self.timeout = timeout
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.buf = b""
        self.eof = False

    # -- plumbing --------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, target, headers=None, body=b"", version="HTTP/1.1", **kw):
        self.send(build_request(method, target, headers, body, version, **kw))
        return self.read_response(method=method)

    def _fill(self):
        """Read more bytes into the buffer. Returns False on EOF."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, limit=65536):
        while True:
            idx = self.buf.find(b"\r\n")
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 2 :]
                return line
            if len(self.buf) > limit:
                raise ProtocolError("line too long from server: %r" % self.buf[:200])
            if not self._fill():
                raise ProtocolError("connection closed in the middle of a line: %r" % self.buf[:200])

    def _read_exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("connection closed after %d of %d body bytes" % (len(self.buf), n))
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_head(self):
        """Read a status line and headers. Returns (version, status, reason, headers, raw)."""
        while not self.buf and not self.eof:
            if not self._fill():
                break
        if not self.buf and self.eof:
            raise ProtocolError("connection closed before any response bytes")
        raw = bytearray()
        status_line = self._read_line()
        raw += status_line + b"\r\n"
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise ProtocolError("bad status line: %r" % status_line)
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._read_line()
            raw += line + b"\r\n"
            if not line:
                break
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("obsolete header folding in response: %r" % line)
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise ProtocolError("bad header line: %r" % line)
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        return version, status, reason, headers, bytes(raw)

    def read_interim(self):
        """Read exactly one response head (e.g. an interim 100 Continue)."""
        version, status, reason, headers, raw = self.read_head()
        return Response(version, status, reason, headers, b"", raw)

    def read_response(self, method="GET", skip_interim=True):
        """Read one full response; interim 1xx responses are skipped unless
        skip_interim is False (then a 1xx is returned as is)."""
        while True:
            version, status, reason, headers, raw = self.read_head()
            if 100 <= status < 200 and status != 101:
                if skip_interim:
                    continue
                return Response(version, status, reason, headers, b"", raw)
            break
        resp = Response(version, status, reason, headers, b"", raw)
        if method.upper() == "HEAD" or status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        if te is not None:
            codings = [c.strip().lower() for c in te.split(",")]
            if codings[-1] != "chunked":
                raise ProtocolError("unsupported transfer-encoding %r" % te)
            if resp.has_header("Content-Length"):
                raise ProtocolError("both Transfer-Encoding and Content-Length in response: %r" % headers)
            resp.body, resp.trailers = self._read_chunked()
            resp.chunked = True
            return resp
        cl_values = resp.header_values("Content-Length")
        if cl_values:
            if len(set(cl_values)) != 1 or not cl_values[0].isdigit():
                raise ProtocolError("bad Content-Length %r" % cl_values)
            resp.body = self._read_exact(int(cl_values[0]))
            return resp
        # Close-delimited body.
        resp.body = self.read_until_close()
        return resp

    def _read_chunked(self):
        body = bytearray()
        while True:
            line = self._read_line()
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("bad chunk size line %r" % line)
            if size == 0:
                break
            body += self._read_exact(size)
            if self._read_exact(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
        trailers = []
        while True:
            line = self._read_line()
            if not line:
                break
            trailers.append(line)
        return bytes(body), trailers

    def read_until_close(self, max_seconds=None):
        deadline = time.monotonic() + (max_seconds or self.timeout * 3)
        while self._fill():
            if time.monotonic() > deadline:
                raise ProtocolError("server did not close the connection in time")
        data, self.buf = self.buf, b""
        return data

    def wait_closed(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within
        timeout with no further bytes; False if it is still open after timeout.
        Raises ProtocolError if unexpected bytes arrive."""
        if self.buf:
            raise ProtocolError("unexpected extra bytes from server: %r" % self.buf[:200])
        if self.eof:
            return True
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            raise ProtocolError("unexpected extra bytes from server: %r" % data[:200])
        self.eof = True
        return True


def request(address, method, target, headers=None, body=b"", version="HTTP/1.1", timeout=DEFAULT_TIMEOUT, **kw):
    """One request on a fresh connection (Connection: close); returns the Response."""
    headers = list(headers or [])
    if not any(k.lower() == "connection" for k, _ in headers) and version == "HTTP/1.1":
        headers.append(("Connection", "close"))
    with Connection(address, timeout=timeout) as conn:
        return conn.request(method, target, headers, body, version, **kw)


def send_raw(address, data, method="GET", timeout=DEFAULT_TIMEOUT):
    """Send raw bytes on a fresh connection and read one response.
    Returns (response, closed_afterwards)."""
    with Connection(address, timeout=timeout) as conn:
        conn.send(data)
        resp = conn.read_response(method=method)
        closed = conn.wait_closed(timeout=5.0)
        return resp, closed
