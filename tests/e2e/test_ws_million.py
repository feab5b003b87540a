"""test_ws_million - the broadcast WebSocket resumes exactly after its
client was away for a million messages: a cursor taken before them
yields each of the 1,000,000 once, in order within every queue, then
nothing; the cursor of the last frame resumes to nothing; a message
published after arrives.

Owns only these checks; the harness is fmtest, the handshake wsclient.
Frames are read with a parser of its own (bulk socket reads, a regex for
the queue and offset of each message), so that the client, not the
daemon, is not what bounds the test's time.
"""

import json
import re
import socket
import time

import fmtest
import wsclient
from fmtest import path

TOPIC = "million"
QUEUES = 4
TOTAL = 1000000
BATCH = 10000  # lines per NDJSON publish (the most a batch holds)
NDJSON = {"Content-Type": "application/x-ndjson"}
POS = re.compile(rb'"queueId":(\d+),"queueOffset":(\d+)')
CURSOR = re.compile(rb'"cursor":"([A-Za-z0-9_-]+)"')

node = fmtest.Daemon("million", {"mappedFileSizeCommitLog": 64 << 20})


class Frames:
    """Text frames of a WebSocket, read in bulk (server frames are never
    masked; pings are answered)."""

    def __init__(self, w):
        self.w = w
        self.buf = bytearray(w.buf)
        self.pos = 0

    def _need(self, n):
        while len(self.buf) - self.pos < n:
            if self.pos > (1 << 20):
                del self.buf[:self.pos]
                self.pos = 0
            data = self.w.sock.recv(1 << 18)
            if not data:
                raise wsclient.Closed(None, "EOF")
            self.buf += data

    def next(self):
        while True:
            self._need(2)
            b0, b1 = self.buf[self.pos], self.buf[self.pos + 1]
            n, h = b1 & 0x7f, 2
            if n == 126:
                self._need(4)
                n, h = int.from_bytes(self.buf[self.pos + 2:
                                               self.pos + 4], "big"), 4
            elif n == 127:
                self._need(10)
                n, h = int.from_bytes(self.buf[self.pos + 2:
                                               self.pos + 10], "big"), 10
            self._need(h + n)
            payload = bytes(self.buf[self.pos + h:self.pos + h + n])
            self.pos += h + n
            op = b0 & 0x0f
            if op == wsclient.OP_PING:
                self.w.send_frame(wsclient.OP_PONG, payload)
            elif op == wsclient.OP_CLOSE:
                raise wsclient.Closed(
                    int.from_bytes(payload[:2], "big"), payload[2:])
            elif op == wsclient.OP_TEXT:
                return payload


def ws(**query):
    return wsclient.WS(node.port, path("v1", "topics", TOPIC, "ws", **query))


def publish_million(t):
    line = b'{"body":"m"}\n'
    t0 = time.monotonic()
    for i in range(TOTAL // BATCH):
        r = node.req("POST", path("v1", "topics", TOPIC, "messages"),
                     line * BATCH, NDJSON)
        if r.status != 201:
            t.ok(False, "NDJSON publish of %d" % BATCH, r)
            return False
    t.diag("published %d in %.1f s" % (TOTAL, time.monotonic() - t0))
    return True


def test_million(t):
    r = node.req("PUT", path("v1", "topics", TOPIC),
                 json.dumps({"queues": QUEUES}).encode())
    t.ok(r.status in (200, 201), "topic with %d queues" % QUEUES)
    node.publish(TOPIC, "before")
    w = ws(**{"from": "earliest"})
    first = Frames(w).next()
    cursor = CURSOR.search(first).group(1).decode()
    qb = int(POS.search(first).group(1))
    w.close()
    if not publish_million(t):
        return
    w = ws(**{"from": cursor})
    w.sock.settimeout(30.0)
    f = Frames(w)
    nxt = [1 if q == qb else 0 for q in range(QUEUES)]
    bad = dups = 0
    t0 = time.monotonic()
    last = None
    for i in range(TOTAL):
        p = f.next()
        m = POS.search(p)
        q, off = int(m.group(1)), int(m.group(2))
        if off < nxt[q]:
            dups += 1
        elif off != nxt[q]:
            bad += 1
        nxt[q] = off + 1
        last = p
    t.diag("read %d frames in %.1f s" % (TOTAL, time.monotonic() - t0))
    t.eq(dups, 0, "a million frames after the cursor: none twice")
    t.eq(bad, 0, "and none skipped: every queue's offsets follow on")
    t.eq(sum(nxt), TOTAL + 1, "the million and the message before it, "
         "counted by the queues' next offsets")
    w.sock.settimeout(1.0)
    try:
        extra = f.next()
    except socket.timeout:
        extra = None
    t.ok(extra is None, "then nothing more", extra)
    w.close()
    end = CURSOR.search(last).group(1).decode()
    w = ws(**{"from": end})
    w.sock.settimeout(1.0)
    f = Frames(w)
    try:
        extra = f.next()
    except socket.timeout:
        extra = None
    t.ok(extra is None, "the last frame's cursor resumes to nothing",
         extra)
    w.sock.settimeout(10.0)
    mid = node.publish(TOPIC, "after").json["msgId"]
    t.eq(json.loads(f.next())["msgId"], mid, "and a new message arrives")
    w.close()


if __name__ == "__main__":
    fmtest.main([test_million], timeout=600, start=[node])
