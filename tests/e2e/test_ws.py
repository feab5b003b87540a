"""test_ws - the WebSocket broadcast stream on the HTTP port: handshake
answers, every frame a message with a cursor, resume by cursor with
nothing lost or repeated, a client that stops reading cut off (4008)
while another keeps receiving, malformed/unmasked/oversized frames and
invalid UTF-8 closed with the right code, a topic deleted under caught-up
WebSocket and EventSource subscribers ends both at once (4004, an error
event), a client that floods pings without reading does not grow the
daemon's memory, and a clean stop and restart with sessions open.

Owns only these checks; the harness is fmtest, the client wsclient.
"""

import json
import socket
import threading
import time

import fmtest
import wsclient
from fmtest import path

node = fmtest.Daemon("ws", {"defaultTopicQueueNums": 4})


def ws(topic, **query):
    return wsclient.WS(node.port, path("v1", "topics", topic, "ws", **query))


def pub(topic, body, **query):
    r = node.publish(topic, body, **query)
    if r.status != 201:
        raise RuntimeError("publish: %r" % (r,))
    return r.json["msgId"]


def read_n(w, n):
    return [json.loads(w.recv()) for _ in range(n)]


def silent(w, seconds=0.5):
    """True when no message arrives within seconds."""
    w.sock.settimeout(seconds)
    try:
        w.recv()
        return False
    except socket.timeout:
        return True
    finally:
        w.sock.settimeout(10.0)


def in_queue_order(msgs):
    last = {}
    for m in msgs:
        q = m["queueId"]
        if m["queueOffset"] <= last.get(q, -1):
            return False
        last[q] = m["queueOffset"]
    return True


def test_handshake(t):
    r = node.get("/v1/broker")
    t.eq(r.json.get("wsUrl"), "ws://127.0.0.1:%d" % node.port,
         "/v1/broker wsUrl is the same port")
    pub("hs", "x")
    r = node.get(path("v1", "topics", "hs", "ws"))
    t.is_error(r, 400, "a plain GET of the stream is 400", "BAD_REQUEST")
    for target, status, desc in [
            (path("v1", "topics", "nope", "ws"), 404, "unknown topic"),
            (path("v1", "topics", "hs", "ws", **{"from": "!!"}), 400,
             "malformed cursor"),
            (path("v1", "topics", "hs", "ws", **{"from": "AQ-_AQ"}), 400,
             "cursor ahead of the queues")]:
        try:
            ws_ = wsclient.WS(node.port, target)
            ws_.close()
            t.ok(False, "%s: refused" % desc)
        except wsclient.HandshakeError as e:
            t.eq(e.status, status, "%s: HTTP %d before the upgrade" %
                 (desc, status))
            t.ok(b'"error"' in e.body, "%s: error form" % desc, e.body)
    raw = fmtest.raw_request(
        node.port, b"GET /v1/topics/hs/ws HTTP/1.1\r\nHost: x\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: "
        b"dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    t.ok(raw.startswith(b"HTTP/1.1 400"), "version 8 is refused", raw[:200])


def test_latest_and_fanout(t):
    pub("fan", "before")
    a, b = ws("fan"), ws("fan", **{"from": "latest"})
    ids = [pub("fan", "m%d" % i, keys="k%d" % i) for i in range(12)]
    got_a, got_b = read_n(a, 12), read_n(b, 12)
    t.eq(sorted(m["msgId"] for m in got_a), sorted(ids),
         "latest: connection A sees exactly the new messages")
    t.eq(sorted(m["msgId"] for m in got_b), sorted(ids),
         "latest: connection B sees them too")
    t.ok(all(isinstance(m.get("cursor"), str) and m["cursor"]
             for m in got_a), "every frame carries a cursor")
    t.ok(all("receiptHandle" not in m for m in got_a),
         "no receiptHandle on the broadcast stream")
    problems = [fmtest.message_problems(dict(m, cursor=None))
                for m in got_a]
    t.ok(not any(problems), "frames have the contract's message shape",
         problems)
    t.ok(silent(a), "nothing more than was published")
    a.close()
    b.close()


def test_resume(t):
    first = [pub("res", "a%d" % i, keys="k%d" % i) for i in range(40)]
    w = ws("res", **{"from": "earliest"})
    head = read_n(w, 15)
    cursor = head[-1]["cursor"]
    w.close()
    later = [pub("res", "b%d" % i) for i in range(30)]
    w = ws("res", **{"from": cursor})
    rest = read_n(w, 55)
    t.ok(silent(w), "resume: nothing after the rest")
    w.close()
    seen = [m["msgId"] for m in head + rest]
    t.eq(len(seen), len(set(seen)), "resume: no message twice")
    t.eq(sorted(seen), sorted(first + later), "resume: no message missed")
    t.ok(in_queue_order(head + rest), "resume: queue order kept")
    qs = {m["queueId"] for m in head + rest}
    t.eq(sorted(qs), [0, 1, 2, 3], "all four queues were merged")
    # a cursor from the middle of the rest works as well
    mid = rest[20]["cursor"]
    w = ws("res", **{"from": mid})
    again = read_n(w, 34)
    t.eq([m["msgId"] for m in again], [m["msgId"] for m in rest[21:]],
         "resume from any frame's cursor gives exactly what followed")
    w.close()


def test_slow_consumer(t):
    body = "x" * (200 * 1024)
    pub("slow", "warm")
    fast = ws("slow")
    lazy = ws("slow", rcvbuf=4096)
    got = []

    def reader():
        try:
            while len(got) < 40:
                got.append(json.loads(fast.recv())["msgId"])
        except Exception as e:  # reported by the count below
            got.append(repr(e))

    th = threading.Thread(target=reader)
    th.start()
    ids = [pub("slow", body) for _ in range(40)]
    th.join(30)
    t.eq(sorted(got), sorted(ids),
         "a reading client gets all 40 messages of 200 KiB")
    time.sleep(8)  # FM_WS_STALL_MS (5 s) plus a tick, with slack
    code, reason = lazy.wait_close()
    t.ok(code == 4008, "the client that never read is closed with 4008",
         (code, reason))
    t.ok("from=" in (reason or ""), "its reason says how to resume",
         reason)
    t.eq(node.get("/healthz").status, 200, "the server stays healthy")
    mid = pub("slow", "after")
    t.eq(json.loads(fast.recv())["msgId"], mid,
         "the reading client still receives")
    fast.close()


def expect_close(t, frames, code, desc):
    """Open a stream, send raw frames, expect the close code."""
    w = ws("frames")
    for f in frames:
        w.send_frame(**f)
    got, reason = w.wait_close()
    t.ok(got == code, "%s: close %d" % (desc, code), (got, reason))
    w.sock.close()


def test_frames(t):
    pub("frames", "x")
    T = wsclient.OP_TEXT
    expect_close(t, [dict(op=T, payload=b"hi", mask=False)], 1002,
                 "unmasked client frame")
    expect_close(t, [dict(op=T, payload=b"hi", rsv=4)], 1002,
                 "reserved bit set")
    expect_close(t, [dict(op=3, payload=b"")], 1002, "unknown opcode")
    expect_close(t, [dict(op=wsclient.OP_PING, payload=b"p", fin=False)],
                 1002, "fragmented ping")
    expect_close(t, [dict(op=wsclient.OP_PING, payload=b"p" * 126)], 1002,
                 "ping longer than 125 bytes")
    expect_close(t, [dict(op=wsclient.OP_CONT, payload=b"x")], 1002,
                 "continuation without a message")
    expect_close(t, [dict(op=T, payload=b"a", fin=False),
                     dict(op=T, payload=b"b")], 1002,
                 "new message inside a fragmented one")
    expect_close(t, [dict(op=T, payload=b"\xff\xfe")], 1007,
                 "invalid UTF-8 text")
    expect_close(t, [dict(op=T, payload=b"", length=1 << 20)], 1009,
                 "a 1 MiB frame")
    expect_close(t, [dict(op=T, payload=b"a" * 40000, fin=False),
                     dict(op=wsclient.OP_CONT, payload=b"a" * 40000)], 1009,
                 "a message over 64 KiB in fragments")
    expect_close(t, [dict(op=wsclient.OP_CLOSE, payload=b"\x03\xe8")], 1000,
                 "a client close is echoed")
    expect_close(t, [dict(op=wsclient.OP_CLOSE, payload=b"\x00\x05")], 1002,
                 "close code 5 is invalid")
    w = ws("frames")
    w.send_frame(wsclient.OP_PING, b"hello")
    fin, op, masked, payload = w.recv_frame()
    t.eq((op, payload, masked), (wsclient.OP_PONG, b"hello", False),
         "ping answered by an unmasked pong with the same payload")
    w.send_frame(wsclient.OP_TEXT, b"\xe2\x82", fin=False)
    w.send_frame(wsclient.OP_CONT, b"\xac")
    mid = pub("frames", "still")
    t.eq(json.loads(w.recv())["msgId"], mid,
         "a valid fragmented message is accepted; the stream goes on")
    w.close()
    t.eq(node.get("/healthz").status, 200, "healthy after bad frames")


def test_topic_deleted(t):
    """Caught-up subscribers sleep on watches (a WebSocket in its topic's
    hub); deleting the topic must wake them, not leave them until their
    idle deadline (an hour)."""
    pub("gone", "a")
    w1, w2 = ws("gone"), ws("gone")
    s = wsclient.SSE(node.port, path("v1", "topics", "gone", "events"))
    mid = pub("gone", "b")
    t.eq([json.loads(w.recv())["msgId"] for w in (w1, w2)], [mid, mid],
         "two caught-up WebSockets got the message")
    t.eq(json.loads(s.next_event()["data"])["msgId"], mid,
         "the EventSource too")
    t0 = time.monotonic()
    r = node.req("DELETE", path("v1", "topics", "gone"))
    t.eq(r.status, 204, "DELETE the topic: 204")
    for i, w in enumerate((w1, w2)):
        code, reason = w.wait_close()
        t.ok(code == 4004, "WebSocket %d closed with 4004" % (i + 1),
             (code, reason))
        w.sock.close()
    ev = s.next_event()
    t.ok(ev.get("event") == "error" and
         json.loads(ev["data"])["error"]["code"] == "TOPIC_NOT_FOUND",
         "the EventSource ends with an error event TOPIC_NOT_FOUND", ev)
    s.close()
    t.ok(time.monotonic() - t0 < 3.0, "all within 3 s of the delete",
         time.monotonic() - t0)


def vm_hwm_kib():
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_ping_flood(t):
    """Every ping is answered with a pong: a client that sends pings and
    reads (almost) nothing must be stopped being read once its answers
    fill the send budget, not make the daemon queue pongs without end."""
    pub("flood", "a")
    before = vm_hwm_kib()
    w = wsclient.WS(node.port, path("v1", "topics", "flood", "ws"),
                    rcvbuf=4096)
    ping = bytes([0x89, 0x80 | 125, 0, 0, 0, 0]) + b"x" * 125
    chunk = ping * 1000
    w.sock.settimeout(0.5)
    sent, deadline = 0, time.monotonic() + 4.0
    while time.monotonic() < deadline:
        try:
            w.sock.sendall(chunk)
            sent += len(chunk)
        except socket.timeout:
            break  # the daemon stopped reading: what we wanted
        except OSError:
            break
    grew = vm_hwm_kib() - before
    t.diag("sent %d KiB of pings; daemon peak RSS grew %d KiB" %
           (sent >> 10, grew))
    t.ok(grew < 32 * 1024, "the daemon's peak RSS grew by less than 32 MiB "
         "(%d KiB) for %d KiB of pings not read" % (grew, sent >> 10))
    w.sock.close()
    t.eq(node.get("/healthz").status, 200, "healthy after the flood")


def test_restart(t):
    pub("rs", "a")
    w = ws("rs")
    s = wsclient.SSE(node.port, path("v1", "topics", "rs", "events"))
    mid = pub("rs", "b")
    cursor = json.loads(w.recv())["cursor"]
    t.eq(json.loads(s.next_event()["data"])["msgId"], mid,
         "SSE open too")
    rc = node.restart()
    t.eq(rc, 0, "SIGTERM with a WebSocket and an EventSource open exits 0")
    code, _ = w.wait_close()
    t.ok(code in (None, 1001, 1000), "the stream ends with the daemon",
         code)
    s.close()
    ids = [pub("rs", "c%d" % i) for i in range(5)]
    w = ws("rs", **{"from": cursor})
    got = read_n(w, 5)
    t.eq(sorted(m["msgId"] for m in got), sorted(ids),
         "after restart the cursor resumes exactly")
    t.ok(silent(w), "and nothing more")
    w.close()


if __name__ == "__main__":
    fmtest.main([test_handshake, test_latest_and_fanout, test_resume,
                 test_slow_consumer, test_frames, test_topic_deleted,
                 test_ping_flood, test_restart],
                timeout=85, start=[node])
