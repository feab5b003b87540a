"""test_query_delay - GET /v1/messages/{msgId} of a delayed message shows
it as its publisher sent it, not its internal timer record:
  - pending: the topic, queueId and queueOffset of the publish answer,
    exactly the properties it was published with (none of the timer's
    __REAL_TOPIC / __REAL_QID), tag, keys and body, and deliverAt (the
    epoch ms asked for); nothing names the timer topic;
  - without properties: properties {};
  - once delivered: the same lookup still shows it so, and the delivered
    copy (its own msgId) carries ORIGIN_MESSAGE_ID and TIMER_DELIVER_MS
    and no deliverAt;
  - a message published without delay has no deliverAt.

Owns only these checks; the harness is fmtest.
"""

import json
import time

import fmtest
from fmtest import path

node = fmtest.Daemon("qdelay")

TOPIC = "qd"


def now_ms():
    return int(time.time() * 1000)


def lookup(msg_id):
    return node.get(path("v1", "messages", msg_id))


def test_setup(t):
    r = node.req("PUT", path("v1", "topics", TOPIC),
                 json.dumps({"queues": 4}).encode(),
                 {"Content-Type": "application/json"})
    t.ok(r.status in (200, 201), "PUT %s with 4 queues" % TOPIC, r)


def test_pending(t):
    at = now_ms() + 60000
    pubs = []
    for i in range(4):  # round robin: more than one queue id
        r = node.publish(TOPIC, b"later-%d" % i, {"X-Prop-region": "eu",
                                                 "X-Prop-n": str(i)},
                         tag="created", keys="k%d,order-%d" % (i, i),
                         deliverAt=at)
        if not t.eq(r.status, 201, "publish %d with deliverAt -> 201" % i):
            return
        pubs.append(r.json)
    t.ok(len(set(p["queueId"] for p in pubs)) > 1,
         "the delayed messages are spread over queues",
         [p["queueId"] for p in pubs])
    for i, p in enumerate(pubs):
        r = lookup(p["msgId"])
        if not t.eq(r.status, 200, "pending %d: lookup -> 200" % i):
            continue
        m = r.json
        t.eq(fmtest.message_problems(m), [],
             "pending %d: the contract's message shape" % i)
        t.eq((m["msgId"], m["topic"], m["queueId"], m["queueOffset"]),
             (p["msgId"], TOPIC, p["queueId"], p["queueOffset"]),
             "pending %d: msgId, topic, queueId, queueOffset of the "
             "publish answer" % i)
        t.eq(m["properties"], {"region": "eu", "n": str(i)},
             "pending %d: exactly its own properties" % i)
        t.eq((m["tag"], m["keys"], fmtest.body_bytes(m)),
             ("created", ["k%d" % i, "order-%d" % i], b"later-%d" % i),
             "pending %d: tag, keys and body" % i)
        t.eq(m.get("deliverAt"), at, "pending %d: deliverAt" % i)
        t.ok(b"rmq_sys_wheel_timer" not in r.body and b"__REAL" not in
             r.body, "pending %d: nothing internal shows" % i, r.body)
    # still pending: not in its queue yet
    for p in pubs:
        r = node.pull(TOPIC, p["queueId"], offset=0)
        t.eq(r.json["messages"], [],
             "queue %d holds nothing before the time" % p["queueId"])
    r = node.publish(TOPIC, b"bare", delay=60)
    m = lookup(r.json["msgId"]).json
    t.eq((m["topic"], m["properties"], m["tag"], m["keys"]),
         (TOPIC, {}, None, []),
         "no properties, tag or keys: none are shown")
    t.ok(isinstance(m.get("deliverAt"), int) and
         abs(m["deliverAt"] - (now_ms() + 60000)) < 5000,
         "delay=60: deliverAt about a minute ahead", m.get("deliverAt"))


def test_delivered(t):
    at = now_ms() + 300
    r = node.publish(TOPIC, b"soon", {"X-Prop-color": "red"},
                     shardingKey="s", deliverAt=at)
    if not t.eq(r.status, 201, "publish deliverAt in 300 ms -> 201"):
        return
    pub = r.json
    copy = None
    deadline = time.monotonic() + 10.0
    while copy is None and time.monotonic() < deadline:
        msgs = node.pull(TOPIC, pub["queueId"], offset=0).json["messages"]
        for m in msgs:
            if m["properties"].get("ORIGIN_MESSAGE_ID") == pub["msgId"]:
                copy = m
        time.sleep(0.05)
    if not t.ok(copy is not None, "delivered to its queue within 10 s"):
        return
    m = lookup(pub["msgId"]).json
    t.eq((m["topic"], m["queueId"], m["queueOffset"], m["properties"],
          m.get("deliverAt")),
         (TOPIC, pub["queueId"], pub["queueOffset"], {"color": "red"}, at),
         "after delivery the publish's msgId still shows it as published")
    c = lookup(copy["msgId"]).json
    t.eq((c["topic"], c["queueId"], c["queueOffset"]),
         (TOPIC, copy["queueId"], copy["queueOffset"]),
         "the delivered copy's msgId: where it was delivered")
    t.eq(c["properties"], {"color": "red", "ORIGIN_MESSAGE_ID": pub["msgId"],
                           "TIMER_DELIVER_MS": str(at)},
         "the copy carries ORIGIN_MESSAGE_ID and TIMER_DELIVER_MS")
    t.ok("deliverAt" not in c, "the copy has no deliverAt", c)


def test_plain(t):
    r = node.publish(TOPIC, b"now", {"X-Prop-a": "b"})
    m = lookup(r.json["msgId"]).json
    t.eq((m["topic"], m["properties"]), (TOPIC, {"a": "b"}),
         "a plain message: as published")
    t.ok("deliverAt" not in m, "a plain message has no deliverAt", m)


if __name__ == "__main__":
    fmtest.main([test_setup, test_pending, test_delivered, test_plain],
                timeout=60, start=[node])
