"""test_publish - publishing and pulling back over HTTP against a real node.

Checks byte-exact round trips (text, binary, empty, sizes at the limit),
tag/keys/properties, the 201 shape, per-queue offsets, shardingKey
affinity, NDJSON batches (all stored in order, or nothing), pull paging,
long-poll pulls and the meaning of minOffset/maxOffset. Property names
the broker reserves (beginning with "__", and those it sets on delayed
deliveries and DLQ copies) are refused with 400 naming the property, in
single, delayed and batch publishes, storing nothing; names merely like
them are properties as any other.

Owns only these checks; the harness is fmtest. One daemon for the file,
each case on its own topics so the cases do not see each other's messages.
"""

import base64
import json
import re
import threading
import time

import fmtest
from fmtest import body_bytes, path

MAXMSG = 65536
QUEUES = 4
node = fmtest.Daemon("publish", {"maxMessageSize": MAXMSG,
                                 "defaultTopicQueueNums": QUEUES})


def fetch(topic, qid, offset):
    """The one message at (topic, qid, offset), or None."""
    r = node.pull(topic, qid, offset=offset, max=1)
    if r.status != 200 or not r.json["messages"]:
        return None
    return r.json["messages"][0]


def published(t, r, topic, desc):
    """Check a 201 answer's shape; returns its json or None."""
    j = r.json
    good = (r.status == 201 and isinstance(j, dict) and
            isinstance(j.get("msgId"), str) and j["msgId"] != "" and
            j.get("topic") == topic and isinstance(j.get("queueId"), int) and
            0 <= j["queueId"] < QUEUES and
            isinstance(j.get("queueOffset"), int) and j["queueOffset"] >= 0)
    t.ok(good, desc + ": 201 {msgId, topic, queueId, queueOffset}", repr(r))
    return j if good else None


def test_text_with_tag_keys_props(t):
    before = int(time.time() * 1000)
    r = node.publish("orders", b"hello", tag="created",
                     keys=" order-42 ,, k2,",
                     headers={"X-Prop-region": "eu", "X-Prop-Tier": "gold",
                              "Content-Type": "text/plain"})
    after = int(time.time() * 1000)
    j = published(t, r, "orders", "text publish")
    if not j:
        return
    t.ok(r.headers.get("Content-Type", "").startswith("application/json"),
         "201 is application/json", r.headers.get("Content-Type"))
    m = fetch("orders", j["queueId"], j["queueOffset"])
    t.ok(m is not None, "pulled back at the acknowledged queue and offset")
    if m is None:
        return
    t.eq(fmtest.message_problems(m), [], "message has every field of the "
         "API's Message schema")
    t.eq(set(j), {"msgId", "topic", "queueId", "queueOffset"},
         "201 has exactly the PublishResult members")
    t.eq(m.get("msgId"), j["msgId"], "pulled msgId is the acknowledged one")
    t.eq(m.get("topic"), "orders", "pulled topic")
    t.eq((m.get("queueId"), m.get("queueOffset")),
         (j["queueId"], j["queueOffset"]), "pulled queueId/queueOffset")
    t.eq((m.get("body"), m.get("bodyEncoding")), ("hello", "text"),
         "text body comes back as text")
    t.eq(m.get("tag"), "created", "tag round trips")
    t.eq(m.get("keys"), ["order-42", "k2"],
         "keys round trip in order, spaces and empty keys dropped")
    t.eq(m.get("properties"), {"region": "eu", "Tier": "gold"},
         "X-Prop-* headers become properties, names as sent")
    t.eq(m.get("reconsumeTimes"), 0, "reconsumeTimes 0")
    t.ok("receiptHandle" not in m, "a pulled message has no receiptHandle")
    for k in ("bornTimestamp", "storeTimestamp"):
        v = m.get(k)
        t.ok(isinstance(v, int) and before - 2000 <= v <= after + 2000,
             "%s is epoch ms of the publish" % k,
             "%r not in [%d, %d]" % (v, before, after))


def roundtrip(t, topic, payload, desc, want_enc=None, headers=None):
    r = node.publish(topic, payload, headers=headers)
    j = published(t, r, topic, desc)
    if not j:
        return None
    m = fetch(topic, j["queueId"], j["queueOffset"])
    if not t.ok(m is not None, desc + ": pulled back"):
        return None
    try:
        got = body_bytes(m)
    except (ValueError, KeyError) as e:
        got = e
    t.ok(got == payload, desc + ": byte-exact",
         "got %r\nwant %r" % (fmtest._short(got), fmtest._short(payload)))
    if want_enc:
        t.eq(m.get("bodyEncoding"), want_enc, desc + ": bodyEncoding")
    return m


def test_bodies(t):
    allbytes = bytes(range(256))
    m = roundtrip(t, "bodies", allbytes, "all 256 byte values", "base64")
    if m:
        t.eq(m["body"], base64.b64encode(allbytes).decode(),
             "binary body is standard base64")
    m = roundtrip(t, "bodies", b"", "empty body", "text")
    if m:
        t.eq((m.get("tag", "absent"), m.get("keys"), m.get("properties")),
             (None, [], {}), "no tag/keys/props: tag null, [] and {}")
    roundtrip(t, "bodies", "h\u00e9llo \u2713 \u65e5\u672c \U0001f600"
              .encode("utf-8"), "multi-byte UTF-8", "text")
    roundtrip(t, "bodies", b"\xc3\x28 not utf-8", "invalid UTF-8", "base64")
    roundtrip(t, "bodies", b"a\x00b", "NUL inside a body")
    roundtrip(t, "bodies", b'{"json": "as payload"}\n', "JSON payload",
              "text", headers={"Content-Type": "application/json"})
    # curl -d sends this content type: the body is still the payload.
    roundtrip(t, "bodies", b"a=1&b=2%20", "form-encoded content type", "text",
              headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_chunked_upload(t):
    req = (b"POST /v1/topics/chunked/messages HTTP/1.1\r\n"
           b"Host: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           b"6\r\nhello \r\n6\r\nchunks\r\n0\r\n\r\n")
    out = fmtest.raw_request(node.port, req)
    try:
        r = fmtest.parse_response(out)
    except Exception:
        r = None
    j = r.json if r else None
    t.ok(r is not None and r.status == 201, "chunked upload -> 201",
         out[:300])
    if t.ok(isinstance(j, dict) and "queueId" in j, "chunked 201 has JSON",
            out[:400]):
        m = fetch("chunked", j["queueId"], j["queueOffset"])
        t.ok(m is not None and body_bytes(m) == b"hello chunks",
             "chunked body is de-chunked and stored byte-exact", repr(m))


def test_sizes(t):
    topic = "sizes"
    for n, desc in ((MAXMSG - 1, "maxMessageSize-1"),
                    (MAXMSG, "exactly maxMessageSize")):
        payload = bytes((i * 7 + n) & 0xFF for i in range(n))
        roundtrip(t, topic, payload, desc + " accepted", "base64")
    before = node.max_offsets(topic, QUEUES)
    t.eq(sum(before), 2, "two messages stored")
    r = node.publish(topic, b"x" * (MAXMSG + 1))
    t.is_error(r, 413, "maxMessageSize+1 -> 413 JSON error")
    t.eq(node.max_offsets(topic, QUEUES), before, "413 stored nothing")
    r = node.publish(topic, b"x" * (4 * MAXMSG))
    t.is_error(r, 413, "4 x maxMessageSize -> 413")
    t.eq(node.max_offsets(topic, QUEUES), before, "still nothing stored")
    r = node.publish(topic, b"after")
    t.eq(r.status, 201, "a publish works after the 413s on the same node")


def test_offsets_contiguous(t):
    topic = "seq"
    acks = []
    for i in range(40):
        r = node.publish(topic, b"seq-%d" % i)
        j = published(t, r, topic, "seq %d" % i) if r.status != 201 else r.json
        if not j:
            return
        acks.append((j["queueId"], j["queueOffset"], b"seq-%d" % i))
    per = {}
    for q, off, body in acks:
        per.setdefault(q, []).append((off, body))
    t.eq(sorted(per), list(range(QUEUES)),
         "round robin: every queue of the topic is used")
    t.eq(sorted(len(v) for v in per.values()), [10] * QUEUES,
         "round robin: 40 messages spread 10 per queue")
    for q, items in sorted(per.items()):
        offs = [o for o, _ in items]
        t.eq(offs, list(range(len(items))),
             "queue %d: acknowledged offsets 0..n-1 in publish order" % q)
        msgs, last = node.pull_all(topic, q)
        t.eq([body_bytes(m) for m in msgs], [b for _, b in items],
             "queue %d: pulled bodies in publish order" % q)
        t.eq([m["queueOffset"] for m in msgs], offs,
             "queue %d: pulled queueOffsets" % q)
        t.eq((last["minOffset"], last["maxOffset"], last["nextOffset"]),
             (0, len(items), len(items)),
             "queue %d: minOffset 0, maxOffset = nextOffset = count" % q)


def test_sharding_key(t):
    topic = "sharded"
    sent = {}
    queue_of = {}
    for i in range(36):
        key = "key-%d" % (i % 6)
        r = node.publish(topic, b"%s/%d" % (key.encode(), i), shardingKey=key)
        if r.status != 201:
            t.ok(False, "shardingKey publish -> 201", repr(r))
            return
        queue_of.setdefault(key, set()).add(r.json["queueId"])
        sent.setdefault(key, []).append(b"%s/%d" % (key.encode(), i))
    t.ok(all(len(qs) == 1 for qs in queue_of.values()),
         "same shardingKey -> same queue", repr(queue_of))
    t.ok(len(set().union(*queue_of.values())) > 1,
         "different shardingKeys spread over more than one queue",
         repr(queue_of))
    for key, qs in sorted(queue_of.items()):
        msgs, _ = node.pull_all(topic, next(iter(qs)))
        got = [body_bytes(m) for m in msgs
               if body_bytes(m).startswith(key.encode() + b"/")]
        t.eq(got, sent[key], "%s: FIFO order within its queue" % key)


def ndjson(lines):
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


NDJSON = {"Content-Type": "application/x-ndjson"}


def test_batch(t):
    topic = "batch"
    bin_payload = bytes(range(255, -1, -1))
    lines = [
        {"body": "first", "shardingKey": "b"},
        {"bodyBase64": base64.b64encode(bin_payload).decode(),
         "shardingKey": "b", "tag": "bin"},
        {"body": "third", "tag": "t3", "keys": ["k3a", "k3b"],
         "properties": {"p": "v", "q": "w"}, "shardingKey": "b"},
        {"body": "", "shardingKey": "b"},
        {"body": "fifth \u2713", "shardingKey": "b", "keys": ["k5"]},
    ]
    want = [b"first", bin_payload, b"third", b"", "fifth \u2713".encode()]
    r = node.req("POST", path("v1", "topics", topic, "messages"),
                 ndjson(lines), NDJSON)
    j = r.json
    ok = t.ok(r.status == 201 and isinstance(j, dict) and
              isinstance(j.get("results"), list) and
              len(j["results"]) == len(lines),
              "NDJSON batch -> 201 with one result per line", repr(r))
    if not ok:
        return
    res = j["results"]
    t.ok(all(isinstance(x.get("msgId"), str) and x.get("topic") == topic
             for x in res), "each result has msgId and topic", repr(res))
    t.eq(len({x["queueId"] for x in res}), 1, "same shardingKey: one queue")
    q = res[0]["queueId"]
    base = res[0]["queueOffset"]
    t.eq([x["queueOffset"] for x in res], list(range(base, base + 5)),
         "batch offsets contiguous in line order")
    msgs, _ = node.pull_all(topic, q, base)
    t.eq([body_bytes(m) for m in msgs], want,
         "batch bodies (text, base64, empty) stored in order, byte-exact")
    if len(msgs) == 5:
        t.eq([m["msgId"] for m in msgs], [x["msgId"] for x in res],
             "pulled msgIds match the results")
        t.eq([m.get("tag") for m in msgs][1:3], ["bin", "t3"],
             "per-line tags")
        t.eq(msgs[2].get("keys"), ["k3a", "k3b"], "per-line keys")
        t.eq(msgs[2].get("properties"), {"p": "v", "q": "w"},
             "per-line properties")
        t.eq(msgs[0].get("tag", "absent"), None,
             "a line without tag has tag null")
        t.eq(msgs[4].get("keys"), ["k5"], "second line's keys are its own")

    # Round robin batch: every result is where it says it is.
    r = node.req("POST", path("v1", "topics", topic, "messages"),
                 ndjson([{"body": "rr-%d" % i} for i in range(8)]), NDJSON)
    if t.eq(r.status, 201, "round-robin batch -> 201"):
        for i, x in enumerate(r.json["results"]):
            m = fetch(topic, x["queueId"], x["queueOffset"])
            if not (m and body_bytes(m) == b"rr-%d" % i):
                t.ok(False, "rr batch line %d at its result" % i, repr(m))
                break
        else:
            t.ok(True, "every round-robin batch line is at its result")


def test_batch_atomic(t):
    topic = "batch"
    before = node.max_offsets(topic, QUEUES)
    good = {"body": "good"}
    cases = [
        (b'{"body": "a"}\n{"body": \n{"body": "c"}\n', 400, "bad JSON line"),
        (ndjson([good, {"bodyBase64": "***not base64***"}, good]), 400,
         "bad base64 line"),
        (ndjson([good, {"tag": "no body"}, good]), 400, "line without body"),
        (ndjson([good, ["not", "an", "object"]]), 400, "line not an object"),
        (ndjson([good, {"body": "x", "keys": 7}]), 400, "keys not a list"),
        (ndjson([good, {"body": "x", "bogus": 1}]), 400, "unknown member"),
        (ndjson([good, {"body": "x", "bodyBase64": "eA=="}]), 400,
         "both body and bodyBase64"),
        (ndjson([good, {"body": "x", "properties": {"p": 1}}]), 400,
         "a property value not a string"),
        (ndjson([good, good, {"body": "y" * (MAXMSG + 1)}]), 413,
         "one line over maxMessageSize"),
        (ndjson([good, {"body": "z", "tag": "t" * 300}]), 400,
         "tag longer than 255"),
    ]
    for body, status, desc in cases:
        r = node.req("POST", path("v1", "topics", topic, "messages"), body,
                     NDJSON)
        t.is_error(r, status, "batch with %s -> %d" % (desc, status))
        if status == 400 and fmtest.error_shape(r):
            msg = r.json["error"]["message"]
            t.ok(re.search(r"\b2\b", msg), "batch with %s: the error "
                 "names line number 2" % desc, repr(msg))
        now = node.max_offsets(topic, QUEUES)
        if not t.eq(now, before, "batch with %s stored nothing" % desc):
            before = now
    r = node.req("POST", path("v1", "topics", topic, "messages"), b"",
                 NDJSON)
    t.ok(r.status in (400, 201), "empty batch: 400 or an empty 201",
         repr(r))
    t.eq(node.max_offsets(topic, QUEUES), before, "empty batch stored nothing")


def test_paging(t):
    topic = "paging"
    for i in range(10):
        r = node.publish(topic, b"p%d" % i, shardingKey="one")
        if r.status != 201:
            t.ok(False, "paging publish", repr(r))
            return
    q = r.json["queueId"]
    got = []
    offset = 0
    pages = []
    for _ in range(10):
        r = node.pull(topic, q, offset=offset, max=3)
        if not t.eq(r.status, 200, "pull page at %d -> 200" % offset):
            return
        j = r.json
        pages.append((len(j["messages"]), j["nextOffset"], j["minOffset"],
                      j["maxOffset"]))
        got += [body_bytes(m) for m in j["messages"]]
        if not j["messages"]:
            break
        offset = j["nextOffset"]
    t.eq(pages, [(3, 3, 0, 10), (3, 6, 0, 10), (3, 9, 0, 10), (1, 10, 0, 10),
                 (0, 10, 0, 10)],
         "pages of max=3: (count, nextOffset, minOffset, maxOffset)")
    t.eq(got, [b"p%d" % i for i in range(10)], "paged bodies in order")
    r = node.pull(topic, q, offset=4, max=1)
    t.eq([m["queueOffset"] for m in r.json["messages"]], [4],
         "pull from the middle starts at that offset")
    r = node.pull(topic, q, offset=0, max=1024)
    t.eq(len(r.json["messages"]), 10, "max=1024 returns all 10")
    empty_q = (q + 1) % QUEUES
    r = node.pull(topic, empty_q, offset=0)
    t.eq((r.status, r.json and r.json["messages"], r.json and
          r.json["nextOffset"], r.json and r.json["maxOffset"]),
         (200, [], 0, 0), "an empty queue: no messages, maxOffset 0")


def test_long_poll(t):
    topic = "lp"
    r = node.publish(topic, b"seed", shardingKey="lp")
    if r.status != 201:
        t.ok(False, "long-poll seed publish", repr(r))
        return
    q, off = r.json["queueId"], r.json["queueOffset"] + 1
    acked = {}

    def later():
        time.sleep(0.7)
        c = fmtest.Client(node.port)
        try:
            rr = c.request("POST", path("v1", "topics", topic, "messages",
                                        shardingKey="lp"), b"wake up")
            acked["t"] = time.monotonic()
            acked["r"] = rr
        finally:
            c.close()

    th = threading.Thread(target=later)
    start = time.monotonic()
    th.start()
    r = node.pull(topic, q, offset=off, wait=5, timeout=15)
    end = time.monotonic()
    th.join()
    t.eq(r.status, 200, "long-poll pull -> 200")
    t.eq(acked.get("r") and acked["r"].status, 201,
         "publish from another thread -> 201")
    msgs = r.json["messages"] if r.status == 200 else []
    t.eq([body_bytes(m) for m in msgs], [b"wake up"],
         "long-poll answers with the new message")
    if "t" in acked:
        # ~1 s, with slack for a loaded 2-core machine under make -j.
        t.ok(end - acked["t"] < 1.5 and end - start >= 0.6,
             "answered within about 1 s of the publish, not before it",
             "publish acked at +%.2fs, pull answered at +%.2fs" %
             (acked["t"] - start, end - start))
    off += 1
    start = time.monotonic()
    r = node.pull(topic, q, offset=off, wait=1, timeout=15)
    took = time.monotonic() - start
    t.eq((r.status, r.json and r.json["messages"],
          r.json and r.json["nextOffset"]), (200, [], off),
         "idle wait=1 answers empty, nextOffset unchanged")
    t.ok(0.8 <= took <= 3.0, "idle wait=1 answers after about 1 s",
         "took %.2f s" % took)
    start = time.monotonic()
    r = node.pull(topic, q, offset=off, wait=0.5, timeout=15)
    took = time.monotonic() - start
    t.ok(r.status == 200 and 0.3 <= took <= 3.0,
         "decimal wait=0.5 is honoured", "status %d, took %.2f s" %
         (r.status, took))
    start = time.monotonic()
    r = node.pull(topic, q, offset=0, wait=5, timeout=15)
    took = time.monotonic() - start
    t.ok(r.status == 200 and len(r.json["messages"]) == 2 and took < 2.0,
         "wait=5 with messages available answers at once",
         "status %d, took %.2f s, %r" % (r.status, took, r))


RESERVED = ("__REAL_TOPIC", "__REAL_QID", "__anything", "ORIGIN_MESSAGE_ID",
            "ORIGIN_TOPIC", "ORIGIN_QUEUE_ID", "ORIGIN_QUEUE_OFFSET",
            "RECONSUME_TIMES", "TIMER_DELIVER_MS", "TIMER_DELAY_SEC",
            "TIMER_DELAY_MS", "DELAY")
# RocketMQ's scheduling properties: refused with a pointer to our way
SCHEDULING = ("TIMER_DELIVER_MS", "TIMER_DELAY_SEC", "TIMER_DELAY_MS",
              "DELAY")


def refused_reserved(t, r, name, desc):
    t.is_error(r, 400, "%s -> 400" % desc, "INVALID_ARGUMENT")
    msg = r.json["error"]["message"] if fmtest.error_shape(r) else ""
    t.ok("'%s'" % name in msg and "reserved" in msg,
         "%s: the message names the property and says reserved" % desc,
         repr(msg))
    if name in SCHEDULING:
        t.ok("delay" in msg and "deliverAt" in msg,
             "%s: and points to delay and deliverAt" % desc, repr(msg))


def test_reserved_properties(t):
    topic = "reserved"
    before = node.max_offsets(topic, QUEUES)
    for name in RESERVED:
        r = node.publish(topic, b"x", headers={"X-Prop-" + name: "v"})
        refused_reserved(t, r, name, "X-Prop-%s" % name)
    r = node.publish(topic, b"x", headers={"X-Prop-__REAL_TOPIC": "other"},
                     delay=5)
    refused_reserved(t, r, "__REAL_TOPIC", "a delayed publish with "
                     "X-Prop-__REAL_TOPIC")
    r = node.req("POST", path("v1", "topics", topic, "messages"),
                 ndjson([{"body": "a"},
                         {"body": "b", "properties": {"ok": "1",
                                                      "__REAL_QID": "3"}}]),
                 NDJSON)
    refused_reserved(t, r, "__REAL_QID", "a batch with __REAL_QID on line 2")
    msg = r.json["error"]["message"] if fmtest.error_shape(r) else ""
    t.ok(re.search(r"\b2\b", msg), "the batch error names message 2",
         repr(msg))
    r = node.req("POST", path("v1", "topics", topic, "messages"),
                 ndjson([{"body": "a", "delay": 5,
                          "properties": {"TIMER_DELIVER_MS": "1"}}]),
                 NDJSON)
    refused_reserved(t, r, "TIMER_DELIVER_MS", "a delayed batch line with "
                     "TIMER_DELIVER_MS")
    t.eq(node.max_offsets(topic, QUEUES), before,
         "no refused publish stored anything")
    like = {"_one": "1", "REAL_TOPIC": "2", "ORIGIN_COUNTRY": "3",
            "origin_topic": "4", "X__y": "5"}
    r = node.publish(topic, b"like", headers={"X-Prop-" + k: v
                                              for k, v in like.items()})
    j = published(t, r, topic, "names only like reserved ones")
    m = fetch(topic, j["queueId"], j["queueOffset"]) if j else None
    t.eq(m and m["properties"], like, "are stored as properties, as sent")


def test_odd_topic_names(t):
    for topic in ("%RETRY%group-1", "a|b", "_-_", "T" * 127):
        r = node.publish(topic, b"odd " + topic.encode())
        j = published(t, r, topic, "topic %r" % topic[:20])
        if j:
            m = fetch(topic, j["queueId"], j["queueOffset"])
            t.ok(m is not None and m["topic"] == topic and
                 body_bytes(m) == b"odd " + topic.encode(),
                 "topic %r round trips" % topic[:20], repr(m))


def test_sigterm_answers_parked_poll(t):
    """SIGTERM must answer a parked long-poll and exit promptly."""
    got = {}

    def poll():
        try:
            got["r"] = fmtest.request(
                node.port, "GET",
                path("v1", "topics", "lp", "queues", 0, "messages",
                     offset=node.max_offsets("lp", QUEUES)[0], wait=20),
                timeout=30)
        except Exception as e:
            got["r"] = e

    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    start = time.monotonic()
    rc = node.stop()
    took = time.monotonic() - start
    th.join(30)
    t.eq(rc, 0, "SIGTERM with a parked long-poll exits 0")
    t.ok(took < 5, "and promptly", "took %.1f s" % took)
    r = got.get("r")
    t.ok(isinstance(r, fmtest.Resp) and
         (r.status == 200 or (r.status == 503 and fmtest.error_shape(r))),
         "the parked poll was answered (200, or 503 JSON)", repr(r))


if __name__ == "__main__":
    fmtest.main([test_text_with_tag_keys_props, test_bodies,
                 test_chunked_upload, test_sizes, test_offsets_contiguous,
                 test_sharding_key, test_batch, test_batch_atomic,
                 test_paging, test_long_poll, test_reserved_properties,
                 test_odd_topic_names,
                 test_sigterm_answers_parked_poll], timeout=85, start=[node])
