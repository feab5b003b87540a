"""fmtest - the harness for end-to-end tests of the real ferrymq daemon.

Owns: starting and stopping daemons on loopback (a fresh port and data dir
each), HTTP helpers, a small TAP writer, the per-file watchdog and the
cleanup of every process and directory it made. It does not own any
expectation about the API: those live in the test_*.py files.

Invariants:
  - Every daemon binds 127.0.0.1 only, on a port picked by the kernel, and
    keeps that port and data dir across restarts.
  - Every process started here is killed and every temp dir removed when the
    test file ends, whether it passed, failed, raised or timed out.
  - A sanitizer report anywhere in a daemon's stderr fails the file.
  - Output is TAP on stdout: one line per check, plan at the end, '#'
    diagnostics (with the tail of the daemon's stderr) under failures.
"""

import atexit
import base64
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

READY_TIMEOUT = 30.0  # the sanitizer build starts slowly
STOP_TIMEOUT = 20.0
SEGMENT_SIZE = 1 << 20  # small segments make rolling cheap to reach

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:")

_daemons = []
_dirs = []


def binary():
    """The daemon under test: $FERRYMQ_BIN (set by make check)."""
    path = os.environ.get("FERRYMQ_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "src", "ferrymq")
    return os.path.abspath(path)


def srcdir():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("FERRYMQ_SRCDIR") or os.path.join(here, "..", "..")


def tempdir(prefix="fm-e2e-"):
    """A fresh directory under $TMPDIR, removed at exit."""
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


def free_port():
    """A loopback port that was free a moment ago (bind :0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _cleanup():
    for d in _daemons:
        d.kill_quietly()
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


# ---- TAP ----


class Tap:
    """One TAP stream. Checks print at once; the plan comes at the end."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.lock = threading.Lock()

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            print("# " + line, flush=True)

    def ok(self, cond, desc, diag=None):
        with self.lock:
            self.n += 1
            desc = desc.replace("#", "\\#").replace("\n", " ")
            if cond:
                print("ok %d - %s" % (self.n, desc), flush=True)
                return True
            self.failed += 1
            print("not ok %d - %s" % (self.n, desc), flush=True)
            if diag is not None:
                self.diag(diag)
            if self.failed <= 5:  # enough context without drowning the log
                for d in _daemons:
                    if d.starts:
                        self.diag("daemon %s stderr (tail):" % d.name)
                        self.diag(d.stderr_tail(15))
            return False

    def eq(self, got, want, desc):
        return self.ok(got == want, desc,
                       "got:  %s\nwant: %s" % (_short(got), _short(want)))

    def is_error(self, resp, status, desc, code=None):
        """resp has this status and the contract's error body."""
        good = resp.status == status and error_shape(resp)
        if good and code is not None:
            good = resp.json["error"]["code"] == code
        return self.ok(good, desc,
                       "status %s (want %s%s), body %s" %
                       (resp.status, status, ", code " + code if code else "",
                        _short(resp.body)))

    def done(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.failed else 0


def _short(v, limit=600):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


# The error codes api/openapi.yaml lists.
ERROR_CODES = frozenset((
    "BAD_REQUEST", "INVALID_ARGUMENT", "NOT_FOUND", "TOPIC_NOT_FOUND",
    "QUEUE_NOT_FOUND", "MESSAGE_NOT_FOUND", "METHOD_NOT_ALLOWED", "CONFLICT",
    "GONE", "PAYLOAD_TOO_LARGE", "INTERNAL", "IO_ERROR", "CORRUPT",
    "NOT_WRITABLE", "BUSY", "TIMEOUT", "SHUTTING_DOWN", "OUT_OF_MEMORY",
    "DISK_FULL", "NO_SPACE"))


def error_shape(resp):
    """The contract's error form: {"error": {"code", "message"}}, JSON,
    with a code from the API's list and a non-empty message."""
    j = resp.json
    return (isinstance(j, dict) and isinstance(j.get("error"), dict) and
            j["error"].get("code") in ERROR_CODES and
            isinstance(j["error"].get("message"), str) and
            j["error"]["message"] != "" and
            resp.headers.get("Content-Type", "").startswith(
                "application/json"))


# Message fields api/openapi.yaml requires, with their JSON types.
MESSAGE_FIELDS = (("msgId", str), ("topic", str), ("queueId", int),
                  ("queueOffset", int), ("tag", (str, type(None))),
                  ("keys", list), ("properties", dict),
                  ("bornTimestamp", int), ("storeTimestamp", int),
                  ("reconsumeTimes", int), ("body", str),
                  ("bodyEncoding", str))


def message_problems(m):
    """What is wrong with the shape of one message ([] if nothing)."""
    if not isinstance(m, dict):
        return ["not an object: %r" % (m,)]
    out = []
    for k, ty in MESSAGE_FIELDS:
        if k not in m:
            out.append("missing " + k)
        elif not isinstance(m[k], ty) or isinstance(m[k], bool):
            out.append("%s is %r" % (k, m[k]))
    if len(m.get("msgId") or "") != 32:
        out.append("msgId is not 32 characters")
    if m.get("bodyEncoding") not in ("text", "base64"):
        out.append("bodyEncoding %r" % m.get("bodyEncoding"))
    return out


# ---- HTTP ----


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body
        self._json = None
        self._parsed = False

    @property
    def json(self):
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                self._json = None
        return self._json

    def __repr__(self):
        return "<%d %s>" % (self.status, _short(self.body, 300))


def path(*segments, **query):
    """'/a/b?x=1' from raw segments (each quoted) and query parameters."""
    p = "/" + "/".join(urllib.parse.quote(str(s), safe="") for s in segments)
    q = {k: v for k, v in query.items() if v is not None}
    if q:
        p += "?" + urllib.parse.urlencode(q)
    return p


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, port, timeout=15.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, url, body=None, headers=None, timeout=None):
        """Raises OSError / http.client.HTTPException on transport errors
        (the connection is then dropped)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=timeout or self.timeout)
        elif timeout is not None:
            self.conn.timeout = timeout
            if self.conn.sock is not None:
                self.conn.sock.settimeout(timeout)
        try:
            self.conn.request(method, url, body=body, headers=headers or {})
            r = self.conn.getresponse()
            data = r.read()
            resp = Resp(r.status, r.headers, data)
            if r.will_close:
                self.close()
            return resp
        except BaseException:
            self.close()
            raise


def request(port, method, url, body=None, headers=None, timeout=15.0):
    c = Client(port, timeout)
    try:
        return c.request(method, url, body, headers)
    finally:
        c.close()


def raw_request(port, data, timeout=10.0):
    """Send raw bytes, return everything the server sends until it closes
    or goes quiet."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    try:
        s.sendall(data)
        s.settimeout(2.0)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        s.close()
    return out


class _BytesSock:
    def __init__(self, data):
        self.data = data

    def makefile(self, *args, **kw):
        return io.BytesIO(self.data)


def parse_response(raw):
    """A Resp from the raw bytes of one HTTP response (chunked or not)."""
    r = http.client.HTTPResponse(_BytesSock(raw))
    r.begin()
    return Resp(r.status, r.headers, r.read())


def body_bytes(msg):
    """The payload of a message as the contract returns it."""
    enc = msg.get("bodyEncoding")
    if enc == "base64":
        return base64.b64decode(msg["body"], validate=True)
    if enc == "text":
        return msg["body"].encode("utf-8")
    raise ValueError("bad bodyEncoding %r" % (enc,))


# ---- the daemon ----


class Daemon:
    """One ferrymq node: a port, a data dir and a stderr log kept across
    restarts."""

    def __init__(self, name="node", opts=None, port=None, workdir=None):
        self.name = name
        self.opts = dict(opts or {})
        self.port = port or free_port()
        self.workdir = workdir or tempdir("fm-e2e-%s-" % name)
        self.data = os.path.join(self.workdir, "data")
        self.log = os.path.join(self.workdir, "stderr.log")
        self.proc = None
        self.starts = 0
        self.client = Client(self.port)
        _daemons.append(self)

    def argv(self):
        args = [binary(), "--listenAddress=127.0.0.1",
                "--listenPort=%d" % self.port,
                "--storePathRootDir=%s" % self.data]
        # A message must fit in a segment: small segments, smaller messages.
        opts = {"mappedFileSizeCommitLog": SEGMENT_SIZE,
                "maxMessageSize": SEGMENT_SIZE // 4}
        opts.update(self.opts)
        for k, v in opts.items():
            args.append("--%s=%s" % (k, v))
        return args

    def start(self, wait=True):
        """Start and wait for /healthz. Raises RuntimeError if it does not
        come up."""
        assert self.proc is None
        self.starts += 1
        with open(self.log, "ab") as f:
            f.write(("=== fmtest: start %d: %s\n" %
                     (self.starts, " ".join(self.argv()))).encode())
            f.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=f,
                                         cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise RuntimeError("daemon %s exited with %d before ready:\n%s"
                                   % (self.name, rc, self.stderr_tail(25)))
            try:
                r = request(self.port, "GET", "/healthz", timeout=1.0)
                if r.status == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon %s not ready within %.0f s:\n%s" %
                           (self.name, timeout, self.stderr_tail(25)))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit status, or None after a timeout (the
        process is then killed)."""
        self.client.close()
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.proc = None
        return rc

    def kill9(self):
        self.client.close()
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def kill_quietly(self):
        try:
            self.kill9()
        except OSError:
            pass

    def restart(self, hard=False):
        if hard:
            self.kill9()
            rc = None
        else:
            rc = self.stop()
        self.start()
        return rc

    def stderr_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_tail(self, n=15):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def sanitizer_report(self):
        text = self.stderr_text()
        for mark in SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                return text[max(0, i - 200):i + 2500]
        return None

    # HTTP on this node's shared keep-alive connection.
    def req(self, method, url, body=None, headers=None, timeout=None):
        return self.client.request(method, url, body, headers, timeout)

    def get(self, url, **kw):
        return self.req("GET", url, **kw)

    def publish(self, topic, body, headers=None, **query):
        return self.req("POST", path("v1", "topics", topic, "messages",
                                     **query), body, headers)

    def pull(self, topic, qid, offset=0, max=32, wait=None, timeout=None):
        return self.req("GET", path("v1", "topics", topic, "queues", qid,
                                    "messages", offset=offset, max=max,
                                    wait=wait), timeout=timeout)

    def pull_all(self, topic, qid, offset=0):
        """Every message of a queue from offset on, paging by nextOffset.
        Returns (messages, last pull json). Raises on an error answer."""
        out = []
        last = None
        for _ in range(100000):
            r = self.pull(topic, qid, offset=offset, max=1024)
            if r.status != 200:
                raise RuntimeError("pull %s/%s@%d: %r" %
                                   (topic, qid, offset, r))
            last = r.json
            out.extend(last["messages"])
            nxt = last["nextOffset"]
            if nxt >= last["maxOffset"] or not last["messages"]:
                break
            if nxt <= offset:
                raise RuntimeError("pull made no progress at %d" % offset)
            offset = nxt
        return out, last

    def max_offsets(self, topic, nqueues):
        """maxOffset of each queue, from pulls."""
        res = []
        for q in range(nqueues):
            r = self.pull(topic, q, offset=0, max=1)
            res.append(r.json["maxOffset"] if r.status == 200 else None)
        return res


# ---- running a test file ----


def _watchdog(seconds):
    def fire(signum, frame):
        print("Bail out! test file exceeded %d s" % seconds, flush=True)
        _cleanup()
        os._exit(1)

    signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)


def main(cases, timeout=85, start=()):
    """Start the daemons in start (bailing out if one does not come up),
    run each case(tap) in order (a raised exception is one failed check),
    then check every daemon's stderr for sanitizer reports. Exits."""
    _watchdog(timeout)
    tap = Tap()
    bin_ = binary()
    if not os.access(bin_, os.X_OK):
        print("Bail out! daemon not built: %s" % bin_, flush=True)
        sys.exit(1)
    try:
        for d in start:
            try:
                d.start()
            except RuntimeError as e:
                tap.ok(False, "%s starts and answers /healthz" % d.name, e)
                print("Bail out! daemon %s did not start" % d.name,
                      flush=True)
                _cleanup()
                sys.exit(1)
        for case in cases:
            try:
                case(tap)
            except Exception:
                tap.ok(False, "%s ran to the end" % case.__name__,
                       traceback.format_exc())
        for d in list(_daemons):
            if d.proc is not None:
                rc = d.stop()
                tap.eq(rc, 0, "%s: SIGTERM at the end exits 0" % d.name)
        for d in _daemons:
            if d.starts:
                rep = d.sanitizer_report()
                tap.ok(rep is None, "%s: no sanitizer report in stderr" %
                       d.name, rep)
    finally:
        _cleanup()
    signal.alarm(0)
    sys.exit(tap.done())
