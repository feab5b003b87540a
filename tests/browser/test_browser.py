"""test_browser - the streams in a real browser: headless Debian chromium,
driven by playwright-core (tests/browser/run.mjs), opens a page that
subscribes with new WebSocket(...) and new EventSource(...); messages
published with curl arrive in it, and after the daemon restarts the page
reconnects (WebSocket by its last cursor, EventSource by Last-Event-ID)
without losing or repeating any.

Skips (TAP "1..0 # SKIP") when chromium, node or the npm packages
(tests/browser/install.sh) are missing. Owns only these checks; the
harness is tests/e2e/fmtest.
"""

import os
import subprocess

import chromium
import fmtest
from fmtest import path

node = fmtest.Daemon("browser", {
    "webRoot": os.path.join(chromium.BROWSER_DIR, "page"),
    "defaultTopicQueueNums": 1})
state = {}


def curl_publish(body):
    url = "http://127.0.0.1:%d%s" % (
        node.port, path("v1", "topics", "browser", "messages"))
    out = subprocess.run(["curl", "-sS", "-d", body, url],
                         capture_output=True, timeout=15)
    if out.returncode != 0 or b'"msgId"' not in out.stdout:
        raise RuntimeError("curl publish: %r" % (out,))


class Runner(chromium.Runner):
    """run.mjs: waits until the page got n bodies on both streams."""

    def __init__(self, url):
        super().__init__("run.mjs", url)

    def wait(self, n):
        return self.send("wait %d" % n)


def bodies(a, b):
    return ["m%d" % i for i in range(a, b)]


def test_streams(t):
    r = node.req("PUT", path("v1", "topics", "browser"), b'{"queues": 1}')
    t.ok(r.status in (200, 201), "topic created", r)
    for i in range(5):
        curl_publish("m%d" % i)
    run = Runner("http://127.0.0.1:%d/index.html?topic=browser" % node.port)
    try:
        first = run.answer()
        t.ok(first.get("ready"), "chromium opened the page", first)
        got = run.wait(5)
        t.eq(got.get("ws"), bodies(0, 5), "WebSocket: backlog from earliest")
        t.eq(got.get("sse"), bodies(0, 5), "EventSource: backlog")
        for i in range(5, 10):
            curl_publish("m%d" % i)
        got = run.wait(10)
        t.eq(got.get("ws"), bodies(0, 10),
             "WebSocket: messages published with curl arrive")
        t.eq(got.get("sse"), bodies(0, 10),
             "EventSource: messages published with curl arrive")
        rc = node.stop()
        t.eq(rc, 0, "daemon stops with the page connected")
        node.start()
        for i in range(10, 15):
            curl_publish("m%d" % i)
        got = run.wait(15)
        t.eq(got.get("ws"), bodies(0, 15),
             "WebSocket: after the restart nothing lost, nothing twice")
        t.eq(got.get("sse"), bodies(0, 15),
             "EventSource: after the restart nothing lost, nothing twice")
        t.ok(got.get("wsOpens", 0) >= 2 and got.get("sseOpens", 0) >= 2,
             "both reconnected", got)
    finally:
        run.quit()


if __name__ == "__main__":
    chromium.main([test_streams], node)
