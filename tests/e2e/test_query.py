"""test_query - looking messages up: by msgId, by key (newest first, only
the asked topic) and by store time range (both bounds inclusive, bounded
by max), before and after a restart.

Owns only these checks; the harness is fmtest.
"""

import time

import fmtest
from fmtest import body_bytes, path

node = fmtest.Daemon("query", {"defaultTopicQueueNums": 3})


def as_messages(j):
    """The message list of a query answer ({"messages": [...]})."""
    if isinstance(j, dict) and isinstance(j.get("messages"), list):
        return j["messages"]
    return None


def pub(topic, body, **query):
    r = node.publish(topic, body, **query)
    if r.status != 201:
        raise RuntimeError("publish %s: %r" % (topic, r))
    return r.json


def by_key(topic, key, max=None):
    r = node.get(path("v1", "topics", topic, "messages", key=key, max=max))
    return r, as_messages(r.json)


def by_time(topic, begin, end, max=None):
    r = node.get(path("v1", "topics", topic, "messages", begin=begin, end=end,
                      max=max))
    return r, as_messages(r.json)


def same_message(t, got, want, desc):
    fields = ("msgId", "topic", "queueId", "queueOffset", "tag", "keys",
              "properties", "body", "bodyEncoding", "bornTimestamp",
              "storeTimestamp")
    t.eq({k: got.get(k) for k in fields} if isinstance(got, dict) else got,
         {k: want.get(k) for k in fields}, desc)


state = {}


def test_by_msgid(t):
    acks = [pub("qid", b"m%d" % i, tag="t%d" % i, keys="id-%d" % i)
            for i in range(5)]
    acks.append(pub("qid", bytes(range(256)), tag="bin"))
    pulled = {}
    for a in acks:
        r = node.pull("qid", a["queueId"], offset=a["queueOffset"], max=1)
        pulled[a["msgId"]] = r.json["messages"][0]
    state["qid"] = pulled
    for a in acks:
        r = node.get(path("v1", "messages", a["msgId"]))
        t.eq(r.status, 200, "GET /v1/messages/{msgId} -> 200")
        same_message(t, r.json, pulled[a["msgId"]],
                     "by msgId: the message as pulled (%s)" %
                     pulled[a["msgId"]].get("tag"))
    t.eq(len({a["msgId"] for a in acks}), len(acks), "msgIds are unique")
    r = node.get(path("v1", "messages", "0" * 32))
    t.is_error(r, 404, "unknown msgId -> 404 MESSAGE_NOT_FOUND",
               "MESSAGE_NOT_FOUND")


def test_by_key(t):
    sent = []
    for i in range(5):
        a = pub("qa", b"qa-%d" % i, keys="shared,own-%d" % i)
        sent.append(a["msgId"])
        pub("qb", b"qb-%d" % i, keys="shared")
        time.sleep(0.002)
    state["qa"] = sent
    r, msgs = by_key("qa", "shared")
    t.eq(r.status, 200, "query by key -> 200")
    if not t.ok(msgs is not None, "answer is {messages: [...]}", repr(r)):
        return
    t.eq([m["msgId"] for m in msgs], sent[::-1],
         "by key: every match, newest first")
    t.eq({m["topic"] for m in msgs}, {"qa"}, "by key: only the asked topic")
    t.eq([body_bytes(m) for m in msgs], [b"qa-%d" % i for i in (4, 3, 2, 1,
                                                                  0)],
         "by key: bodies")
    r, msgs = by_key("qa", "shared", max=2)
    t.eq([m["msgId"] for m in msgs or []], sent[::-1][:2],
         "by key with max=2: the newest two")
    r, msgs = by_key("qa", "own-3")
    t.eq([m["msgId"] for m in msgs or []], [sent[3]],
         "second key of a message finds it")
    r, msgs = by_key("qa", "nobody")
    t.eq((r.status, msgs), (200, []), "unknown key -> 200 with no messages")
    r, msgs = by_key("qb", "own-1")
    t.eq(msgs, [], "a key of another topic is not found")


def test_by_time(t):
    acks = []
    for i in range(6):
        acks.append(pub("qt", b"qt-%d" % i, shardingKey="one"))
        time.sleep(0.03)
    q = acks[0]["queueId"]
    msgs, _ = node.pull_all("qt", q)
    ts = [m["storeTimestamp"] for m in msgs]
    ids = [m["msgId"] for m in msgs]
    if not t.ok(len(ts) == 6 and all(a < b for a, b in zip(ts, ts[1:])),
                "store timestamps strictly increase 30 ms apart", repr(ts)):
        return
    state["qt"] = (ts, ids)
    r, got = by_time("qt", ts[1], ts[4])
    t.eq(r.status, 200, "query by time -> 200")
    t.eq([m["msgId"] for m in got or []], ids[4:0:-1],
         "[ts1, ts4]: messages 4..1, newest first (both bounds inclusive)")
    r, got = by_time("qt", ts[2], ts[2])
    t.eq([m["msgId"] for m in got or []], [ids[2]],
         "begin = end = a message's time finds exactly it")
    r, got = by_time("qt", ts[1] + 1, ts[4] - 1)
    t.eq([m["msgId"] for m in got or []], ids[3:1:-1],
         "(ts1, ts4) exclusive by 1 ms: messages 3..2")
    r, got = by_time("qt", ts[0], ts[5], max=3)
    t.eq([m["msgId"] for m in got or []], ids[5:2:-1],
         "max=3 over all six: the newest three")
    r, got = by_time("qt", ts[5] + 1, ts[5] + 100000)
    t.eq((r.status, got), (200, []), "a range after the last message: empty")
    r, got = by_time("qid", ts[0], ts[5])
    t.eq(got, [], "time range of another topic's messages: none of qt's")


def test_after_restart(t):
    rc = node.restart()
    t.eq(rc, 0, "SIGTERM exits 0")
    for mid, want in sorted(state.get("qid", {}).items()):
        r = node.get(path("v1", "messages", mid))
        same_message(t, r.json, want, "after restart: by msgId")
        break
    r, msgs = by_key("qa", "shared")
    t.eq([m["msgId"] for m in msgs or []], state.get("qa", [])[::-1],
         "after restart: by key, newest first")
    if "qt" in state:
        ts, ids = state["qt"]
        r, got = by_time("qt", ts[1], ts[4])
        t.eq([m["msgId"] for m in got or []], ids[4:0:-1],
             "after restart: by time range")
    node.kill9()
    node.start()
    r, msgs = by_key("qa", "shared")
    t.eq([m["msgId"] for m in msgs or []], state.get("qa", [])[::-1],
         "after kill -9 and restart: by key")
    for mid, want in sorted(state.get("qid", {}).items()):
        r = node.get(path("v1", "messages", mid))
        same_message(t, r.json, want, "after kill -9 and restart: by msgId")


if __name__ == "__main__":
    fmtest.main([test_by_msgid, test_by_key, test_by_time,
                 test_after_restart], timeout=85, start=[node])
