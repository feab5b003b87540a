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

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import fmtest  # noqa: E402
from fmtest import path  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_DIR = os.path.join(fmtest.srcdir(), "tests", "browser")
MODULES = os.path.join(BROWSER_DIR, "node_modules", "playwright-core")


def skip_reason():
    if not os.access(CHROMIUM, os.X_OK):
        return "no %s (apt-get install chromium)" % CHROMIUM
    if shutil.which("node") is None:
        return "no node"
    if not os.path.isdir(MODULES):
        return "no playwright-core (run tests/browser/install.sh)"
    return None


node = fmtest.Daemon("browser", {
    "webRoot": os.path.join(BROWSER_DIR, "page"),
    "defaultTopicQueueNums": 1})
state = {}


def curl_publish(body):
    url = "http://127.0.0.1:%d%s" % (
        node.port, path("v1", "topics", "browser", "messages"))
    out = subprocess.run(["curl", "-sS", "-d", body, url],
                         capture_output=True, timeout=15)
    if out.returncode != 0 or b'"msgId"' not in out.stdout:
        raise RuntimeError("curl publish: %r" % (out,))


class Runner:
    """run.mjs as a child: one command line in, one JSON line out."""

    def __init__(self, url):
        env = dict(os.environ)
        env.pop("ASAN_OPTIONS", None)
        env.pop("UBSAN_OPTIONS", None)
        self.proc = subprocess.Popen(
            ["node", os.path.join(BROWSER_DIR, "run.mjs"), url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=BROWSER_DIR, env=env, text=True)

    def answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("run.mjs ended: %s" % self.proc.stderr.read())
        return json.loads(line)

    def wait(self, n):
        self.proc.stdin.write("wait %d\n" % n)
        self.proc.stdin.flush()
        return self.answer()

    def quit(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


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
    why = skip_reason()
    if why is not None:
        print("1..0 # SKIP %s" % why)
        sys.exit(0)
    fmtest.main([test_streams], timeout=85, start=[node])
