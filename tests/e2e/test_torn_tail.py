"""test_torn_tail - recovery cuts a torn tail off the commit log.

Publishes enough (SYNC_FLUSH) to roll into a second segment, kills the
daemon with SIGKILL, then writes bytes right after the last record of the
newest segment, as a crash in the middle of an append would leave them:
  A. a partial copy of the last record (its header, relocated, and part
     of its payload);
  B. random garbage;
  C. a whole copy of the last record, relocated, with one payload byte
     flipped (right length, wrong CRC).
After each restart every acknowledged message must be served byte-exact,
the torn bytes must be gone (zeroed), and a new publish must take the next
queue offset, land where the torn bytes were and read back after another
SIGKILL. Finally a clean SIGTERM restart keeps everything.

The record layout used here is the one drawn in src/store/record.h:
total_size u32 @0, magic u32 @4, crc u32 @8, ..., log_offset u64 @16,
little-endian, 80-byte header. Segment files are commitlog/<20 digits>.

Owns only these checks; the harness is fmtest.
"""

import os
import random
import struct

import fmtest
from fmtest import body_bytes

REC_MAGIC = 0x464D5131
BLANK_MAGIC = 0x464D5142
HEADER = 80
QUEUES = 2
TOPIC = "torn"
node = fmtest.Daemon("torn", {"flushDiskType": "SYNC_FLUSH",
                              "defaultTopicQueueNums": QUEUES})
expect = {q: [] for q in range(QUEUES)}  # queue -> bodies by offset


def publish(t, body, desc):
    r = node.publish(TOPIC, body)
    if r.status != 201:
        t.ok(False, desc + ": publish -> 201", repr(r))
        return None
    q, off = r.json["queueId"], r.json["queueOffset"]
    if off != len(expect[q]):
        t.ok(False, desc + ": acked offset is the next of its queue",
             "queue %d offset %d, expected %d" % (q, off, len(expect[q])))
    expect[q].append(body)
    return q, off


def check_all(t, desc):
    for q in range(QUEUES):
        msgs, last = node.pull_all(TOPIC, q)
        got = [body_bytes(m) for m in msgs]
        t.ok(got == expect[q] and last["maxOffset"] == len(expect[q]),
             "%s: queue %d holds its %d messages byte-exact" %
             (desc, q, len(expect[q])),
             "got %d messages, maxOffset %s; first difference at %s" %
             (len(got), last["maxOffset"],
              next((i for i, (a, b) in enumerate(zip(got, expect[q]))
                    if a != b), "the end")))


def segments():
    d = os.path.join(node.data, "commitlog")
    names = [n for n in os.listdir(d) if len(n) == 20 and n.isdigit()]
    return d, sorted(names, key=int)


def scan(path):
    """(end of the last good-looking record, start of it) in a segment."""
    with open(path, "rb") as f:
        data = f.read()
    pos, last = 0, None
    while pos + HEADER <= len(data):
        size, magic = struct.unpack_from("<II", data, pos)
        if magic != REC_MAGIC or size < HEADER or pos + size > len(data):
            break
        last = pos
        pos += size
    return pos, last, data


def tear(t, variant):
    """Kill -9, write torn bytes after the newest segment's last record.
    Returns (segment path, torn offset, torn length)."""
    node.kill9()
    d, names = segments()
    seg = os.path.join(d, names[-1])
    base = int(names[-1])
    end, last, data = scan(seg)
    t.ok(last is not None, "%s: newest segment %s has records" %
         (variant, names[-1]))
    rec = bytearray(data[last:end])
    t.eq(struct.unpack_from("<Q", rec, 16)[0], base + last,
         "%s: the last record's log_offset is its position" % variant)
    struct.pack_into("<Q", rec, 16, base + end)
    if variant == "partial copy":
        torn = bytes(rec[:HEADER + (len(rec) - HEADER) // 2])
    elif variant == "garbage":
        torn = random.Random(7).randbytes(3000)
    else:
        rec[-1] ^= 0x55
        torn = bytes(rec)
    with open(seg, "r+b") as f:
        f.seek(end)
        f.write(torn)
    return seg, end, len(torn)


def test_setup(t):
    rng = random.Random(1)
    for i in range(180):
        n = rng.randrange(6000, 12000)
        body = b"m%03d:" % i + (rng.randbytes(n) if i % 3 == 0 else
                                (b"%d " % i * n)[:n])
        if publish(t, body, "setup %d" % i) is None:
            return
    d, names = segments()
    t.ok(len(names) >= 2, "1.6 MB of messages rolled into a second segment",
         repr(names))
    check_all(t, "before any crash")


def torn_case(t, variant):
    seg, off, n = tear(t, variant)
    node.start()
    check_all(t, "%s: after restart" % variant)
    with open(seg, "rb") as f:
        f.seek(off)
        after = f.read(n)
    t.ok(after == b"\0" * n or len(after) < n and after == b"\0" *
         len(after), "%s: the %d torn bytes are gone (zeroed)" %
         (variant, n), "first bytes now %r" % after[:24])
    body = b"after " + variant.encode() + b" " + bytes(range(256))
    pos = publish(t, body, variant)
    if pos is None:
        return
    q, off_q = pos
    r = node.pull(TOPIC, q, offset=off_q)
    t.eq([body_bytes(m) for m in r.json["messages"]], [body],
         "%s: a new publish takes the next offset and reads back" % variant)
    _, names = segments()
    end, last, _ = scan(seg)
    t.ok(os.path.basename(seg) != names[-1] or last == off,
         "%s: the new record was written where the torn bytes were" %
         variant, "last record at %s, torn at %d" % (last, off))
    node.kill9()
    node.start()
    check_all(t, "%s: after one more kill -9" % variant)


def test_partial_copy(t):
    torn_case(t, "partial copy")


def test_garbage(t):
    torn_case(t, "garbage")


def test_bad_crc(t):
    torn_case(t, "flipped byte")


def test_clean_restart(t):
    rc = node.stop()
    t.eq(rc, 0, "SIGTERM exits 0")
    node.start()
    check_all(t, "after a clean restart")
    publish(t, b"the very last", "clean")
    rc = node.stop()
    t.eq(rc, 0, "SIGTERM exits 0 again")
    node.start()
    check_all(t, "after a second clean restart")


if __name__ == "__main__":
    fmtest.main([test_setup, test_partial_copy, test_garbage, test_bad_crc,
                 test_clean_restart], timeout=88, start=[node])
