"""test_ws_groups - competing consumers over WebSocket,
/v1/topics/{topic}/groups/{group}/ws?ack=auto|client: two connections of
one group share the messages (none to both), acks and nacks as frames
(errors answered as frames), a nack comes back with reconsumeTimes + 1,
ack=auto acknowledges what was written, every group sees every message,
a FIFO group's stream holds the next message of a queue back until the
one before it is acked (and a nacked one comes back before it), a
caught-up stream is closed 4004 at once when its topic is deleted, and
bad options are HTTP errors before the upgrade.

Owns only these checks; the harness is fmtest, the client wsclient.
"""

import json
import socket
import threading
import time

import fmtest
import wsclient
from fmtest import path

node = fmtest.Daemon("wsgroups", {"defaultTopicQueueNums": 2})


def gws(topic, group, **query):
    return wsclient.WS(node.port, path("v1", "topics", topic, "groups",
                                       group, "ws", **query))


def pub(topic, body, **query):
    r = node.publish(topic, body, **query)
    if r.status != 201:
        raise RuntimeError("publish: %r" % (r,))
    return r.json["msgId"]


def drain(w, seconds):
    """Every message that arrives within seconds (frames as dicts)."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        w.sock.settimeout(left)
        try:
            out.append(json.loads(w.recv()))
        except socket.timeout:
            return out
        finally:
            w.sock.settimeout(10.0)


def test_options(t):
    pub("opt", "x")
    for target, status, desc in [
            (path("v1", "topics", "nope", "groups", "g", "ws"), 404,
             "unknown topic"),
            (path("v1", "topics", "opt", "groups", "g", "ws", ack="maybe"),
             400, "ack=maybe"),
            (path("v1", "topics", "opt", "groups", "g", "ws", invisible="0"),
             400, "invisible=0"),
            (path("v1", "topics", "opt", "groups", "g" * 123, "ws"), 400,
             "a group name of 123 characters")]:
        try:
            wsclient.WS(node.port, target).close()
            t.ok(False, "%s: refused" % desc)
        except wsclient.HandshakeError as e:
            t.eq(e.status, status, "%s: HTTP %d" % (desc, status))


def test_client_acks(t):
    ids = [pub("cg", "m%d" % i, keys="k%d" % i) for i in range(20)]
    a = gws("cg", "g1", ack="client")
    b = gws("cg", "g1", ack="client")
    got = {}

    def read(name, w):
        got[name] = drain(w, 2.0)

    ths = [threading.Thread(target=read, args=(n, w))
           for n, w in (("a", a), ("b", b))]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    ga = [m["msgId"] for m in got["a"]]
    gb = [m["msgId"] for m in got["b"]]
    t.eq(sorted(ga + gb), sorted(ids),
         "two connections of one group got every message once together")
    t.ok(not set(ga) & set(gb), "no message went to both")
    t.ok(all(m.get("receiptHandle") for m in got["a"] + got["b"]),
         "ack=client frames carry receiptHandle")
    for w, msgs in ((a, got["a"]), (b, got["b"])):
        if msgs:
            w.send_text(json.dumps(
                {"ack": [m["receiptHandle"] for m in msgs]}))
    t.eq(drain(a, 0.5) + drain(b, 0.5), [], "acks answered by nothing")
    a.send_text(json.dumps({"ack": "bogus"}))
    err = json.loads(a.recv())
    t.ok(err.get("receiptHandle") == "bogus" and "error" in err,
         "a bad handle is answered with an error frame", err)
    a.send_text('{"x": 1}')
    err = json.loads(a.recv())
    t.ok("error" in err and "receiptHandle" not in err,
         "a frame that is not an ack is answered with an error", err)
    b.close()
    mid = pub("cg", "nackme")
    m = json.loads(a.recv())
    t.eq(m["msgId"], mid, "a live message arrives")
    a.send_text(json.dumps({"nack": m["receiptHandle"], "delay": 0}))
    again = json.loads(a.recv())
    t.eq((again["msgId"], again["reconsumeTimes"]), (mid, 1),
         "a nack with delay 0 brings it back with reconsumeTimes 1")
    a.send_text(json.dumps({"ack": again["receiptHandle"]}))
    t.eq(drain(a, 0.5), [], "acked for good")
    a.close()


def test_auto_ack(t):
    ids = [pub("ag", "m%d" % i) for i in range(10)]
    w = gws("ag", "auto", ack="auto", invisible="1")
    got = drain(w, 1.5)
    t.eq(sorted(m["msgId"] for m in got), sorted(ids),
         "ack=auto: every message")
    t.ok(all("receiptHandle" not in m for m in got),
         "ack=auto frames carry no receiptHandle")
    w.close()
    w = gws("ag", "auto", ack="auto", invisible="1")
    t.eq(drain(w, 2.0), [],
         "ack=auto acknowledged them: nothing comes back after invisible")
    w.close()
    other = gws("ag", "other")
    t.eq(sorted(m["msgId"] for m in drain(other, 1.5)), sorted(ids),
         "another group sees every message too")
    other.close()
    t.eq(node.get("/healthz").status, 200, "healthy")


def test_fifo_group(t):
    """The group is FIFO by its setting (PUT /v1/groups/{group}), not by
    anything in the stream's URL; one sharding key, so one queue."""
    r = node.req("PUT", path("v1", "groups", "fifo-ws"),
                 json.dumps({"fifo": True}).encode())
    t.eq(r.status, 200, "PUT /v1/groups/fifo-ws {fifo: true}")
    for i in range(4):
        pub("fq", "f%d" % i, shardingKey="order-1")
    w = gws("fq", "fifo-ws", ack="client")
    got = drain(w, 1.0)
    t.eq([m["body"] for m in got], ["f0"],
         "only the oldest message of the key is handed out")
    w.send_text(json.dumps({"nack": got[0]["receiptHandle"], "delay": 0}))
    again = drain(w, 2.0)
    t.eq([(m["body"], m["reconsumeTimes"]) for m in again], [("f0", 1)],
         "a nacked one comes back first, with reconsumeTimes 1")
    bodies = []
    m = again[0] if again else None
    while m is not None and len(bodies) < 4:
        bodies.append(m["body"])
        w.send_text(json.dumps({"ack": m["receiptHandle"]}))
        nxt = drain(w, 1.0)
        t.ok(len(nxt) <= 1, "one message at a time", nxt)
        m = nxt[0] if nxt else None
    t.eq(bodies, ["f0", "f1", "f2", "f3"],
         "each next one only once the one before it was acked, in order")
    w.close()


def test_topic_deleted(t):
    """A caught-up group stream sleeps on its group's watch, not on the
    topic: deleting the topic must wake it too."""
    mid = pub("gdel", "a")
    w = gws("gdel", "g", ack="auto")
    t.eq(json.loads(w.recv())["msgId"], mid, "the stream got the message")
    time.sleep(0.3)
    t0 = time.monotonic()
    r = node.req("DELETE", path("v1", "topics", "gdel"))
    t.eq(r.status, 204, "DELETE the topic: 204")
    w.sock.settimeout(5.0)
    code, reason = w.wait_close()
    t.ok(code == 4004, "the group stream is closed with 4004",
         (code, reason))
    t.ok(time.monotonic() - t0 < 3.0, "within 3 s of the delete",
         time.monotonic() - t0)
    w.sock.close()


if __name__ == "__main__":
    fmtest.main([test_options, test_client_acks, test_auto_ack,
                 test_fifo_group, test_topic_deleted],
                timeout=85, start=[node])
