"""test_console - the web console in a real browser (headless Debian
chromium driven by playwright-core through tests/browser/drive.mjs): a
topic made with its form is listed with its queues; a message published
with its form comes back from its pull form, body and all; a consumer
group shows its lag and in-flight count, its reset button moves it (lag
and the group's state agree with the API), and its settings form makes it
FIFO; an error of the API is shown, not swallowed.

Skips (TAP "1..0 # SKIP") like test_browser. Owns only these checks.
"""

import json

import chromium
import fmtest
from fmtest import path

node = fmtest.Daemon("console", {"defaultTopicQueueNums": 2})


class Page(chromium.Runner):
    def __init__(self, url):
        super().__init__("drive.mjs", url)

    def do(self, **cmd):
        return self.send(json.dumps(cmd))

    def quit(self):
        super().quit(json.dumps({"do": "quit"}))


def test_console(t):
    p = Page("http://127.0.0.1:%d/" % node.port)
    try:
        t.ok(p.answer().get("ready"), "chromium opened the console")
        p.do(**{"do": "fill", "sel": "#create-topic input[name=topic]",
                "value": "shop"})
        p.do(**{"do": "fill", "sel": "#create-topic input[name=queues]",
                "value": "3"})
        p.do(**{"do": "click", "sel": "#create-topic button"})
        got = p.do(**{"do": "wait", "sel": "#topic-rows tr", "has": "shop"})
        t.ok(any("shop" in r and "2: 0..0" in r for r in got.get("text", [])),
             "a topic made with the form is listed with its 3 queues", got)
        t.eq(node.get(path("v1", "topics", "shop")).json["queues"], 3,
             "and exists with 3 queues")

        p.do(**{"do": "fill", "sel": "#publish-form input[name=topic]",
                "value": "shop"})
        p.do(**{"do": "fill", "sel": "#publish-form input[name=shardingKey]",
                "value": "cart-1"})
        p.do(**{"do": "fill", "sel": "#publish-form textarea[name=body]",
                "value": "héllo <b>console</b>"})
        p.do(**{"do": "click", "sel": "#publish-form button"})
        got = p.do(**{"do": "wait", "sel": "#publish-result",
                      "has": "msgId"})
        pub = json.loads(got["text"][0])
        t.eq(pub.get("topic"), "shop", "published with the form: " +
             str(pub.get("msgId")))

        p.do(**{"do": "fill", "sel": "#pull-form input[name=topic]",
                "value": "shop"})
        p.do(**{"do": "fill", "sel": "#pull-form input[name=queueId]",
                "value": str(pub["queueId"])})
        p.do(**{"do": "click", "sel": "#pull-form button"})
        got = p.do(**{"do": "wait", "sel": "#pull-rows tr",
                      "has": pub["msgId"]})
        t.ok(any("héllo <b>console</b>" in r for r in got.get("text", [])),
             "the pull form shows it, body as text (no markup)", got)

        for i in range(4):
            node.publish("shop", "m%d" % i)
        r = node.req("POST", path("v1", "topics", "shop", "groups", "billing",
                                  "receive", max="2", wait="0"))
        t.eq(len(r.json["messages"]), 2, "a receive by group billing")
        p.do(**{"do": "click", "sel": "#refresh"})
        got = p.do(**{"do": "wait", "sel": "#group-rows tr",
                      "has": "billing"})
        row = [x for x in got["text"] if "billing" in x]
        st = node.get(path("v1", "topics", "shop", "groups", "billing")).json
        t.ok(row and "shop" in row[0] and "no" in row[0],
             "the group is listed with its topic, FIFO no", row)
        t.eq((st["lag"], st["inFlight"]), (5, 2),
             "the API says lag 5, 2 in flight")
        cells = p.do(**{"do": "text", "sel": "#group-rows tr td.lag"})
        t.eq(cells.get("text"), ["5"], "the console shows lag 5")

        p.do(**{"do": "click",
                "sel": "#group-rows tr[data-group=billing] button:text('Latest')"})
        p.do(**{"do": "wait", "sel": "#status", "has": "Reset billing"})
        cells = p.do(**{"do": "text", "sel": "#group-rows tr td.lag"})
        st = node.get(path("v1", "topics", "shop", "groups", "billing")).json
        t.eq((st["lag"], st["inFlight"]), (0, 0),
             "Latest moved the group past everything (API)")
        t.eq(cells.get("text"), ["0"], "and the console shows lag 0")

        p.do(**{"do": "fill", "sel": "#group-form input[name=group]",
                "value": "billing"})
        p.do(**{"do": "check", "sel": "#group-form input[name=fifo]"})
        p.do(**{"do": "click", "sel": "#group-form button"})
        p.do(**{"do": "wait", "sel": "#status", "has": "FIFO on"})
        t.eq(node.get(path("v1", "groups", "billing")).json.get("fifo"), True,
             "the settings form made the group FIFO")
        got = p.do(**{"do": "wait", "sel": "#group-rows tr", "has": "yes"})
        t.ok(any("billing" in x and "yes" in x for x in got.get("text", [])),
             "and the table says so", got)

        p.do(**{"do": "fill", "sel": "#pull-form input[name=topic]",
                "value": "nope"})
        p.do(**{"do": "fill", "sel": "#pull-form input[name=queueId]",
                "value": "0"})
        p.do(**{"do": "click", "sel": "#pull-form button"})
        got = p.do(**{"do": "wait", "sel": "#status", "has": "NOT_FOUND"})
        t.ok("nope" in (got.get("text") or [""])[0],
             "an API error is shown in the status line", got)
    finally:
        p.quit()


if __name__ == "__main__":
    chromium.main([test_console], node)
