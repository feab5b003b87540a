"""test_keepalive - the timing of idle WebSocket pings and EventSource
keepalive comments, on a daemon with short intervals (wsPingInterval 600
ms, sseKeepaliveInterval 500 ms; the WebSocket session timer then ticks
every 300 ms):
  - an idle WebSocket client that sends nothing gets a ping after about
    the interval (0.5x to 3x);
  - a client that answers every ping with a pong stays open across
    several intervals (at least 3 pings, each spaced 0.5x to 3x the
    interval) and still gets a message published afterwards;
  - a client that never answers is closed with 1001 between 0.5 and 2.5
    intervals after the ping;
  - an EventSource stream without events gets ": keepalive" comments
    spaced 0.5x to 3x the interval, and still gets an event published
    afterwards.

Owns only these checks; the harness is fmtest, the clients wsclient.
"""

import json
import struct
import time

import fmtest
import wsclient
from fmtest import path

PING_MS = 600
KEEPALIVE_MS = 500

node = fmtest.Daemon("keepalive", {"wsPingInterval": PING_MS,
                                   "sseKeepaliveInterval": KEEPALIVE_MS})

TOPIC = "ka"


def within(seconds, interval_ms, lo=0.5, hi=3.0):
    return lo * interval_ms / 1000.0 <= seconds <= hi * interval_ms / 1000.0


def ws():
    return wsclient.WS(node.port, path("v1", "topics", TOPIC, "ws"),
                       timeout=10.0)


def next_control(w):
    """(opcode, payload, seconds since the call) of the next frame; text
    frames are not expected on an idle stream and fail the caller."""
    t0 = time.monotonic()
    fin, op, masked, payload = w.recv_frame()
    return op, payload, time.monotonic() - t0, masked


def test_setup(t):
    r = node.req("PUT", path("v1", "topics", TOPIC),
                 json.dumps({"queues": 1}).encode(),
                 {"Content-Type": "application/json"})
    t.ok(r.status in (200, 201), "PUT %s with 1 queue" % TOPIC, r)


def test_ws_unanswered(t):
    w = ws()
    t0 = time.monotonic()
    op, payload, _, masked = next_control(w)
    first = time.monotonic() - t0
    t.eq(op, wsclient.OP_PING, "an idle client's first frame is a ping")
    t.ok(not masked, "the server's ping is not masked")
    t.ok(within(first, PING_MS),
         "the ping comes after %.2f s, 0.5x..3x wsPingInterval" % first)
    # never answer: the next frame is the close
    tp = time.monotonic()
    try:
        op, payload, _, _ = next_control(w)
        waited = time.monotonic() - tp
        code = struct.unpack("!H", payload[:2])[0] \
            if op == wsclient.OP_CLOSE and len(payload) >= 2 else None
    except (wsclient.Closed, OSError) as e:
        op, code, waited = None, None, time.monotonic() - tp
        t.diag("connection dropped: %r" % (e,))
    t.eq((op, code), (wsclient.OP_CLOSE, 1001),
         "a ping left unanswered: close 1001")
    t.ok(within(waited, PING_MS, 0.5, 2.5),
         "closed %.2f s after the ping, 0.5x..2.5x wsPingInterval" % waited)
    w.sock.close()


def test_ws_answered(t):
    w = ws()
    gaps = []
    pings = 0
    last = time.monotonic()
    while pings < 4:
        op, payload, _, _ = next_control(w)
        now = time.monotonic()
        if op != wsclient.OP_PING:
            t.ok(False, "only pings on an idle stream", (op, payload))
            break
        pings += 1
        gaps.append(now - last)
        last = now
        w.send_frame(wsclient.OP_PONG, payload)
    t.ok(pings >= 4, "a client that answers gets ping after ping (%d)" %
         pings)
    t.ok(all(within(g, PING_MS) for g in gaps),
         "each ping 0.5x..3x wsPingInterval after the previous pong: %s" %
         ", ".join("%.2f" % g for g in gaps))
    t.ok(sum(gaps) > 3 * PING_MS / 1000.0,
         "open across several intervals (%.2f s)" % sum(gaps))
    r = node.publish(TOPIC, b"after the pings")
    t.eq(r.status, 201, "publish -> 201")
    got = None
    try:
        got = json.loads(w.recv())  # recv answers pings meanwhile
    except (wsclient.Closed, OSError) as e:
        t.diag("no message: %r" % (e,))
    t.eq((got or {}).get("msgId"), r.json["msgId"],
         "the connection still delivers a message published afterwards")
    t.eq(fmtest.body_bytes(got) if got else None, b"after the pings",
         "with its body")
    w.close()


def test_sse(t):
    s = wsclient.SSE(node.port, path("v1", "topics", TOPIC, "events"))
    t0 = time.monotonic()
    t.eq(s.status, 200, "EventSource: 200")
    times, other = [], []
    while len(times) < 4 and time.monotonic() - t0 < 8.0:
        block = s.next_block()
        if block.startswith("retry:"):
            continue
        if block == ": keepalive":
            times.append(time.monotonic())
        else:
            other.append(block)
    t.eq(other, [], "nothing but keepalive comments without events")
    t.eq(len(times), 4, "4 keepalives within 8 s")
    spacing = [b - a for a, b in zip([t0] + times, times)]
    t.ok(all(within(g, KEEPALIVE_MS) for g in spacing),
         "keepalives 0.5x..3x sseKeepaliveInterval apart: %s" %
         ", ".join("%.2f" % g for g in spacing))
    r = node.publish(TOPIC, b"after the keepalives")
    t.eq(r.status, 201, "publish -> 201")
    ev = s.next_event()
    m = json.loads(ev["data"])
    t.eq((m.get("msgId"), fmtest.body_bytes(m)),
         (r.json["msgId"], b"after the keepalives"),
         "the stream still delivers an event published afterwards")
    t.eq(ev["id"], m.get("cursor"), "with its cursor as id")
    s.close()


if __name__ == "__main__":
    fmtest.main([test_setup, test_ws_unanswered, test_ws_answered,
                 test_sse], timeout=60, start=[node])
