"""test_admin - topics as an administrator sees them (create, update,
list, describe, delete, recreate, permissions), autoCreateTopicEnable,
the node's own endpoints (/v1/broker, /healthz, /metrics) and the name
server's /routes and /routes/{topic}.

Owns only these checks; the harness is fmtest. Two nodes: one with the
defaults, one with autoCreateTopicEnable=false.
"""

import json
import re

import fmtest
from fmtest import path

node = fmtest.Daemon("admin", {"brokerIP1": "127.0.0.1",
                               "brokerName": "broker-e2e",
                               "brokerClusterName": "E2ECluster"})
strict = fmtest.Daemon("noauto", {"autoCreateTopicEnable": "false"})
JSON = {"Content-Type": "application/json"}


def put_topic(d, name, conf):
    return d.req("PUT", path("v1", "topics", name),
                 json.dumps(conf).encode(), JSON)


def queue_ranges(j):
    """[(queueId, minOffset, maxOffset)] from GET /v1/topics/{t}."""
    if not isinstance(j, dict) or not isinstance(j.get("queueOffsets"),
                                                  list):
        return None
    return [(x.get("queueId"), x.get("minOffset"), x.get("maxOffset"))
            for x in j["queueOffsets"]]


def describe(d, name):
    r = d.get(path("v1", "topics", name))
    return r, queue_ranges(r.json)


def topic_names(j):
    items = j.get("topics") if isinstance(j, dict) else None
    if not isinstance(items, list):
        return None
    return [x.get("topic") for x in items]


def test_create_update(t):
    r = put_topic(node, "adm", {"queues": 3, "perm": "rw"})
    t.ok(r.status in (200, 201), "PUT topic creates it (201 or 200)",
         repr(r))
    t.eq(r.status, 201, "PUT of a new topic says 201 Created")
    j = r.json if isinstance(r.json, dict) else {}
    t.eq((j.get("topic"), j.get("queues"), j.get("perm")), ("adm", 3, "rw"),
         "PUT answers with the topic")
    r2 = put_topic(node, "adm", {"queues": 3, "perm": "rw"})
    t.eq(r2.status, 200, "PUT again is idempotent: 200")
    r, qr = describe(node, "adm")
    t.eq(r.status, 200, "GET /v1/topics/{t} -> 200")
    j = r.json if isinstance(r.json, dict) else {}
    t.ok(j.get("topic") == "adm" and j.get("queues") == 3 and
         j.get("perm") == "rw" and isinstance(j.get("createdTimestamp"), int),
         "GET topic: topic, queues, perm, createdTimestamp", repr(j))
    t.eq(qr, [(0, 0, 0), (1, 0, 0), (2, 0, 0)],
         "3 queues, each min 0 max 0", )
    acks = [node.publish("adm", b"a%d" % i).json for i in range(6)]
    t.eq(sorted(a["queueId"] for a in acks), [0, 0, 1, 1, 2, 2],
         "6 publishes spread over the 3 queues")
    r, qr = describe(node, "adm")
    t.eq(qr, [(0, 0, 2), (1, 0, 2), (2, 0, 2)], "per-queue max offsets 2")

    r = put_topic(node, "adm", {"queues": 5})
    t.eq(r.status, 200, "PUT with more queues updates: 200")
    t.eq(describe(node, "adm")[0].json.get("perm"), "rw",
         "a member left out keeps its value")
    r, qr = describe(node, "adm")
    t.eq(qr, [(0, 0, 2), (1, 0, 2), (2, 0, 2), (3, 0, 0), (4, 0, 0)],
         "5 queues now, old messages kept")
    qids = {node.publish("adm", b"b%d" % i).json["queueId"] for i in range(10)}
    t.eq(qids, {0, 1, 2, 3, 4}, "publishes use the new queues too")

    r = node.req("PUT", path("v1", "topics", "dflt"))
    t.eq(r.status, 201, "PUT with no body creates")
    r, qr = describe(node, "dflt")
    t.eq((r.json.get("queues"), r.json.get("perm"), len(qr or [])),
         (8, "rw", 8), "with defaultTopicQueueNums (8) queues and perm rw")

    r = node.get("/v1/topics")
    names = topic_names(r.json)
    t.ok(r.status == 200 and names is not None and "adm" in names and
         "dflt" in names, "GET /v1/topics lists the topics", repr(r))
    if names:
        t.eq(names, sorted(names), "GET /v1/topics is sorted by name")
        adm = [x for x in r.json["topics"] if x.get("topic") == "adm"]
        t.ok(adm and adm[0].get("queues") == 5 and adm[0].get("perm") ==
             "rw" and isinstance(adm[0].get("createdTimestamp"), int),
             "the list gives topic, queues, perm, createdTimestamp",
             repr(adm))


def test_perm(t):
    r = put_topic(node, "adm", {"queues": 5, "perm": "r"})
    t.eq(r.status, 200, "PUT perm r -> 200")
    before = node.max_offsets("adm", 5)
    r = node.publish("adm", b"refused")
    t.ok(r.status in (403, 409, 503) and fmtest.error_shape(r),
         "publish to a read-only topic is refused with a JSON error",
         repr(r))
    r = node.req("POST", path("v1", "topics", "adm", "messages"),
                 b'{"body": "x"}\n', {"Content-Type": "application/x-ndjson"})
    t.ok(r.status in (403, 409, 503) and fmtest.error_shape(r),
         "batch publish to a read-only topic is refused", repr(r))
    t.eq(node.max_offsets("adm", 5), before, "nothing stored")
    r = node.pull("adm", 0, offset=0, max=4)
    t.eq((r.status, len(r.json["messages"]) if r.status == 200 else None),
         (200, 2 + 2), "a read-only topic can still be pulled")
    r = put_topic(node, "adm", {"queues": 5, "perm": "rw"})
    r = node.publish("adm", b"writable again")
    t.eq(r.status, 201, "perm rw again: publish works")


def test_delete_recreate(t):
    r = node.req("DELETE", path("v1", "topics", "adm"))
    t.eq(r.status, 204, "DELETE topic -> 204")
    r = node.get(path("v1", "topics", "adm"))
    t.is_error(r, 404, "GET a deleted topic -> 404 TOPIC_NOT_FOUND",
               "TOPIC_NOT_FOUND")
    r = node.pull("adm", 0)
    t.is_error(r, 404, "pull a deleted topic -> 404", "TOPIC_NOT_FOUND")
    r = node.req("DELETE", path("v1", "topics", "adm"))
    t.is_error(r, 404, "DELETE it again -> 404", "TOPIC_NOT_FOUND")
    r = node.get("/v1/topics")
    t.ok("adm" not in (topic_names(r.json) or []),
         "GET /v1/topics no longer lists it", repr(r))
    r = put_topic(node, "adm", {"queues": 2, "perm": "rw"})
    t.eq(r.status, 201, "recreate -> 201")
    r, qr = describe(node, "adm")
    t.ok(qr is not None and len(qr) == 2 and
         all(mn == mx for _, mn, mx in qr),
         "recreated topic has 2 empty queues", repr(r))
    got = []
    for q in range(2):
        msgs, _ = node.pull_all("adm", q)
        got += msgs
    t.eq(got, [], "recreated topic starts empty: no old messages")
    a = node.publish("adm", b"new life").json
    msgs, _ = node.pull_all("adm", a["queueId"])
    t.eq([fmtest.body_bytes(m) for m in msgs], [b"new life"],
         "recreated topic holds only the new message")
    rc = node.restart()
    t.eq(rc, 0, "restart: SIGTERM exits 0")
    msgs, _ = node.pull_all("adm", a["queueId"])
    t.eq([fmtest.body_bytes(m) for m in msgs], [b"new life"],
         "after restart the old messages stay gone")


def test_no_auto_create(t):
    strict.start()
    r = strict.publish("ghost", b"boo")
    t.is_error(r, 404, "autoCreateTopicEnable=false: publish -> 404",
               "TOPIC_NOT_FOUND")
    r = strict.get("/v1/topics")
    t.ok("ghost" not in (topic_names(r.json) or []),
         "the refused publish created no topic", repr(r))
    r = put_topic(strict, "ghost", {"queues": 1, "perm": "rw"})
    t.eq(r.status, 201, "PUT creates it")
    r = strict.publish("ghost", b"boo")
    t.eq(r.status, 201, "then publishing works")
    rc = strict.stop()
    t.eq(rc, 0, "noauto: SIGTERM exits 0")


def test_broker(t):
    r = node.get("/v1/broker")
    j = r.json if isinstance(r.json, dict) else {}
    t.eq(r.status, 200, "GET /v1/broker -> 200")
    with open(fmtest.srcdir() + "/configure.ac") as f:
        ver = re.search(r"AC_INIT\(\[ferrymq\],\s*\[([^\]]+)\]", f.read())
    want = {"name": "broker-e2e", "cluster": "E2ECluster", "brokerId": 0,
            "role": "ASYNC_MASTER", "flushDiskType": "ASYNC_FLUSH",
            "addr": "http://127.0.0.1:%d" % node.port,
            "version": ver.group(1) if ver else j.get("version")}
    t.eq({k: j.get(k) for k in want}, want, "/v1/broker identity fields")
    t.ok(isinstance(j.get("startedAt"), int), "/v1/broker startedAt")
    cl = j.get("commitLog") or {}
    names = ("minOffset", "writeOffset", "flushedOffset", "dispatchedOffset",
             "indexedOffset", "segments", "bytes")
    t.ok(all(isinstance(cl.get(k), int) for k in names) and
         cl["minOffset"] <= cl["flushedOffset"] <= cl["writeOffset"] and
         cl["dispatchedOffset"] <= cl["writeOffset"] and
         cl["indexedOffset"] <= cl["dispatchedOffset"],
         "commitLog offsets: min <= flushed <= write, indexed <= dispatched "
         "<= write", repr(cl))
    disk = j.get("disk") or {}
    t.ok(isinstance(disk.get("usedRatio"), (int, float)) and
         0 <= disk["usedRatio"] <= 1 and disk.get("writable") is True,
         "disk: usedRatio in 0..1, writable", repr(disk))
    rep = j.get("replication") or {}
    t.ok(isinstance(rep.get("role"), str) and rep.get("slaves") == [],
         "replication: role and no slaves", repr(rep))
    t.ok("wsUrl" in j, "/v1/broker has wsUrl")
    ws = j.get("wsUrl")
    t.ok(ws is None or re.match(r"^ws://127\.0\.0\.1:(%d|%d)/?$" %
                                (node.port, node.port + 1), ws),
         "wsUrl is null or ws:// on this port or the next", repr(ws))
    if ws is None:
        t.diag("wsUrl is null: WebSocket not served yet")
    node.publish("brk", b"x" * 100)
    cl2 = node.get("/v1/broker").json.get("commitLog") or {}
    t.ok(cl2.get("writeOffset", 0) >= cl.get("writeOffset", 0) + 100,
         "writeOffset grows by at least the size of a publish",
         "%r -> %r" % (cl.get("writeOffset"), cl2.get("writeOffset")))


def test_health_metrics(t):
    r = node.get("/healthz")
    t.eq(r.status, 200, "/healthz -> 200")

    def metrics():
        r = node.get("/metrics")
        vals = {}
        bad = []
        for line in r.body.decode("utf-8", "replace").splitlines():
            if not line or line.startswith("#"):
                if line.startswith("#") and not re.match(
                        r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line):
                    bad.append(line)
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?) "
                         r"(-?[0-9.eE+-]+|NaN|[+-]Inf)( -?[0-9]+)?$", line)
            if m:
                vals[m.group(1)] = float(m.group(3))
            else:
                bad.append(line)
        return r, vals, bad

    r, before, bad = metrics()
    t.eq(r.status, 200, "/metrics -> 200")
    t.ok(r.headers.get("Content-Type", "").startswith("text/plain"),
         "/metrics is text/plain", r.headers.get("Content-Type"))
    t.eq(bad, [], "/metrics: every line is Prometheus text format")
    t.ok(len(before) > 0, "/metrics has samples")
    for i in range(7):
        node.publish("metered", b"m%d" % i)
    r, after, bad = metrics()
    name = "ferrymq_published_messages_total"
    t.eq(after.get(name, 0) - before.get(name, 0), 7,
         "%s grew by exactly 7 after 7 publishes" % name)
    text = r.body.decode("utf-8", "replace")
    for m in ("ferrymq_published_messages_total",
              "ferrymq_published_bytes_total", "ferrymq_publish_errors_total",
              "ferrymq_pulled_messages_total",
              "ferrymq_commitlog_write_offset_bytes",
              "ferrymq_commitlog_flushed_offset_bytes",
              "ferrymq_disk_used_ratio", "ferrymq_parked_waiters",
              "ferrymq_topics"):
        kind = "counter" if m.endswith("_total") else "gauge"
        t.ok(m in after and "# HELP %s " % m in text and
             "# TYPE %s %s\n" % (m, kind) in text,
             "/metrics has %s with HELP and TYPE %s" % (m, kind))


def test_routes(t):
    r = node.get("/routes")
    t.eq(r.status, 200, "/routes -> 200")
    j = r.json if isinstance(r.json, dict) else {}
    addr = "http://127.0.0.1:%d" % node.port
    t.eq(j.get("clusters"), {"E2ECluster": ["broker-e2e"]},
         "/routes clusters: broker names by cluster")
    b = j.get("brokers")
    ok = isinstance(b, list) and len(b) == 1 and isinstance(b[0], dict)
    t.ok(ok and b[0].get("cluster") == "E2ECluster" and
         b[0].get("brokerName") == "broker-e2e" and
         b[0].get("addrs") == {"0": addr}, "/routes brokers: this one",
         repr(b))
    nodes = b[0].get("nodes") if ok else None
    t.ok(isinstance(nodes, list) and len(nodes) == 1 and
         nodes[0].get("brokerId") == 0 and nodes[0].get("addr") == addr and
         nodes[0].get("alive") is True and
         isinstance(nodes[0].get("lastHeartbeat"), int),
         "/routes nodes: brokerId, addr, lastHeartbeat, alive",
         repr(nodes))
    put_topic(node, "routed", {"queues": 4, "perm": "rw"})
    r = node.get(path("routes", "routed"))
    j = r.json if isinstance(r.json, dict) else {}
    t.eq(r.status, 200, "/routes/{topic} -> 200")
    t.eq(j.get("topic"), "routed", "route: topic")
    t.eq(j.get("brokers"), [{"cluster": "E2ECluster",
                             "brokerName": "broker-e2e",
                             "addrs": {"0": addr}}],
         "route: brokers [{cluster, brokerName, addrs by brokerId}]")
    qs = j.get("queues")
    t.ok(isinstance(qs, list) and len(qs) == 1 and
         qs[0].get("brokerName") == "broker-e2e" and
         qs[0].get("readQueueNums") == 4 and
         qs[0].get("writeQueueNums") == 4 and qs[0].get("perm") == 6,
         "route: queues [{brokerName, readQueueNums 4, writeQueueNums 4, "
         "perm}]", repr(qs))
    r = node.get(path("routes", "no-such-topic"))
    t.is_error(r, 404, "/routes/{unknown} -> 404")


if __name__ == "__main__":
    fmtest.main([test_create_update, test_perm, test_delete_recreate,
                 test_no_auto_create, test_broker, test_health_metrics,
                 test_routes], timeout=85, start=[node])
