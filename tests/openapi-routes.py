"""openapi-routes - api/openapi.yaml describes exactly the routes of the
HTTP server's route table (src/http/server.c): every (method, path) of
the table is in the document and every operation of the document is in
the table (TAP: one line per route, then one per operation the table
lacks).

Owns only this comparison; stdlib only (the document is read by its
indentation, as it is written: two-space paths, four-space methods).
"""

import os
import re
import sys

TOP = os.environ.get("FERRYMQ_SRCDIR", ".")


def table():
    text = open(os.path.join(TOP, "src/http/server.c")).read()
    return set(re.findall(r'\{"([A-Z]+)", "(/[^"]*)", fm_h_\w+\}', text))


def document():
    ops, cur = set(), None
    for line in open(os.path.join(TOP, "api/openapi.yaml")):
        m = re.match(r"^  (/\S*):\s*$", line)
        if m:
            cur = m.group(1)
            continue
        m = re.match(r"^    (get|put|post|delete|patch|head):\s*$", line)
        if m and cur is not None:
            ops.add((m.group(1).upper(), cur))
        elif re.match(r"^\S", line):
            cur = None
    return ops


def main():
    routes, doc = table(), document()
    checks = [(r, r in doc, "documented in api/openapi.yaml")
              for r in sorted(routes)]
    checks += [(o, False, "documented but not in the route table")
               for o in sorted(doc - routes)]
    print("1..%d" % len(checks))
    for i, ((method, p), ok, what) in enumerate(checks, 1):
        print("%s %d - %s %s %s" % ("ok" if ok else "not ok", i, method,
                                    p.replace("#", "\\#"), what))
    if not routes:
        print("Bail out! no route found in src/http/server.c")
    return 0


if __name__ == "__main__":
    sys.exit(main())
