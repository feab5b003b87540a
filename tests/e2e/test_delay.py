"""test_delay - delayed and scheduled messages (delay=S, deliverAt=MS).

Against the real daemon:
  - delay=1 and deliverAt: the message is not pullable (nor receivable by
    a group) before its time, and is within 1.5 s after it (1 s promised,
    slack for a loaded machine); it carries ORIGIN_MESSAGE_ID (the msgId
    the publish answered) and TIMER_DELIVER_MS, lands in the queue the
    publish named, and a long-polling group receive wakes for it;
  - many different deliverAt times come out in deliverAt order;
  - an NDJSON batch with a per-line delay: each line on its own time;
  - limits: beyond timerMaxDelaySec -> 400; the timer topic is hidden;
  - kill -9 with pending delays, restart: each is delivered exactly once,
    not before its time and within 1.5 s of it (or of the restart, for
    those that fell due while the node was down); a clean restart after
    that delivers nothing again;
  - retention (a second node with 64 KiB segments, whose files are aged
    past fileReservedTime instead of waiting hours): a pending delayed
    message keeps its segment and every later one; once it is delivered
    retention takes them.

Owns only these checks; the harness is fmtest.
"""

import json
import os
import time

import fmtest
from fmtest import body_bytes, path

MAX_DELAY = 30
SLACK_MS = 1500
node = fmtest.Daemon("delay", {"timerMaxDelaySec": MAX_DELAY,
                               "defaultTopicQueueNums": 1})
aged = fmtest.Daemon("delay-aged", {"timerMaxDelaySec": MAX_DELAY,
                                    "defaultTopicQueueNums": 1,
                                    "mappedFileSizeCommitLog": 65536,
                                    "maxMessageSize": 16384,
                                    "cleanResourceInterval": 100,
                                    "fileReservedTime": 1})


def now_ms():
    return int(time.time() * 1000)


def watch(topic, n, deadline_ms, offset=0):
    """Pull every 20 ms until n messages are in queue 0 or the wall clock
    passes deadline_ms. Returns (messages, polls): polls are (start_ms,
    end_ms, count) of each pull."""
    polls = []
    msgs = []
    while True:
        start = now_ms()
        r = node.pull(topic, 0, offset=offset, max=1024)
        end = now_ms()
        msgs = r.json["messages"] if r.status == 200 else []
        polls.append((start, end, len(msgs)))
        if len(msgs) >= n or end > deadline_ms:
            return msgs, polls
        time.sleep(0.02)


def early(polls, due_ms):
    """Pulls that finished before due_ms but already saw the message."""
    return [p for p in polls if p[1] < due_ms and p[2] > 0]


def first_seen(polls):
    for p in polls:
        if p[2] > 0:
            return p[0]
    return None


def props(m):
    return m.get("properties") or {}


def check_one(t, topic, pub, label):
    """Watch topic until pub's message shows up; check time and shape."""
    msgs, polls = watch(topic, 1, now_ms() + 8000)
    if not t.eq(len(msgs), 1, "%s: the message arrives" % label):
        return
    m = msgs[0]
    due = int(props(m).get("TIMER_DELIVER_MS", "0"))
    t.ok(due > 0, "%s: it carries TIMER_DELIVER_MS" % label, m)
    t.eq(props(m).get("ORIGIN_MESSAGE_ID"), pub["msgId"],
         "%s: ORIGIN_MESSAGE_ID is the msgId of the publish" % label)
    t.eq(m["queueId"], pub["queueId"],
         "%s: it lands in the queue the publish named" % label)
    t.ok(not any(k.startswith("__") for k in props(m)),
         "%s: no internal properties" % label, m)
    t.eq(early(polls, due), [], "%s: not pullable before its time" % label)
    # the append that makes it readable stamps storeTimestamp (same
    # machine, same clock): a busy test process polling late cannot make
    # this check fail
    t.ok(due <= m["storeTimestamp"] <= due + SLACK_MS,
         "%s: pullable within 1.5 s of its time" % label,
         "due %d, stored %d, first seen by the pull started at %s" %
         (due, m["storeTimestamp"], first_seen(polls)))


def test_delay_param(t):
    r = node.publish("d1", b"one second", delay=1, tag="x", keys="k1")
    if not t.eq(r.status, 201, "publish with delay=1 -> 201"):
        return
    g = node.req("POST", path("v1", "topics", "d1", "groups", "g",
                              "receive", max=8, wait=0))
    t.ok(g.status == 200 and g.json["messages"] == [],
         "a group receives nothing before its time", g)
    check_one(t, "d1", r.json, "delay=1")
    msgs = node.pull("d1", 0).json["messages"]
    if msgs:
        t.eq((msgs[0].get("tag"), msgs[0].get("keys"), body_bytes(msgs[0])),
             ("x", ["k1"], b"one second"), "tag, keys and body are kept")
    g = node.req("POST", path("v1", "topics", "d1", "groups", "g",
                              "receive", max=8, wait=2))
    t.ok(g.status == 200 and len(g.json["messages"]) == 1,
         "then the group receives it", g)


def test_deliver_at(t):
    at = now_ms() + 1200
    r = node.publish("d2", b"scheduled", deliverAt=at)
    if not t.eq(r.status, 201, "publish with deliverAt -> 201"):
        return
    check_one(t, "d2", r.json, "deliverAt")


def test_group_long_poll(t):
    """A receive parked before the time is woken by the delivery."""
    node.req("POST", path("v1", "topics", "d3", "groups", "g", "receive",
                          max=1, wait=0))
    r = node.publish("d3", b"wake me", delay=0.8)
    t.eq(r.status, 201, "publish with delay=0.8 -> 201")
    g = node.req("POST", path("v1", "topics", "d3", "groups", "g", "receive",
                              max=1, wait=5), timeout=10)
    done = now_ms()
    if not t.ok(g.status == 200 and len(g.json["messages"]) == 1,
                "a parked group receive gets the delayed message", g):
        return
    due = int(props(g.json["messages"][0]).get("TIMER_DELIVER_MS", "0"))
    t.ok(due <= done <= due + SLACK_MS,
         "and answers when it falls due (%d ms after)" % (done - due))


def test_order(t):
    base = now_ms() + 700
    order = [7, 2, 11, 0, 5, 13, 9, 1, 14, 3, 8, 12, 6, 4, 10]
    for k in order:
        r = node.publish("d4", b"m%02d" % k, deliverAt=base + k * 100)
        if r.status != 201:
            t.ok(False, "publish m%02d -> 201" % k, r)
            return
    msgs, _ = watch("d4", len(order), base + 1500 + 100 * len(order) +
                    SLACK_MS)
    t.eq([body_bytes(m) for m in msgs],
         [b"m%02d" % k for k in range(len(order))],
         "15 deliverAt times come out in deliverAt order")
    late = [(m["storeTimestamp"], props(m).get("TIMER_DELIVER_MS"))
            for m in msgs if m["storeTimestamp"] >
            int(props(m).get("TIMER_DELIVER_MS", 0)) + SLACK_MS]
    t.eq(late, [], "each within 1.5 s of its time")


def test_ndjson(t):
    lines = [{"body": "later", "delay": 1},
             {"body": "now"},
             {"body": "soon", "delay": 0.5}]
    body = "\n".join(json.dumps(x) for x in lines).encode()
    r = node.req("POST", path("v1", "topics", "d5", "messages"), body,
                 {"Content-Type": "application/x-ndjson"})
    if not t.eq(r.status, 201, "NDJSON batch with per-line delay -> 201"):
        return
    res = r.json["results"]
    t.eq(len(res), 3, "three results")
    msgs, polls = watch("d5", 3, now_ms() + 6000)
    t.eq([body_bytes(m) for m in msgs], [b"now", b"soon", b"later"],
         "the undelayed line first, then each on its time")
    if len(msgs) == 3:
        t.eq(props(msgs[2]).get("ORIGIN_MESSAGE_ID"), res[0]["msgId"],
             "line 1's msgId is its ORIGIN_MESSAGE_ID")
        t.eq(msgs[0]["msgId"], res[1]["msgId"],
             "line 2 was stored at once under its msgId")
        due = [int(props(m)["TIMER_DELIVER_MS"]) for m in msgs[1:]]
        t.ok(all(m["storeTimestamp"] >= d for m, d in zip(msgs[1:], due)),
             "no line before its time", msgs)


def test_limits(t):
    r = node.publish("d6", b"x", delay=MAX_DELAY + 1)
    t.is_error(r, 400, "delay beyond timerMaxDelaySec -> 400")
    r = node.publish("d6", b"x", deliverAt=now_ms() + (MAX_DELAY + 5) * 1000)
    t.is_error(r, 400, "deliverAt beyond timerMaxDelaySec -> 400")
    r = node.publish("rmq_sys_wheel_timer", b"x")
    t.is_error(r, 400, "publishing to the timer topic -> 400")
    names = [x["topic"] for x in node.get("/v1/topics").json["topics"]]
    t.ok("rmq_sys_wheel_timer" not in names,
         "the timer topic is not listed", names)
    r = node.get(path("v1", "topics", "rmq_sys_wheel_timer"))
    t.is_error(r, 404, "nor readable as a topic")
    r = node.req("PUT", path("v1", "topics", "rmq_sys_wheel_timer"),
                 b'{"queues": 1}')
    t.is_error(r, 400, "nor creatable as a topic")


def test_kill9(t):
    delivered = node.publish("d7", b"before", delay=0.2)
    t.eq(delivered.status, 201, "publish delay=0.2 -> 201")
    watch("d7", 1, now_ms() + 5000)
    base = now_ms()
    pubs = {}
    for k, ms in enumerate([600, 2500, 3500]):
        r = node.publish("d7", b"pending-%d" % k, deliverAt=base + ms)
        if r.status == 201:
            pubs[r.json["msgId"]] = base + ms
    t.eq(len(pubs), 3, "three pending delays published")
    node.kill9()
    time.sleep(0.8)  # the first falls due while the node is down
    node.start()
    ready = now_ms()
    msgs, _ = watch("d7", 4, base + 3500 + SLACK_MS + 3000)
    origins = [props(m).get("ORIGIN_MESSAGE_ID") for m in msgs]
    t.eq(sorted(origins[1:]), sorted(pubs),
         "after kill -9 every pending delay is delivered exactly once")
    t.eq(origins[:1], [delivered.json["msgId"]],
         "and the one delivered before is not delivered again")
    bad = []
    for m in msgs[1:]:
        due = pubs.get(props(m).get("ORIGIN_MESSAGE_ID"), 0)
        if not due <= m["storeTimestamp"] <= max(due, ready) + SLACK_MS:
            bad.append((due, ready, m["storeTimestamp"]))
    t.eq(bad, [], "each at its time (or at once when overdue), +1.5 s")
    rc = node.stop()
    t.eq(rc, 0, "clean stop")
    node.start()
    time.sleep(0.5)
    t.eq(node.pull("d7", 0, max=64).json["maxOffset"], 4,
         "a clean restart delivers nothing again")


def segments(d):
    cl = os.path.join(d.data, "commitlog")
    return sorted(n for n in os.listdir(cl) if len(n) == 20 and n.isdigit())


def age_segments(d):
    """Every segment file but the newest (being written) two hours old:
    past fileReservedTime (1 h) for the next housekeeping pass."""
    old = time.time() - 2 * 3600
    for n in segments(d)[:-1]:
        os.utime(os.path.join(d.data, "commitlog", n), (old, old))


def test_retention(t):
    aged.start()
    r = aged.publish("d8", b"late", delay=6)
    t.eq(r.status, 201, "publish delay=6 -> 201")
    for i in range(60):
        f = aged.publish("d8-fill", b"%04d" % i + b"f" * 4000)
        if f.status != 201:
            raise RuntimeError("publish: %r" % (f,))
    files = segments(aged)
    t.ok(len(files) >= 4, "60 messages of 4 KB fill several segments", files)
    age_segments(aged)
    time.sleep(1.0)  # ten housekeeping passes
    t.eq(segments(aged), files, "the pending delayed message keeps its "
         "segment and every later one, old as they are")
    t.eq(aged.get("/v1/broker").json["commitLog"]["minOffset"], 0,
         "minOffset stays 0")
    deadline = now_ms() + 6000 + 8000
    while (aged.pull("d8", 0).json["maxOffset"] < 1 and
           now_ms() < deadline):
        time.sleep(0.05)
    t.eq(aged.pull("d8", 0).json["maxOffset"], 1, "it is delivered")
    deadline = now_ms() + 5000
    while len(segments(aged)) >= len(files) and now_ms() < deadline:
        time.sleep(0.05)
    t.ok(len(segments(aged)) < len(files),
         "once delivered, retention takes the old segments", segments(aged))
    t.ok(aged.get("/v1/broker").json["commitLog"]["minOffset"] > 0,
         "and minOffset moves")


if __name__ == "__main__":
    fmtest.main([test_delay_param, test_deliver_at, test_group_long_poll,
                 test_order, test_ndjson, test_limits, test_kill9,
                 test_retention],
                timeout=60, start=[node])
