"""wsclient - a minimal RFC 6455 client and an EventSource reader for the
end-to-end tests (Python standard library only).

Owns: the opening handshake, masked frames out, frames in (with the raw
header bits, so tests can see exactly what the server sent), ping/pong,
close codes, and a text/event-stream parser. Does not own any
expectation about ferrymq: the test files do.

Invariants: every socket has a timeout (no test can hang on a read); the
client masks its frames unless a test asks for a broken frame on purpose.
"""

import base64
import hashlib
import os
import socket
import struct

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Closed(Exception):
    """The server sent a close frame (code, reason) or dropped the TCP
    connection (code None)."""

    def __init__(self, code, reason):
        Exception.__init__(self, "closed: %r %r" % (code, reason))
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    def __init__(self, status, head, body):
        Exception.__init__(self, "handshake answered %s" % status)
        self.status = status
        self.head = head
        self.body = body


class WS:
    def __init__(self, port, target, timeout=10.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (target, port, key))
        self.sock.sendall(req.encode())
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if status != 101:
            body = self._read_body(headers)
            self.sock.close()
            raise HandshakeError(status, headers, body)
        want = base64.b64encode(
            hashlib.sha1((key + GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            self.sock.close()
            raise HandshakeError(101, headers, b"bad Sec-WebSocket-Accept")

    def _fill(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise Closed(None, "EOF")
        self.buf += data

    def _read_until(self, mark):
        while mark not in self.buf:
            self._fill()
        i = self.buf.index(mark) + len(mark)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_body(self, headers):
        n = int(headers.get("content-length", "0"))
        try:
            return self._read_n(n)
        except (Closed, OSError):
            return self.buf

    def send_frame(self, op, payload=b"", fin=True, mask=True, rsv=0,
                   length=None):
        """One frame; length overrides the length field (to lie)."""
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | op
        m = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, m | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_text(self, s):
        self.send_frame(OP_TEXT, s.encode() if isinstance(s, str) else s)

    def recv_frame(self):
        """(fin, opcode, masked, payload) of the next frame."""
        b0, b1 = self._read_n(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack("!H", self._read_n(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_n(8))[0]
        key = self._read_n(4) if b1 & 0x80 else None
        payload = self._read_n(n)
        if key:
            payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        return bool(b0 & 0x80), b0 & 0x0f, bool(b1 & 0x80), payload

    def recv(self):
        """The next text message as str; answers pings; raises Closed."""
        while True:
            fin, op, masked, payload = self.recv_frame()
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
            elif op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] \
                    if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode("utf-8", "replace"))
            elif op == OP_TEXT:
                return payload.decode("utf-8")

    def wait_close(self):
        """Read (discarding messages) until the close frame or EOF;
        returns (code, reason)."""
        try:
            while True:
                self.recv()
        except Closed as e:
            return e.code, e.reason
        except OSError as e:
            return None, str(e)

    def close(self, code=1000):
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        self.sock.close()


class SSE:
    """A text/event-stream reader: events as dicts {id, event, data}."""

    def __init__(self, port, target, last_event_id=None, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        extra = ""
        if last_event_id is not None:
            extra = "Last-Event-ID: %s\r\n" % last_event_id
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n"
                           "Accept: text/event-stream\r\n%s\r\n"
                           % (target, extra)).encode())
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            self._more()
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = "chunked" in self.headers.get(
            "transfer-encoding", "").lower()
        self.text = b""
        self.ended = False

    def _more(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise Closed(None, "EOF")
        self.raw += data

    def _dechunk(self):
        """Move whole chunks from raw to text."""
        if not self.chunked:
            self.text += self.raw
            self.raw = b""
            return
        while b"\r\n" in self.raw:
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if len(rest) < size + 2:
                return
            if size == 0:
                self.ended = True
            self.text += rest[:size]
            self.raw = rest[size + 2:]

    def body(self):
        """The whole body of a non-streaming answer (errors)."""
        n = int(self.headers.get("content-length", "0"))
        while len(self.raw) < n:
            self._more()
        return self.raw[:n]

    def next_event(self):
        """The next event with data (comments and retry lines skipped)."""
        while True:
            self._dechunk()
            while b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                ev = {"data": None, "id": None, "event": None}
                data = []
                for line in block.decode("utf-8").split("\n"):
                    if line.startswith(":") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    v = v[1:] if v.startswith(" ") else v
                    if k == "data":
                        data.append(v)
                    elif k in ("id", "event"):
                        ev[k] = v
                if data:
                    ev["data"] = "\n".join(data)
                    return ev
            if self.ended:
                raise Closed(None, "end of stream")
            self._more()

    def next_block(self):
        """The next raw block up to its blank line, as str: events,
        comments (": keepalive") and retry lines alike."""
        while True:
            self._dechunk()
            if b"\n\n" in self.text:
                block, self.text = self.text.split(b"\n\n", 1)
                return block.decode("utf-8")
            if self.ended:
                raise Closed(None, "end of stream")
            self._more()

    def close(self):
        self.sock.close()
