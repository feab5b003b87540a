"""test_retention - every transport says when retention deleted what a
reader asked for, with exact numbers, against a real daemon whose commit
log segments are small (64 KiB) and whose housekeeping runs every 100 ms.

The daemon keeps segments fileReservedTime (1 hour, the least) after their
last write; the test makes the oldest segment files look 2 hours old
(os.utime), so the next housekeeping passes delete them. Then:
  - pull by offset from an offset below minOffset: a "gap" member
    {topic, queueId, fromOffset, toOffset = minOffset, lost} and the
    messages from minOffset on; none from minOffset itself; a queue all of
    whose messages were deleted answers a long-poll at once with the gap;
  - lookup of the last deleted msgId is 410 GONE, of the first retained 200;
  - WebSocket broadcast from a cursor taken before the deletion: first a
    gap event naming the queue and the lost range, then every retained
    message once, in order; the gap's own cursor resumes at minOffset;
  - EventSource with that cursor as Last-Event-ID: the same.
  - a topic whose events a WebSocket read before the deletion (so the
    WebSocket thread's event cache holds them) gets the gap all the same.

Owns only these checks; the harness is fmtest, the clients wsclient.
"""

import json
import os
import socket
import time

import fmtest
import wsclient
from fmtest import path

SEGMENT = 65536
BODY = 4000  # about 15 records per segment
TOTAL = 90  # about six segments
AGED_KEEP = 2  # newest segment files left alone (the last one is active)

node = fmtest.Daemon("retention", {
    "mappedFileSizeCommitLog": SEGMENT,
    "maxMessageSize": SEGMENT // 4,
    "cleanResourceInterval": 100,
    "fileReservedTime": 1,
})

TOPIC = "ret"  # 1 queue: offsets are publish order
EMPTIED = "ret-gone"  # 1 queue, all its messages in the deleted segments
EMPTIED_N = 3
SEEN = "ret-seen"  # 1 queue, read by a WebSocket before the deletion


def body(i):
    head = ("m%03d-" % i).encode()
    return head + bytes([ord("a") + i % 26]) * (BODY - len(head))


def text_of(m):
    return fmtest.body_bytes(m)


def commitlog_files():
    d = os.path.join(node.data, "commitlog")
    names = [n for n in os.listdir(d) if len(n) == 20 and n.isdigit()]
    return sorted(names)


def queue_min(topic):
    r = node.get(path("v1", "topics", topic))
    if r.status != 200:
        raise RuntimeError("GET topic %s: %r" % (topic, r))
    return r.json["queueOffsets"][0]["minOffset"]


def silent(read, sock, seconds=0.5):
    """True when read() yields nothing within seconds."""
    sock.settimeout(seconds)
    try:
        read()
        return False
    except socket.timeout:
        return True
    finally:
        sock.settimeout(10.0)


state = {}


def test_setup(t):
    for topic in (TOPIC, EMPTIED, SEEN):
        r = node.req("PUT", path("v1", "topics", topic),
                     json.dumps({"queues": 1}).encode(),
                     {"Content-Type": "application/json"})
        t.ok(r.status in (200, 201), "PUT %s with 1 queue" % topic, r)
    # the emptied topic first: its messages land in the oldest segment
    for i in range(EMPTIED_N):
        r = node.publish(EMPTIED, b"gone-%d" % i)
        if r.status != 201:
            raise RuntimeError("publish: %r" % (r,))
    ids = []
    for i in range(TOTAL):
        for topic in (TOPIC, SEEN):
            r = node.publish(topic, body(i))
            if r.status != 201 or r.json["queueOffset"] != i:
                raise RuntimeError("publish %d: %r" % (i, r))
            if topic == TOPIC:
                ids.append(r.json["msgId"])
    state["ids"] = ids
    files = commitlog_files()
    t.ok(len(files) >= AGED_KEEP + 2,
         "2 x %d messages of %d bytes fill several 64 KiB segments" %
         (TOTAL, BODY), files)
    t.eq(queue_min(TOPIC), 0, "nothing deleted yet: minOffset 0")

    # The cursor of the first event, taken before retention. From an
    # EventSource: no WebSocket reads this topic before the deletion, so
    # the WebSocket thread's event cache holds none of it.
    s = wsclient.SSE(node.port, path("v1", "topics", TOPIC, "events",
                                     **{"from": "earliest"}))
    ev = s.next_event()
    s.close()
    t.eq(json.loads(ev["data"]).get("queueOffset"), 0,
         "EventSource from=earliest: offset 0")
    state["cursor"] = ev["id"]
    # SEEN: read whole by a WebSocket before the deletion
    w = wsclient.WS(node.port, path("v1", "topics", SEEN, "ws",
                                    **{"from": "earliest"}))
    seen = [json.loads(w.recv()) for _ in range(TOTAL)]
    w.close()
    t.eq([e["queueOffset"] for e in seen], list(range(TOTAL)),
         "%s: a WebSocket from=earliest read all %d" % (SEEN, TOTAL))
    state["seen_cursor"] = seen[0]["cursor"]

    # age every segment but the newest AGED_KEEP: retention takes them
    aged = files[:-AGED_KEEP]
    kept = files[-AGED_KEEP:]
    old = time.time() - 2 * 3600
    for n in aged:
        os.utime(os.path.join(node.data, "commitlog", n), (old, old))
    deadline = time.monotonic() + 10.0
    m = 0
    while time.monotonic() < deadline:
        m = queue_min(TOPIC)
        if m > 0 and commitlog_files() == kept:
            break
        time.sleep(0.05)
    t.eq(commitlog_files(), kept,
         "housekeeping deleted exactly the aged segments within 10 s")
    t.ok(0 < m < TOTAL, "GET /v1/topics/%s: minOffset %d > 0" % (TOPIC, m))
    time.sleep(0.3)  # three more passes: nothing else moves
    t.eq(queue_min(TOPIC), m, "minOffset is stable")
    state["min"] = m


def test_pull(t):
    m, ids = state["min"], state["ids"]
    r = node.pull(TOPIC, 0, offset=0, max=1024)
    t.eq(r.status, 200, "pull offset=0 -> 200")
    j = r.json
    t.eq(j.get("gap"), {"topic": TOPIC, "queueId": 0, "fromOffset": 0,
                        "toOffset": m, "lost": m},
         "pull offset=0: gap {fromOffset 0, toOffset minOffset, lost}")
    t.eq((j["minOffset"], j["maxOffset"], j["nextOffset"]), (m, TOTAL, TOTAL),
         "pull offset=0: minOffset, maxOffset, nextOffset")
    msgs = j["messages"]
    t.eq([x["queueOffset"] for x in msgs], list(range(m, TOTAL)),
         "pull offset=0: every retained message, from minOffset on")
    t.ok(all(text_of(x) == body(x["queueOffset"]) for x in msgs),
         "pull offset=0: bodies are the published ones")
    t.eq([x["msgId"] for x in msgs], ids[m:], "pull offset=0: msgIds")
    t.eq(sorted(j), ["gap", "maxOffset", "messages", "minOffset",
                     "nextOffset"], "the answer has no other member")

    r = node.pull(TOPIC, 0, offset=m - 1, max=2)
    t.eq(r.json.get("gap"), {"topic": TOPIC, "queueId": 0,
                             "fromOffset": m - 1, "toOffset": m, "lost": 1},
         "pull at minOffset-1: one lost")
    t.eq([x["queueOffset"] for x in r.json["messages"]], [m, m + 1],
         "pull at minOffset-1 with max=2: minOffset and the next")
    r = node.pull(TOPIC, 0, offset=m, max=1)
    t.ok("gap" not in r.json, "pull at minOffset: no gap member", r.json)
    t.eq([x["queueOffset"] for x in r.json["messages"]], [m],
         "pull at minOffset: starts there")
    r = node.pull(TOPIC, 0, offset=TOTAL, max=1)
    t.ok("gap" not in r.json and r.json["messages"] == [],
         "pull at maxOffset: no gap, no messages", r.json)

    # every message of this queue was in the deleted segments
    t.eq(queue_min(EMPTIED), EMPTIED_N,
         "%s: minOffset = maxOffset = %d" % (EMPTIED, EMPTIED_N))
    t0 = time.monotonic()
    r = node.pull(EMPTIED, 0, offset=0, max=32, wait=5)
    took = time.monotonic() - t0
    t.eq(r.json.get("gap"), {"topic": EMPTIED, "queueId": 0,
                             "fromOffset": 0, "toOffset": EMPTIED_N,
                             "lost": EMPTIED_N},
         "pull of a fully deleted queue: gap of all %d" % EMPTIED_N)
    t.eq((r.json["messages"], r.json["nextOffset"]), ([], EMPTIED_N),
         "no messages, nextOffset after the gap")
    t.ok(took < 2.0, "with wait=5 the gap is answered at once (%.2f s)" %
         took)

    # lookups by msgId on both sides of the boundary
    r = node.get(path("v1", "messages", ids[m - 1]))
    t.is_error(r, 410, "msgId of the last deleted message: 410", "GONE")
    r = node.get(path("v1", "messages", ids[m]))
    t.eq((r.status, r.json.get("queueOffset") if r.json else None),
         (200, m), "msgId of the first retained message: 200")


def check_stream(t, label, events):
    """events: the parsed events in order (each with its cursor), read
    from the cursor of offset 0 (the position of offset 1)."""
    m = state["min"]
    gap = events[0].get("gap") if events else None
    t.eq(gap, {"topic": TOPIC, "queueId": 0, "fromOffset": 1,
               "toOffset": m, "lost": m - 1},
         "%s: first event is the gap [1, minOffset) of queue 0" % label)
    t.ok(isinstance(events[0].get("cursor"), str) and
         "queueOffset" not in events[0],
         "%s: the gap carries a cursor and is not a message" % label,
         events[0])
    rest = events[1:]
    offs = [e.get("queueOffset") for e in rest]
    t.eq(offs, list(range(m, TOTAL)),
         "%s: then every retained message once, in order" % label)
    t.ok(all(text_of(e) == body(e["queueOffset"]) for e in rest),
         "%s: bodies are the published ones" % label)
    t.eq([e["msgId"] for e in rest], state["ids"][m:],
         "%s: msgIds are the published ones" % label)


def test_ws(t):
    n = TOTAL - state["min"] + 1
    w = wsclient.WS(node.port, path("v1", "topics", TOPIC, "ws",
                                    **{"from": state["cursor"]}))
    events = [json.loads(w.recv()) for _ in range(n)]
    t.ok(silent(w.recv, w.sock), "WebSocket: nothing after them")
    w.close()
    check_stream(t, "WebSocket", events)
    # a reader that resumes from the gap's cursor starts at minOffset
    w = wsclient.WS(node.port, path("v1", "topics", TOPIC, "ws",
                                    **{"from": events[0]["cursor"]}))
    again = json.loads(w.recv())
    w.close()
    t.eq((again.get("gap"), again.get("queueOffset")),
         (None, state["min"]),
         "WebSocket from the gap's cursor: minOffset, no second gap")


def read_until_quiet(w, limit=1000):
    out = []
    w.sock.settimeout(0.5)
    try:
        while len(out) < limit:
            out.append(json.loads(w.recv()))
    except socket.timeout:
        pass
    w.sock.settimeout(10.0)
    return out


def test_ws_seen(t):
    """SEEN was read by a WebSocket before its segments were deleted, so
    the WebSocket thread's event cache (src/ws/bcast.c) still holds its
    events: a reader from an old cursor must get the gap all the same,
    like pull, EventSource and GET /v1/messages/{msgId} (410)."""
    m = queue_min(SEEN)
    w = wsclient.WS(node.port, path("v1", "topics", SEEN, "ws",
                                    **{"from": state["seen_cursor"]}))
    events = read_until_quiet(w)
    w.close()
    offs = [e.get("queueOffset") for e in events if "gap" not in e]
    t.ok(0 < m < TOTAL, "%s: minOffset %d > 0" % (SEEN, m))
    t.eq([o for o in offs if o >= m], list(range(m, TOTAL)),
         "%s: WebSocket from an old cursor: every retained message once, "
         "in order" % SEEN)
    seen = [e.get("gap") or e.get("queueOffset") for e in events]
    t.ok(bool(events) and events[0].get("gap") == {
        "topic": SEEN, "queueId": 0, "fromOffset": 1, "toOffset": m,
        "lost": m - 1},
        "%s: a WebSocket that read it before starts with the gap" % SEEN,
        seen)
    t.ok(all(o >= m for o in offs),
         "%s: and sends no message below minOffset" % SEEN)


def test_sse(t):
    n = TOTAL - state["min"] + 1
    s = wsclient.SSE(node.port, path("v1", "topics", TOPIC, "events"),
                     last_event_id=state["cursor"])
    t.eq(s.status, 200, "EventSource with Last-Event-ID: 200")
    events = []
    for _ in range(n):
        ev = s.next_event()
        e = json.loads(ev["data"])
        if ev["id"] != e.get("cursor"):
            e["_id_mismatch"] = ev["id"]
        events.append(e)
    t.ok(silent(s.next_event, s.sock), "EventSource: nothing after them")
    s.close()
    t.ok(not any("_id_mismatch" in e for e in events),
         "EventSource: every id is its event's cursor")
    check_stream(t, "EventSource", events)


if __name__ == "__main__":
    fmtest.main([test_setup, test_pull, test_ws, test_ws_seen, test_sse],
                timeout=85, start=[node])
