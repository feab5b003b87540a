"""test_groups - competing consumer groups (RocketMQ 5 POP) over HTTP.

Checks, with counts and contents: two receivers of one group never hold
the same message at once and together get each exactly once; every group
sees every message; invisibility expiry redelivers with reconsumeTimes+1;
ack removes; nack with a delay; the DLQ after maxReconsumeTimes (by nack
and by expiry); clear errors for foreign, stale and malformed receipt
handles; tag filters; reset to earliest, latest and a timestamp; a
long-poll woken by a publish; kill -9 with messages in flight redelivers
them and skips nothing; FIFO (?fifo=true) keeps per-key order under
concurrent publishing, two receivers and nacks; the group list and
state. A group made FIFO with PUT /v1/groups/{group} is FIFO on receives
that do not ask for it, through a nack and a restart, and shows it in
GET /v1/groups, the group's state and GET /v1/groups/{group}; bad
settings requests get the contract's error form.

Owns only these checks; the harness is fmtest. One daemon, each case on
its own topic. Short invisible times (tenths of a second) keep it fast.
"""

import json
import threading
import time

import fmtest
from fmtest import path

QUEUES = 4
node = fmtest.Daemon("groups", {"maxReconsumeTimes": 2,
                                "defaultTopicQueueNums": QUEUES})
JSON = {"Content-Type": "application/json"}


def gpath(topic, group, *rest, **query):
    return path("v1", "topics", topic, "groups", group, *rest, **query)


def receive(topic, group, client=None, **query):
    """Messages of one receive (raises on an error answer)."""
    c = client or node.client
    r = c.request("POST", gpath(topic, group, "receive", **query),
                  timeout=40)
    if r.status != 200:
        raise RuntimeError("receive %s/%s: %r" % (topic, group, r))
    return r.json["messages"]


def settle(topic, group, handles, what="ack", client=None, **extra):
    body = dict(extra, receiptHandles=handles)
    c = client or node.client
    return c.request("POST", gpath(topic, group, what),
                     json.dumps(body).encode())


def ack_all(topic, group, msgs, client=None):
    if not msgs:
        return []
    r = settle(topic, group, [m["receiptHandle"] for m in msgs],
               client=client)
    return [x["ok"] for x in r.json["results"]]


def state(topic, group):
    return node.get(gpath(topic, group)).json


def publish_n(topic, n, prefix="m", **query):
    for i in range(n):
        r = node.publish(topic, ("%s%d" % (prefix, i)).encode(), **query)
        assert r.status == 201, r


def drain(topic, group, want, deadline_s=10, **query):
    """Receive and ack until want messages came or time is up."""
    got = []
    end = time.monotonic() + deadline_s
    while len(got) < want and time.monotonic() < end:
        msgs = receive(topic, group, max=32, wait=0.5, **query)
        ack_all(topic, group, msgs)
        got.extend(msgs)
    return got


def test_competing_receivers(t):
    publish_n("cg", 60)
    held = {}
    dup = []
    lock = threading.Lock()
    bodies = {0: [], 1: []}

    def worker(k):
        c = fmtest.Client(node.port)
        idle = 0
        while idle < 3:
            msgs = receive("cg", "g", client=c, max=7, invisible=20)
            if not msgs:
                idle += 1
                continue
            idle = 0
            with lock:
                for m in msgs:
                    if m["msgId"] in held:
                        dup.append(m["msgId"])
                    held[m["msgId"]] = k
            time.sleep(0.01)
            with lock:
                for m in msgs:
                    del held[m["msgId"]]
                    bodies[k].append(m["body"])
            ok = ack_all("cg", "g", msgs, client=c)
            if not all(ok):
                with lock:
                    dup.append("ack failed")
        c.close()

    ths = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(30)
    allb = bodies[0] + bodies[1]
    t.eq(dup, [], "two receivers of one group never hold one message at "
         "once, and every ack succeeds")
    t.eq(sorted(allb), sorted("m%d" % i for i in range(60)),
         "together they receive each of the 60 messages exactly once")
    t.ok(bodies[0] and bodies[1], "both receivers got work",
         (len(bodies[0]), len(bodies[1])))
    other = drain("cg", "g2", 60)
    t.eq(sorted(m["body"] for m in other),
         sorted("m%d" % i for i in range(60)),
         "another group sees every message too")
    st = state("cg", "g")
    t.ok(all(q["consumedOffset"] == q["maxOffset"] and q["inFlight"] == 0
             and q["lag"] == 0 for q in st["queues"]),
         "group state: consumed to maxOffset, no lag, none in flight", st)
    t.eq(sum(q["maxOffset"] for q in st["queues"]), 60,
         "group state: maxOffsets add up to the 60 published")


def test_invisibility_expiry(t):
    node.publish("ex", b"once")
    first = receive("ex", "g", invisible=0.5)
    t.eq([(m["body"], m["reconsumeTimes"]) for m in first], [("once", 0)],
         "first delivery has reconsumeTimes 0")
    t.eq(fmtest.message_problems(first[0]) if first else ["none"], [],
         "received message has every field of the Message schema")
    t.ok(first and isinstance(first[0].get("receiptHandle"), str),
         "received message has a receiptHandle")
    t.eq(receive("ex", "g", invisible=0.5), [],
         "an in-flight message is invisible to its group")
    st = state("ex", "g")
    t.eq(sum(q["inFlight"] for q in st["queues"]), 1,
         "group state counts it in flight")
    time.sleep(0.7)
    again = receive("ex", "g", invisible=5)
    t.eq([(m["msgId"], m["reconsumeTimes"]) for m in again],
         [(first[0]["msgId"], 1)],
         "after the invisible time it comes back with reconsumeTimes 1")
    r = settle("ex", "g", [first[0]["receiptHandle"]])
    res = r.json["results"][0]
    t.ok(r.status == 200 and not res["ok"] and
         res["error"]["code"] == "GONE" and res["error"]["status"] == 410,
         "the first delivery's handle is stale once redelivered (410 GONE)",
         r)
    t.eq(ack_all("ex", "g", again), [True], "the new handle acks")
    t.eq(receive("ex", "g", invisible=0.1), [], "an acked message is gone")
    time.sleep(0.2)
    t.eq(receive("ex", "g"), [], "and does not come back")
    st = state("ex", "g")
    t.eq([(q["inFlight"], q["lag"]) for q in st["queues"]],
         [(0, 0)] * QUEUES, "nothing in flight, no lag")


def test_nack_delay(t):
    node.publish("nk", b"later")
    m = receive("nk", "g", invisible=30)
    r = settle("nk", "g", [m[0]["receiptHandle"]], "nack", delay=0.6)
    t.eq([x["ok"] for x in r.json["results"]], [True], "nack accepted")
    t.eq(receive("nk", "g"), [], "a nacked message waits out its delay")
    start = time.monotonic()
    back = receive("nk", "g", wait=5, invisible=30)
    took = time.monotonic() - start
    t.eq([(x["body"], x["reconsumeTimes"]) for x in back], [("later", 1)],
         "it comes back (to a long-poll) with reconsumeTimes 1")
    t.ok(0.3 <= took <= 2.5, "after about the 0.6 s delay (%.2f s)" % took)
    r = settle("nk", "g", [m[0]["receiptHandle"]], "nack", delay=0)
    t.eq(r.json["results"][0]["error"]["code"], "GONE",
         "nack of a handle already nacked is stale")
    ack_all("nk", "g", back)


def test_dlq(t):
    node.publish("dq", b"poison", tag="bad", keys="k1,k2",
                 headers={"X-Prop-region": "eu"})
    seen = []
    for _ in range(3):
        msgs = receive("dq", "gd", wait=3, invisible=30)
        if not msgs:
            break
        seen.append(msgs[0]["reconsumeTimes"])
        settle("dq", "gd", [msgs[0]["receiptHandle"]], "nack", delay=0)
    t.eq(seen, [0, 1, 2], "delivered with reconsumeTimes 0..max (2)")
    dlq = []
    end = time.monotonic() + 5
    while not dlq and time.monotonic() < end:
        r = node.pull("%DLQ%gd", 0)
        if r.status == 200:
            dlq = r.json["messages"]
        if not dlq:
            time.sleep(0.1)
    t.eq(len(dlq), 1, "after the last failure it is in %DLQ%gd")
    if dlq:
        d = dlq[0]
        t.eq((d["body"], d["tag"], d["keys"]), ("poison", "bad",
                                                ["k1", "k2"]),
             "the DLQ copy keeps body, tag and keys")
        p = d["properties"]
        t.eq((p.get("region"), p.get("ORIGIN_TOPIC"),
              p.get("RECONSUME_TIMES")), ("eu", "dq", "2"),
             "and properties, plus ORIGIN_TOPIC and RECONSUME_TIMES")
        t.eq(len(p.get("ORIGIN_MESSAGE_ID", "")), 32,
             "ORIGIN_MESSAGE_ID is the original msgId")
    t.eq(receive("dq", "gd", wait=0.5), [],
         "the original group no longer receives it")
    r = node.get(path("v1", "topics", "%DLQ%gd"))
    t.eq(r.json.get("queues") if r.status == 200 else r, 1,
         "the DLQ topic was created with 1 queue")
    # by expiry alone: three deliveries never acked
    node.publish("dq2", b"ignored")
    seen = []
    end = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < end:
        seen += [m["reconsumeTimes"] for m in
                 receive("dq2", "gd", wait=2, invisible=0.3)]
    t.eq(seen, [0, 1, 2], "expiry without ack: reconsumeTimes 0, 1, 2")
    got = []
    end = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < end:
        r = node.pull("%DLQ%gd", 0)
        got = r.json["messages"] if r.status == 200 else []
        time.sleep(0.1)
    t.eq([m["body"] for m in got], ["poison", "ignored"],
         "then it goes to the DLQ too")
    st = state("dq2", "gd")
    t.eq(sum(q["inFlight"] + q["lag"] for q in st["queues"]), 0,
         "and is done in the original group")


def test_bad_handles(t):
    node.publish("bh", b"x")
    m = receive("bh", "ga", invisible=30)
    h = m[0]["receiptHandle"]
    r = settle("bh", "gb", [h])
    e = r.json["results"][0]
    t.ok(r.status == 200 and not e["ok"] and
         e["error"]["code"] == "INVALID_ARGUMENT" and
         e["error"]["status"] == 400 and "another" in e["error"]["message"],
         "a handle of another group: 400 INVALID_ARGUMENT per handle", r)
    r = settle("bh", "ga", ["zz", h, h])
    res = r.json["results"]
    t.eq([(x["receiptHandle"], x["ok"],
           x.get("error", {}).get("code")) for x in res],
         [("zz", False, "INVALID_ARGUMENT"), (h, True, None),
          (h, False, "GONE")],
         "per handle, in order: malformed, ok, already acked")
    t.ok(all(x["ok"] or x["error"]["message"] for x in res),
         "every failed handle has a message")
    r = node.req("POST", gpath("bh", "ga", "ack"), b"{\"receiptHandles\": 5}")
    t.is_error(r, 400, "ack with a bad body: 400", "BAD_REQUEST")
    r = node.req("POST", gpath("bh", "ga", "ack"), b"not json")
    t.is_error(r, 400, "ack with a body that is not JSON: 400")
    r = node.req("POST", gpath("nosuchtopic", "ga", "receive"))
    t.is_error(r, 404, "receive from an unknown topic: 404",
               "TOPIC_NOT_FOUND")
    r = node.req("POST", gpath("bh", "bad group", "receive"))
    t.is_error(r, 400, "a bad group name: 400", "INVALID_ARGUMENT")
    r = node.req("POST", gpath("bh", "ga", "receive", invisible=0))
    t.is_error(r, 400, "invisible=0: 400", "INVALID_ARGUMENT")
    r = node.req("POST", gpath("bh", "ga", "receive", max=0))
    t.is_error(r, 400, "max=0: 400", "INVALID_ARGUMENT")
    r = node.get(gpath("bh", "never"))
    t.is_error(r, 404, "state of a group that never received: 404")
    r = node.req("GET", gpath("bh", "ga", "receive"))
    t.is_error(r, 405, "GET on receive: 405", "METHOD_NOT_ALLOWED")


def test_tags(t):
    for tag in ("a", "b", "c", None, "a", "b"):
        node.publish("tg", ("%s" % tag).encode(), tag=tag)
    got = drain("tg", "gt", 4, deadline_s=3, tags="a || b")
    t.eq(sorted(m["tag"] for m in got), ["a", "a", "b", "b"],
         "tags=a||b receives exactly the a and b messages")
    t.eq(receive("tg", "gt", tags="a||b", wait=0.3), [], "and no more")
    st = state("tg", "gt")
    t.ok(all(q["consumedOffset"] == q["maxOffset"] for q in st["queues"]),
         "the skipped messages advance the consumed offset", st)
    t.eq(len(drain("tg", "gall", 6, deadline_s=3, tags="*")), 6,
         "tags=* receives all six")
    t.eq(len(drain("tg", "gnone", 6, deadline_s=3)), 6,
         "no tags receives all six")


def test_reset(t):
    node.req("PUT", path("v1", "topics", "rs"), b'{"queues": 1}')
    publish_n("rs", 5, "old")
    time.sleep(0.05)
    ts = int(time.time() * 1000)
    time.sleep(0.05)
    publish_n("rs", 5, "new")
    t.eq(len(drain("rs", "g", 10, deadline_s=3)), 10, "all ten consumed")

    def do_reset(body):
        return node.req("POST", gpath("rs", "g", "reset"),
                        json.dumps(body).encode())

    r = do_reset({"offset": "earliest"})
    t.ok(r.status == 200 and r.json["queues"][0]["consumedOffset"] == 0,
         "reset earliest answers the state at offset 0", r)
    t.eq([m["body"] for m in drain("rs", "g", 10, deadline_s=3)],
         ["old%d" % i for i in range(5)] + ["new%d" % i for i in range(5)],
         "after reset earliest all ten come again, in order")
    do_reset({"offset": "latest"})
    t.eq(receive("rs", "g"), [], "after reset latest nothing is received")
    node.publish("rs", b"newest")
    t.eq([m["body"] for m in drain("rs", "g", 1, deadline_s=3)],
         ["newest"], "only what is published after it")
    do_reset({"timestamp": ts})
    t.eq([m["body"] for m in drain("rs", "g", 6, deadline_s=3)],
         ["new%d" % i for i in range(5)] + ["newest"],
         "reset to a timestamp: the messages stored since")
    r = do_reset({"offset": "middle"})
    t.is_error(r, 400, "reset with a bad offset: 400")
    r = do_reset({})
    t.is_error(r, 400, "reset with neither offset nor timestamp: 400")
    do_reset({"offset": "earliest"})
    m = receive("rs", "g", max=1, invisible=30)
    do_reset({"offset": "earliest"})
    res = settle("rs", "g", [x["receiptHandle"] for x in m]).json["results"]
    t.eq([x.get("error", {}).get("code") for x in res], ["GONE"],
         "a handle given before a reset is stale after it")


def test_long_poll(t):
    node.req("PUT", path("v1", "topics", "lp"), b'{"queues": 2}')
    out = {}

    def waiter():
        c = fmtest.Client(node.port)
        s = time.monotonic()
        out["msgs"] = receive("lp", "g", client=c, wait=10)
        out["end"] = time.monotonic()
        out["took"] = out["end"] - s
        c.close()

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.5)
    pub = time.monotonic()
    node.publish("lp", b"wake")
    th.join(15)
    t.eq([m["body"] for m in out.get("msgs", [])], ["wake"],
         "a parked receive gets the message published meanwhile")
    # ~1 s, with slack for a loaded machine (measured: milliseconds)
    t.ok("end" in out and out["end"] - pub < 1.5,
         "within ~1 s of the publish (%.3f s)" %
         (out.get("end", 99) - pub))
    s = time.monotonic()
    t.eq(receive("lp", "g", wait=0.5), [], "an empty long-poll answers []")
    t.ok(0.4 <= time.monotonic() - s < 3, "after about its wait")


def test_group_list(t):
    r = node.get("/v1/groups")
    pairs = {(g["topic"], g["group"]) for g in r.json["groups"]}
    want = {("cg", "g"), ("cg", "g2"), ("ex", "g"), ("rs", "g")}
    t.ok(r.status == 200 and want <= pairs, "GET /v1/groups lists them",
         r.json)


def test_restart_in_flight(t):
    node.req("PUT", path("v1", "topics", "rt"), b'{"queues": 3}')
    publish_n("rt", 30)
    held = receive("rt", "g", max=12, invisible=1.5)
    t.eq(len(held), 12, "twelve received before the crash")
    t.eq(ack_all("rt", "g", held[:5]), [True] * 5, "five of them acked")
    node.kill9()
    node.start()
    t.eq(ack_all("rt", "g", [held[5]]), [True],
         "a handle given before the kill -9 still acks after the restart")
    got = drain("rt", "g", 24, deadline_s=8)
    done = {m["body"] for m in held[:6]}
    want = sorted({"m%d" % i for i in range(30)} - done)
    t.eq(sorted(m["body"] for m in got), want,
         "after kill -9: the 6 still in flight come back and the 18 never "
         "handed out arrive, each once, none of the 6 acked")
    t.eq(sorted(m["body"] for m in got if m["reconsumeTimes"] > 0),
         sorted(m["body"] for m in held[6:]),
         "exactly the ones in flight carry reconsumeTimes 1")
    st = state("rt", "g")
    t.ok(all(q["inFlight"] == 0 and q["consumedOffset"] == q["maxOffset"]
             for q in st["queues"]), "then the group is fully consumed", st)


def test_fifo(t):
    """Per-key order with a concurrent publisher, two receivers and nacks:
    every even message is nacked on its first delivery."""
    node.req("PUT", path("v1", "topics", "ff"), b'{"queues": 3}')
    keys = ["k%d" % i for i in range(4)]
    per_key = 6
    lock = threading.Lock()
    acked = {k: [] for k in keys}
    delivered = {k: [] for k in keys}
    retried = set()
    problems = []

    def publisher():
        c = fmtest.Client(node.port)
        for i in range(per_key):
            for k in keys:
                r = c.request("POST", path("v1", "topics", "ff", "messages",
                                           shardingKey=k),
                              ("%s:%d" % (k, i)).encode())
                if r.status != 201:
                    problems.append(r)
        c.close()

    def receiver():
        c = fmtest.Client(node.port)
        end = time.monotonic() + 25
        while time.monotonic() < end:
            with lock:
                if sum(len(v) for v in acked.values()) == 4 * per_key:
                    break
            for m in receive("ff", "g", client=c, fifo="true", wait=0.5,
                             invisible=10):
                k, i = m["body"].split(":")
                i = int(i)
                with lock:
                    delivered[k].append(i)
                    nack = i % 2 == 0 and (k, i) not in retried
                    if nack:
                        retried.add((k, i))
                    else:
                        acked[k].append(i)
                        if (k, i) in retried and m["reconsumeTimes"] != 1:
                            problems.append(("reconsumeTimes", m))
                r = settle("ff", "g", [m["receiptHandle"]],
                           "nack" if nack else "ack", client=c,
                           **({"delay": 0.05} if nack else {}))
                if not r.json["results"][0]["ok"]:
                    problems.append(r)
        c.close()

    ths = [threading.Thread(target=f) for f in (publisher, receiver,
                                                   receiver)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(30)
    t.eq(problems, [], "every publish, ack and nack succeeds; a retried "
         "message comes back with reconsumeTimes 1")
    t.eq(acked, {k: list(range(per_key)) for k in keys},
         "FIFO: each key's messages are acked in publish order, once each")
    t.ok(all(v == sorted(v) for v in delivered.values()),
         "FIFO: deliveries of one key never overtake a retry", delivered)
    t.eq(sum(len(v) for v in delivered.values()), 4 * per_key +
         len(retried), "deliveries: one per message plus one per retry")


def test_fifo_wakes_on_ack(t):
    node.req("PUT", path("v1", "topics", "fw"), b'{"queues": 1}')
    node.publish("fw", b"first", shardingKey="k")
    node.publish("fw", b"second", shardingKey="k")
    held = receive("fw", "g", fifo="true", invisible=30)
    t.eq([m["body"] for m in held], ["first"],
         "FIFO: one message of the queue at a time")
    out = {}

    def waiter():
        c = fmtest.Client(node.port)
        out["msgs"] = receive("fw", "g", client=c, fifo="true", wait=10)
        out["end"] = time.monotonic()
        c.close()

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.5)
    t.ok("end" not in out, "a FIFO long-poll waits while the queue's "
         "message is out")
    acked = time.monotonic()
    ack_all("fw", "g", held)
    th.join(15)
    t.eq([m["body"] for m in out.get("msgs", [])], ["second"],
         "the ack wakes it with the next message")
    t.ok(out.get("end", 99) - acked < 1.5, "within ~1 s of the ack "
         "(%.3f s)" % (out.get("end", 99) - acked))


def group_url(group):
    return path("v1", "groups", group)


def put_group(group, body):
    return node.req("PUT", group_url(group), body, JSON)


def test_fifo_group(t):
    """A group made FIFO by PUT: receives without ?fifo hand out one
    message per queue at a time, a nacked message keeps its place, and
    the setting survives a restart."""
    node.req("PUT", path("v1", "topics", "fg"), b'{"queues": 2}')
    r = put_group("fifo-g", b'{"fifo": true}')
    t.ok(r.status == 200 and r.json.get("group") == "fifo-g" and
         r.json.get("fifo") is True and r.json.get("topics") == [] and
         isinstance(r.json.get("updatedTimestamp"), int),
         "PUT /v1/groups/fifo-g {fifo: true}: 200 with the settings", r)
    t.eq(put_group("fifo-g", b'{"fifo": true}').json.get("fifo"), True,
         "PUT again is idempotent")
    queues = {}  # queueId -> bodies in publish order
    for i in range(3):
        for k in ("a", "b", "c", "d"):
            r = node.publish("fg", ("%s%d" % (k, i)).encode(),
                             shardingKey=k)
            queues.setdefault(r.json["queueId"], []).append("%s%d" % (k, i))
    nq = len(queues)
    heads = sorted(q[0] for q in queues.values())
    got = receive("fg", "fifo-g", max=32, invisible=30)
    t.eq(sorted(m["body"] for m in got), heads,
         "a receive without ?fifo gets only the oldest message of each of "
         "the %d queues" % nq)
    t.eq(receive("fg", "fifo-g", max=32, invisible=30), [],
         "nothing more while each queue has one message out")
    t.eq(len(drain("fg", "plain-g", 12, deadline_s=3)), 12,
         "a group not made FIFO gets all 12 at once")
    first = got[0]
    rest = got[1:]
    r = settle("fg", "fifo-g", [first["receiptHandle"]], "nack", delay=0.3)
    t.eq([x["ok"] for x in r.json["results"]], [True], "one of them nacked")
    t.eq(receive("fg", "fifo-g", max=32), [],
         "the message behind the nacked one does not overtake it")
    again = receive("fg", "fifo-g", max=32, wait=5, invisible=30)
    t.eq([(m["body"], m["reconsumeTimes"]) for m in again],
         [(first["body"], 1)],
         "after its delay the nacked message itself comes back, first")
    ack_all("fg", "fifo-g", again + rest)
    second = receive("fg", "fifo-g", max=32, invisible=30)
    t.eq(sorted(m["body"] for m in second),
         sorted(q[1] for q in queues.values()),
         "once acked, the next message of each queue, one per queue")
    node.restart()
    r = node.get(group_url("fifo-g"))
    t.ok(r.status == 200 and r.json.get("fifo") is True and
         r.json.get("topics") == ["fg"],
         "after a restart GET /v1/groups/fifo-g: still fifo, on topic fg", r)
    t.eq(receive("fg", "fifo-g", max=32), [],
         "after the restart the messages still out hold their queues")
    t.eq(ack_all("fg", "fifo-g", second), [True] * nq,
         "their handles ack after the restart")
    t.eq(sorted(m["body"] for m in receive("fg", "fifo-g", max=32,
                                            invisible=30)),
         sorted(q[2] for q in queues.values()),
         "then the last message of each queue")
    pairs = {(g["topic"], g["group"]): g.get("fifo")
             for g in node.get("/v1/groups").json["groups"]}
    t.eq((pairs.get(("fg", "fifo-g")), pairs.get(("fg", "plain-g"))),
         (True, False), "GET /v1/groups shows fifo per entry")
    t.eq((state("fg", "fifo-g").get("fifo"), state("fg", "plain-g")
          .get("fifo")), (True, False), "and so does the group state")
    r = put_group("fifo-g", b'{"fifo": false}')
    t.ok(r.status == 200 and r.json.get("fifo") is False,
         "PUT {fifo: false} turns it off", r)
    node.publish("fg", b"x0", shardingKey="a")
    node.publish("fg", b"x1", shardingKey="a")
    left = [b for q in queues.values() for b in q[3:]] + ["x0", "x1"]
    t.eq(sorted(m["body"] for m in receive("fg", "fifo-g", max=32)),
         sorted(left), "and a receive gets every message left at once")


def test_group_settings_errors(t):
    for body, desc in ((b"{not json", "bad JSON"),
                       (b"[true]", "not an object"),
                       (b'{"fifo": "yes"}', "fifo not a boolean"),
                       (b'{"fifo": 1}', "fifo a number"),
                       (b'{"fifo": true, "retries": 3}', "unknown member"),
                       (b'{"fifo": true, "fifo": false}', "duplicate key")):
        t.is_error(put_group("sg", body), 400, "PUT with %s: 400" % desc,
                   "BAD_REQUEST")
    for group, desc in (("bad group", "a space"), ("a.b", "a dot"),
                        ("g" * 123, "123 characters"),
                        ("%DLQ%sg", "the DLQ prefix"),
                        ("%RETRY%sg", "the retry prefix")):
        r = put_group(group, b'{"fifo": true}')
        t.is_error(r, 400, "PUT of a group name with %s: 400" % desc,
                   "INVALID_ARGUMENT")
        t.is_error(node.get(group_url(group)), 400,
                   "GET of a group name with %s: 400" % desc,
                   "INVALID_ARGUMENT")
    r = node.get(group_url("%DLQ%sg"))
    t.ok("reserved" in r.json["error"]["message"],
         "the DLQ prefix is called reserved", r)
    t.is_error(node.get(group_url("sg")), 404,
               "no refused PUT made the group: 404", "NOT_FOUND")
    t.is_error(node.get(group_url("never-seen")), 404,
               "GET of a group neither configured nor used: 404",
               "NOT_FOUND")
    r = node.get(group_url("g2"))
    t.ok(r.status == 200 and r.json.get("fifo") is False and
         "cg" in r.json.get("topics", []) and
         "updatedTimestamp" not in r.json,
         "GET of a group only used: 200, fifo false, its topics", r)
    r = put_group("sg", b"")
    t.ok(r.status == 200 and r.json.get("fifo") is False,
         "PUT with an empty body: 200, fifo false", r)
    r = node.req("DELETE", group_url("sg"))
    t.is_error(r, 405, "DELETE /v1/groups/sg: 405", "METHOD_NOT_ALLOWED")


def test_kill_during_acks(t):
    """kill -9 while a consumer receives and acks as fast as it can: no
    message is lost, and none whose ack was answered comes back."""
    node.req("PUT", path("v1", "topics", "kd"), b'{"queues": 4}')
    total = 2000
    lines = b"".join(b'{"body": "m%d"}\n' % i for i in range(total))
    r = node.req("POST", path("v1", "topics", "kd", "messages"), lines,
                 {"Content-Type": "application/x-ndjson"})
    t.eq(r.status, 201, "2000 messages published in one batch")
    confirmed = set()
    unanswered = set()  # acked when the kill came: may or may not be done
    stop = threading.Event()
    going = threading.Event()

    def consumer():
        c = fmtest.Client(node.port, timeout=5)
        try:
            while not stop.is_set():
                msgs = receive("kd", "g", client=c, max=16, invisible=1)
                unanswered.update(m["body"] for m in msgs)
                r = settle("kd", "g", [m["receiptHandle"] for m in msgs],
                           client=c) if msgs else None
                unanswered.clear()
                if r is not None and r.status == 200:
                    confirmed.update(m["body"] for m, x in
                                     zip(msgs, r.json["results"])
                                     if x["ok"])
                if len(confirmed) >= 64:
                    going.set()
        except Exception:
            pass  # the daemon was killed under it
        c.close()

    th = threading.Thread(target=consumer)
    th.start()
    going.wait(10)
    node.kill9()
    stop.set()
    th.join(10)
    node.start()
    everything = {"m%d" % i for i in range(total)}
    needed = everything - confirmed - unanswered
    after = []
    end = time.monotonic() + 10
    done_at = None  # when every needed message was seen
    while time.monotonic() < end:
        msgs = receive("kd", "g", max=1024)
        ack_all("kd", "g", msgs)
        after += [m["body"] for m in msgs]
        seen = set(after)
        if done_at is None and needed <= seen:
            done_at = time.monotonic()
        # the unanswered ones come back after their 1 s, or were acked
        if done_at is not None and (unanswered <= seen or
                                    time.monotonic() - done_at > 1.5):
            break
        time.sleep(0.05)
    t.ok(0 < len(confirmed) < total, "the kill came in the middle (%d acks "
         "answered)" % len(confirmed))
    t.eq(sorted(everything - confirmed - unanswered - set(after)), [],
         "no message is lost across the kill -9")
    t.eq(sorted(confirmed & set(after)), [],
         "no message whose ack was answered comes back")
    t.eq(len(after), len(set(after)), "each comes back once")


def test_sigterm_under_load(t):
    """SIGTERM while consumers receive and ack as fast as they can: the
    daemon must wait for the requests parked on a group commit and refuse
    new ones (MHD aborts when it stops with a suspended connection), exit
    0, and keep every ack it answered."""
    node.req("PUT", path("v1", "topics", "st"), b'{"queues": 4}')
    for k in range(0, 20000, 1000):
        r = node.req("POST", path("v1", "topics", "st", "messages"),
                     b"".join(b'{"body": "m%d"}\n' % i
                              for i in range(k, k + 1000)),
                     {"Content-Type": "application/x-ndjson"})
        t.eq(r.status, 201, "1000 messages published")
    confirmed, lock = set(), threading.Lock()
    stop, going = threading.Event(), threading.Event()
    refused = []

    def consumer():
        c = fmtest.Client(node.port, timeout=10)
        try:
            while not stop.is_set():
                r = c.request("POST", path("v1", "topics", "st", "groups",
                                           "g", "receive", max=8,
                                           invisible=60))
                if r.status == 503:
                    refused.append(r.json["error"]["code"])
                    break
                msgs = r.json["messages"] if r.status == 200 else []
                if not msgs:
                    continue
                r = settle("st", "g", [m["receiptHandle"] for m in msgs],
                           client=c)
                if r.status == 200:
                    with lock:
                        confirmed.update(m["body"] for m, x in
                                         zip(msgs, r.json["results"])
                                         if x["ok"])
                    going.set()
        except Exception:
            pass  # the daemon went away under it
        c.close()

    ths = [threading.Thread(target=consumer) for _ in range(12)]
    for th in ths:
        th.start()
    going.wait(10)
    time.sleep(0.2)
    rc = node.stop()
    stop.set()
    for th in ths:
        th.join(15)
    t.eq(rc, 0, "SIGTERM under a receive/ack load exits 0 (%d acks "
         "answered)" % len(confirmed))
    t.ok(all(code == "SHUTTING_DOWN" for code in refused),
         "requests that came while stopping were refused 503 "
         "SHUTTING_DOWN", refused)
    node.start()
    after = set()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        msgs = receive("st", "g", max=1024, invisible=60)
        if not msgs:
            break
        ack_all("st", "g", msgs)
        after.update(m["body"] for m in msgs)
    t.eq(sorted(confirmed & after), [],
         "no message whose ack was answered comes back")


if __name__ == "__main__":
    fmtest.main([test_competing_receivers, test_invisibility_expiry,
                 test_nack_delay, test_dlq, test_bad_handles, test_tags,
                 test_reset, test_long_poll, test_group_list,
                 test_fifo, test_fifo_wakes_on_ack, test_fifo_group,
                 test_group_settings_errors, test_restart_in_flight,
                 test_kill_during_acks, test_sigterm_under_load],
                timeout=80, start=[node])
