"""test_sse - the EventSource stream GET /v1/topics/{topic}/events: the
text/event-stream form, one event per message with the cursor as its id,
starting at the latest message by default, resuming from Last-Event-ID
(which wins over ?from=) or ?from= with nothing lost or repeated, errors
before the stream as JSON, and a clean stop with streams open.

Owns only these checks; the harness is fmtest, the reader wsclient.SSE.
"""

import json
import socket

import fmtest
import wsclient
from fmtest import path

node = fmtest.Daemon("sse", {"defaultTopicQueueNums": 4})


def sse(topic, last_event_id=None, **query):
    return wsclient.SSE(node.port, path("v1", "topics", topic, "events",
                                        **query), last_event_id)


def pub(topic, body, **query):
    r = node.publish(topic, body, **query)
    if r.status != 201:
        raise RuntimeError("publish: %r" % (r,))
    return r.json["msgId"]


def read_n(s, n):
    out = []
    for _ in range(n):
        ev = s.next_event()
        m = json.loads(ev["data"])
        m["_id"] = ev["id"]
        out.append(m)
    return out


def silent(s, seconds=0.5):
    s.sock.settimeout(seconds)
    try:
        s.next_event()
        return False
    except socket.timeout:
        return True
    finally:
        s.sock.settimeout(10.0)


def test_form(t):
    s = sse("nope")
    t.eq(s.status, 404, "unknown topic: 404 before any stream")
    t.ok(b"TOPIC_NOT_FOUND" in s.body(), "in the error form")
    s.close()
    pub("form", "old")
    s = sse("form")
    t.eq(s.status, 200, "200")
    t.eq(s.headers.get("content-type"), "text/event-stream",
         "Content-Type text/event-stream")
    t.ok("no-store" in s.headers.get("cache-control", ""), "not cached")
    ids = [pub("form", "m%d" % i) for i in range(3)]
    got = read_n(s, 3)
    t.eq(sorted(m["msgId"] for m in got), sorted(ids),
         "starts at the latest message: only the new ones arrive")
    t.ok(all(m["_id"] == m["cursor"] for m in got),
         "each event's id is its cursor")
    problems = [fmtest.message_problems(
        {k: v for k, v in m.items() if k not in ("_id", "cursor")})
        for m in got]
    t.ok(not any(problems), "data is the contract's message", problems)
    t.ok(silent(s), "nothing more")
    s.close()
    s = sse("form", **{"from": "bad!"})
    t.eq(s.status, 400, "a malformed ?from= is 400")
    s.close()


def test_resume(t):
    first = [pub("res", "a%d" % i, keys="k%d" % i) for i in range(30)]
    s = sse("res", **{"from": "earliest"})
    head = read_n(s, 10)
    s.close()
    later = [pub("res", "b%d" % i) for i in range(20)]
    # the browser reconnects to the same URL, adding Last-Event-ID
    s = sse("res", last_event_id=head[-1]["_id"], **{"from": "earliest"})
    rest = read_n(s, 40)
    t.ok(silent(s), "Last-Event-ID: nothing after the rest")
    s.close()
    seen = [m["msgId"] for m in head + rest]
    t.eq(len(seen), len(set(seen)), "Last-Event-ID: nothing twice")
    t.eq(sorted(seen), sorted(first + later), "Last-Event-ID: nothing lost")
    s = sse("res", **{"from": rest[9]["cursor"]})
    again = read_n(s, 30)
    t.eq([m["msgId"] for m in again], [m["msgId"] for m in rest[10:]],
         "?from=cursor gives exactly what followed")
    s.close()


def test_live_and_churn(t):
    pub("live", "x")
    streams = [sse("live") for _ in range(5)]
    for s in streams[:3]:
        s.close()
    mid = pub("live", "y")
    for s in streams[3:]:
        t.eq(json.loads(s.next_event()["data"])["msgId"], mid,
             "a live stream gets the new message")
    t.eq(node.get("/healthz").status, 200,
         "healthy after clients went away")
    # streams[3:] stay open: the final SIGTERM must end them


if __name__ == "__main__":
    fmtest.main([test_form, test_resume, test_live_and_churn],
                timeout=85, start=[node])
