"""test_durability - acknowledged means stored, across kill -9.

With flushDiskType=SYNC_FLUSH, 8 publisher threads (each on its own
keep-alive connection, each body naming its thread and sequence number)
publish to a 4-queue topic while the daemon is killed with SIGKILL twice
and restarted on the same dir and port. A connection error is retried
with a NEW sequence number, so an unacknowledged message may be stored or
not, but never twice. Afterwards every queue is pulled from 0 and:
  - every message that got a 201 is present exactly once, at the
    acknowledged queueId/queueOffset, with its msgId and exact bytes;
  - nothing is present that was never sent, nothing twice;
  - each queue's offsets run 0, 1, 2, ... with maxOffset = count;
  - per publisher, messages within one queue are in send order.

Limit: SIGKILL keeps the page cache, so this proves the recovery logic
and the ack ordering, not that fdatasync reached the platter.

Owns only these checks; the harness is fmtest.
"""

import http.client
import random
import re
import threading
import time

import fmtest
from fmtest import body_bytes, path

THREADS = 8
QUEUES = 4
CAP = 1000  # sends per publisher: bounds the run to a few thousand messages
TOPIC = "durable"
node = fmtest.Daemon("durable", {"flushDiskType": "SYNC_FLUSH",
                                 "defaultTopicQueueNums": QUEUES})
stop = threading.Event()
PRINTABLE = bytes(32 + i % 95 for i in range(256))
HEAD = re.compile(rb"^t(\d\d)-s(\d{6})-")


def make_body(tid, seq):
    """Deterministic, distinct, 20..2100 bytes; every fourth is binary."""
    rng = random.Random(tid * 1000003 + seq)
    tail = rng.randbytes(rng.randrange(8, 2100))
    if seq % 4 != 3:
        tail = tail.translate(PRINTABLE)
    return b"t%02d-s%06d-" % (tid, seq) + tail


class Publisher(threading.Thread):
    def __init__(self, tid):
        super().__init__(daemon=True)
        self.tid = tid
        self.sent = {}  # seq -> body, every request started
        self.acked = {}  # seq -> (queueId, queueOffset, msgId)
        self.conn_errors = 0
        self.refusals = []  # (seq, status, body) of non-201 answers
        self.client = fmtest.Client(node.port, timeout=10)

    def run(self):
        url = path("v1", "topics", TOPIC, "messages")
        seq = 0
        while not stop.is_set() and seq < CAP:
            body = make_body(self.tid, seq)
            self.sent[seq] = body
            try:
                r = self.client.request("POST", url, body)
            except (OSError, http.client.HTTPException):
                self.conn_errors += 1
                seq += 1
                time.sleep(0.02)
                continue
            if r.status == 201:
                j = r.json
                self.acked[seq] = (j["queueId"], j["queueOffset"],
                                   j["msgId"])
            else:
                self.refusals.append((seq, r.status, r.body[:200]))
                time.sleep(0.02)
            seq += 1
        self.client.close()


def total_acked(pubs):
    return sum(len(p.acked) for p in pubs)


def run_until(pubs, more, seconds):
    """Let the publishers run until `more` new acks or `seconds` pass."""
    start = total_acked(pubs)
    deadline = time.monotonic() + seconds
    while (time.monotonic() < deadline and
           total_acked(pubs) - start < more and
           any(p.is_alive() for p in pubs)):
        time.sleep(0.02)
    return total_acked(pubs) - start


def test_kill9_while_publishing(t):
    pubs = [Publisher(i) for i in range(THREADS)]
    for p in pubs:
        p.start()
    try:
        n1 = run_until(pubs, 1200, 5.0)
        t.ok(n1 > 0, "publishers got acks before the first kill -9",
             "acked %d" % n1)
        node.kill9()
        node.start()
        n2 = run_until(pubs, 1200, 5.0)
        t.ok(n2 > 0, "publishers got acks after the first restart",
             "acked %d" % n2)
        node.kill9()
        node.start()
        n3 = run_until(pubs, 600, 3.0)
        t.ok(n3 > 0, "publishers got acks after the second restart",
             "acked %d" % n3)
    finally:
        stop.set()
        for p in pubs:
            p.join(20)
    t.ok(not any(p.is_alive() for p in pubs), "publishers finished")
    t.diag("acked %d+%d+%d, connection errors %d" %
           (n1, n2, n3, sum(p.conn_errors for p in pubs)))
    refusals = [(p.tid,) + x for p in pubs for x in p.refusals]
    t.eq(refusals, [], "no publish got an error answer")
    verify(t, pubs)


def verify(t, pubs):
    by_pos = {}  # (queueId, queueOffset) -> message
    seen = {}  # (tid, seq) -> [(queueId, queueOffset)]
    problems = []
    for q in range(QUEUES):
        msgs, last = node.pull_all(TOPIC, q)
        offs = [m["queueOffset"] for m in msgs]
        t.eq(offs, list(range(len(msgs))),
             "queue %d: offsets contiguous from 0 in order" % q)
        t.eq((last["minOffset"], last["maxOffset"]), (0, len(msgs)),
             "queue %d: minOffset 0, maxOffset = %d messages" %
             (q, len(msgs)))
        t.eq({m["queueId"] for m in msgs} - {q}, set(),
             "queue %d: every message says queueId %d" % (q, q))
        last_seq = {}
        for m in msgs:
            b = body_bytes(m)
            h = HEAD.match(b)
            if not h:
                problems.append("q%d@%d: body not ours: %r" %
                                (q, m["queueOffset"], b[:40]))
                continue
            tid, seq = int(h.group(1)), int(h.group(2))
            if tid >= THREADS or pubs[tid].sent.get(seq) != b:
                problems.append("q%d@%d: t%d s%d never sent with these bytes"
                                % (q, m["queueOffset"], tid, seq))
            if last_seq.get(tid, -1) >= seq:
                problems.append("q%d@%d: t%d s%d after s%d: out of order" %
                                (q, m["queueOffset"], tid, seq,
                                 last_seq[tid]))
            last_seq[tid] = seq
            seen.setdefault((tid, seq), []).append((q, m["queueOffset"]))
            by_pos[(q, m["queueOffset"])] = m
    t.eq(problems[:20], [], "every stored message was sent, in send order "
         "per publisher and queue (%d problems)" % len(problems))
    dups = {k: v for k, v in seen.items() if len(v) > 1}
    t.eq(dups, {}, "no message stored twice")
    lost = []
    moved = []
    for p in pubs:
        for seq, (q, off, mid) in sorted(p.acked.items()):
            m = by_pos.get((q, off))
            if m is None:
                lost.append((p.tid, seq, q, off))
            elif (m["msgId"] != mid or
                  body_bytes(m) != p.sent[seq]):
                moved.append((p.tid, seq, q, off, seen.get((p.tid, seq))))
    acked = total_acked(pubs)
    t.ok(acked >= 1000, "a meaningful number of acks (%d)" % acked)
    t.eq(lost[:20], [], "every acknowledged message is present (%d of %d "
         "lost)" % (len(lost), acked))
    t.eq(moved[:20], [], "every acknowledged message is at its acked "
         "queueId/queueOffset with its msgId and bytes (%d wrong)" %
         len(moved))
    unacked = sum(1 for k in seen if k[1] not in pubs[k[0]].acked)
    t.diag("stored %d messages, %d of them never acknowledged" %
           (len(seen), unacked))
    sample = [(p.tid, s, v) for p in pubs for s, v in
              list(sorted(p.acked.items()))[::97]]
    bad = []
    for tid, seq, (q, off, mid) in sample:
        r = node.get(path("v1", "messages", mid))
        if r.status != 200 or body_bytes(r.json) != pubs[tid].sent[seq]:
            bad.append((tid, seq, mid, r.status))
    t.eq(bad, [], "a sample of %d acked msgIds is found by msgId after the "
         "crashes" % len(sample))


def test_sync_ack_is_flushed(t):
    """SYNC_FLUSH: by the time a 201 arrives, the commit log is flushed at
    least past the record (seen through /v1/broker, one publisher)."""
    short = []
    for i in range(20):
        before = node.get("/v1/broker").json["commitLog"]["writeOffset"]
        body = b"sync-%d-" % i + b"s" * (i * 50)
        r = node.publish(TOPIC, body)
        cl = node.get("/v1/broker").json["commitLog"]
        if r.status != 201 or cl["flushedOffset"] < before + len(body) + 80:
            short.append((i, r.status, before, cl))
    t.eq(short, [], "every SYNC_FLUSH ack comes after the flush covering it")


def test_after_clean_restart(t):
    counts = node.max_offsets(TOPIC, QUEUES)
    rc = node.stop()
    t.eq(rc, 0, "SIGTERM exits 0 after recovery")
    node.start()
    t.eq(node.max_offsets(TOPIC, QUEUES), counts,
         "a clean restart keeps every queue's maxOffset")
    r = node.publish(TOPIC, b"after everything", shardingKey="x")
    if t.eq(r.status, 201, "publish after the crashes -> 201"):
        q, off = r.json["queueId"], r.json["queueOffset"]
        t.eq(off, counts[q], "it gets the next offset of its queue")
        msgs = node.pull(TOPIC, q, offset=off).json["messages"]
        t.eq([body_bytes(m) for m in msgs], [b"after everything"],
             "and reads back")


if __name__ == "__main__":
    fmtest.main([test_kill9_while_publishing, test_sync_ack_is_flushed,
                 test_after_clean_restart],
                timeout=88, start=[node])
