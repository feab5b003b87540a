"""test_errors - every way a client can be wrong gets the fitting status
and the contract's error body {"error": {"code", "message"}}, never a bare
500, and the node keeps serving afterwards.

Owns only these checks; the harness is fmtest.
"""

import fmtest
from fmtest import path

MAXMSG = 4096
node = fmtest.Daemon("errors", {"maxMessageSize": MAXMSG,
                                "defaultTopicQueueNums": 2})
JSON = {"Content-Type": "application/json"}
NDJSON = {"Content-Type": "application/x-ndjson"}


def test_setup(t):
    r = node.publish("good", b"one")
    t.eq(r.status, 201, "seed publish")


def test_400(t):
    cases = [
        ("POST", "/v1/topics/a.b/messages", b"x", None, "topic with '.'"),
        ("POST", "/v1/topics/bad%20name/messages", b"x", None,
         "topic with a space"),
        ("POST", "/v1/topics/%s/messages" % ("t" * 128), b"x", None,
         "topic of 128 characters"),
        ("POST", "/v1/topics/caf%C3%A9/messages", b"x", None,
         "non-ASCII topic"),
        ("PUT", "/v1/topics/a.b", b'{"queues": 1}', JSON, "PUT bad topic"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     offset=-1), None, None, "offset=-1"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     offset="abc"), None, None, "offset=abc"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     offset="1x"), None, None, "offset=1x"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     offset=999999), None, None, "offset beyond maxOffset"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     offset="99999999999999999999999"), None, None,
         "offset overflowing 64 bits"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     max=0), None, None, "max=0"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     max=-3), None, None, "max=-3"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     max="ten"), None, None, "max=ten"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     wait=-1), None, None, "wait=-1"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     wait="soon"), None, None, "wait=soon"),
        ("GET", path("v1", "topics", "good", "queues", "x", "messages"),
         None, None, "queueId=x"),
        ("GET", path("v1", "topics", "good", "messages", begin="yesterday",
                     end=1), None, None, "begin not a number"),
        ("GET", path("v1", "topics", "good", "messages", begin=2000,
                     end=1000), None, None, "end before begin"),
        ("GET", path("v1", "topics", "good", "messages"), None, None,
         "query without key or begin"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     max=1025), None, None, "max=1025"),
        ("GET", path("v1", "topics", "good", "queues", 0, "messages",
                     wait=31), None, None, "wait=31"),
        ("GET", path("v1", "messages", "not-a-msgid"), None, None,
         "malformed msgId"),
        ("POST", path("v1", "topics", "good", "messages", delay=1,
                      deliverAt=1), b"x", None, "both delay and deliverAt"),
        ("PUT", "/v1/topics/newt", b"{not json", JSON, "PUT bad JSON"),
        ("PUT", "/v1/topics/newt", b'{"queues": 0}', JSON, "queues=0"),
        ("PUT", "/v1/topics/newt", b'{"queues": 100000}', JSON,
         "queues=100000"),
        ("PUT", "/v1/topics/newt", b'{"queues": "8"}', JSON,
         "queues as a string"),
        ("PUT", "/v1/topics/newt", b'{"queues": 2, "perm": "x"}', JSON,
         "perm=x"),
        ("PUT", "/v1/topics/newt", b'[1, 2]', JSON, "PUT body not an object"),
        ("POST", path("v1", "topics", "good", "messages"), b'{"body": ',
         NDJSON, "batch with bad JSON"),
        ("POST", path("v1", "topics", "good", "messages", delay="later"),
         b"x", None, "delay=later"),
        ("POST", path("v1", "topics", "good", "messages", tag="t" * 300),
         b"x", None, "tag of 300 characters"),
    ]
    for method, url, body, headers, desc in cases:
        r = node.req(method, url, body, headers)
        t.is_error(r, 400, "%s -> 400" % desc)
    r = node.get(path("v1", "topics", "newt"))
    t.eq(r.status, 404, "no refused PUT created the topic")
    r = node.pull("good", 0, offset=0)
    r2 = node.pull("good", 1, offset=0)
    t.eq(r.json["maxOffset"] + r2.json["maxOffset"], 1,
         "no refused publish stored anything")


def test_404(t):
    for url, desc, code in (
            ("/v1/nope", "unknown route", None),
            ("/nope/deeper/still", "unknown deep route", None),
            (path("v1", "topics", "absent"), "unknown topic",
             "TOPIC_NOT_FOUND"),
            (path("v1", "topics", "absent", "queues", 0, "messages"),
             "pull from unknown topic", "TOPIC_NOT_FOUND"),
            (path("v1", "topics", "good", "queues", 7, "messages"),
             "pull from a queue the topic does not have", "QUEUE_NOT_FOUND"),
            (path("v1", "messages", "f" * 32), "unknown msgId",
             "MESSAGE_NOT_FOUND"),
            (path("routes", "absent"), "route of unknown topic", None),
            ("/nosuchfile.js", "unknown console file", None)):
        r = node.get(url)
        t.is_error(r, 404, "%s -> 404" % desc, code)
    r = node.req("DELETE", path("v1", "topics", "absent"))
    t.is_error(r, 404, "DELETE unknown topic -> 404", "TOPIC_NOT_FOUND")


def test_405(t):
    for method, url, must_allow in (
            ("DELETE", "/healthz", "GET"),
            ("POST", "/v1/broker", "GET"),
            ("PUT", path("v1", "topics", "good", "messages"), "POST"),
            ("POST", path("v1", "topics", "good", "queues", 0, "messages"),
             "GET"),
            ("PATCH", path("v1", "topics", "good"), "PUT")):
        r = node.req(method, url, b"" if method != "DELETE" else None)
        t.is_error(r, 405, "%s %s -> 405" % (method, url),
                   "METHOD_NOT_ALLOWED")
        allow = [m.strip() for m in (r.headers.get("Allow") or "").split(",")]
        t.ok(must_allow in allow and method not in allow,
             "%s %s: Allow lists %s, not %s" % (method, url, must_allow,
                                                 method),
             "Allow: %r" % r.headers.get("Allow"))


def test_413(t):
    r = node.publish("good", b"z" * (MAXMSG + 1))
    t.is_error(r, 413, "body over maxMessageSize -> 413",
               "PAYLOAD_TOO_LARGE")
    # Refused from Content-Length alone: the server must not wait for the
    # body it is going to refuse.
    raw = (b"POST /v1/topics/good/messages HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 1000000000\r\n\r\n" + b"z" * 100)
    out = fmtest.raw_request(node.port, raw, timeout=10)
    t.ok(out.startswith(b"HTTP/1.1 413"),
         "Content-Length of 1 GB -> 413 without reading the body",
         out[:300])


def test_smuggling(t):
    raw = (b"POST /v1/topics/good/messages HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           b"5\r\nhello\r\n0\r\n\r\n")
    out = fmtest.raw_request(node.port, raw)
    try:
        r = fmtest.parse_response(out)
    except Exception:
        r = None
    t.ok(r is not None and r.status == 400 and fmtest.error_shape(r),
         "Content-Length with Transfer-Encoding -> 400 JSON error",
         out[:400])
    r = node.pull("good", 0, offset=0)
    r2 = node.pull("good", 1, offset=0)
    t.eq(r.json["maxOffset"] + r2.json["maxOffset"], 1,
         "the smuggling attempt stored nothing")


def test_bad_http(t):
    out = fmtest.raw_request(node.port, b"GARBAGE\r\n\r\n")
    t.ok(out == b"" or out.startswith(b"HTTP/1.1 400"),
         "a garbage request line gets 400 or a closed connection",
         out[:200])
    out = fmtest.raw_request(
        node.port, b"GET /v1/topics/good/queues/0/messages?offset=%zz "
        b"HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    t.ok(out.startswith(b"HTTP/1.1 400") or out.startswith(b"HTTP/1.1 404"),
         "a bad percent-escape -> 400 or 404, not 500", out[:200])


def test_still_alive(t):
    r = node.get("/healthz")
    t.eq(r.status, 200, "after all the errors /healthz is 200")
    r = node.publish("good", b"still here")
    t.eq(r.status, 201, "and a publish works")
    if r.status == 201:
        m = node.pull("good", r.json["queueId"],
                      offset=r.json["queueOffset"]).json["messages"]
        t.eq([fmtest.body_bytes(x) for x in m], [b"still here"],
             "and reads back")
    r = node.get(path("v1", "topics", "good"))
    t.ok(r.status == 200 and isinstance(r.json, dict),
         "and the topic is intact", repr(r))


if __name__ == "__main__":
    fmtest.main([test_setup, test_400, test_404, test_405, test_413,
                 test_smuggling, test_bad_http, test_still_alive],
                timeout=85, start=[node])
