"""chromium - what the browser tests share: whether they can run, and a
node script (run.mjs, drive.mjs) as a child that drives Debian's chromium
through playwright-core, one line in, one JSON line out.

Owns only the child process; the scripts own the browser.
"""

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import fmtest  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
BROWSER_DIR = os.path.join(fmtest.srcdir(), "tests", "browser")
MODULES = os.path.join(BROWSER_DIR, "node_modules", "playwright-core")


def skip_reason():
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return "no %s (apt-get install chromium)" % CHROMIUM
    if shutil.which("node") is None:
        return "no node"
    if not os.path.isdir(MODULES):
        return "no playwright-core (run tests/browser/install.sh)"
    return None


class Runner:
    """A node script driving chromium at url, as a child."""

    def __init__(self, script, url):
        env = dict(os.environ)
        env.pop("ASAN_OPTIONS", None)
        env.pop("UBSAN_OPTIONS", None)
        self.proc = subprocess.Popen(
            ["node", os.path.join(BROWSER_DIR, script), url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=BROWSER_DIR, env=env, text=True)

    def answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("%s ended: %s" % (self.proc.args[1],
                                                 self.proc.stderr.read()))
        return json.loads(line)

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def quit(self, line="quit"):
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.close()
            self.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def main(cases, node):
    """fmtest.main, or a TAP skip when the browser cannot run."""
    why = skip_reason()
    if why is not None:
        print("1..0 # SKIP %s" % why)
        sys.exit(0)
    fmtest.main(cases, timeout=85, start=[node])
