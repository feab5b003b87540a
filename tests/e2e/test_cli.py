"""test_cli - the daemon's command line: --version, --help, --print-config,
refusing unknown keys and bad values (from a file and from flags) with a
message naming the key, and a clear error when the port is taken.

Owns only these checks; the harness is fmtest. Every run gets its own temp
dir and, where it could start serving, a fresh loopback port.
"""

import os
import re
import socket
import subprocess

import fmtest

RUN_TIMEOUT = 30
_stderrs = []  # every run's stderr, checked for sanitizer reports at the end


def run(args, cwd=None):
    """(exit status, stdout, stderr) of one short-lived daemon run."""
    cwd = cwd or fmtest.tempdir("fm-e2e-cli-")
    p = subprocess.run([fmtest.binary()] + args, cwd=cwd,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=RUN_TIMEOUT)
    err = p.stderr.decode("utf-8", "replace")
    _stderrs.append((args, err))
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


def conf_lines(text):
    """key -> value from key=value lines, ignoring comments."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def configure_version():
    try:
        with open(os.path.join(fmtest.srcdir(), "configure.ac")) as f:
            m = re.search(r"AC_INIT\(\[ferrymq\],\s*\[([^\]]+)\]", f.read())
            return m.group(1) if m else None
    except OSError:
        return None


def test_version(t):
    rc, out, err = run(["--version"])
    t.eq(rc, 0, "--version exits 0")
    first = (out.strip().splitlines() or [""])[0]
    t.ok(re.match(r"^ferrymq \d+\.\d+\.\d+\S*$", first) is not None,
         "--version prints 'ferrymq <version>'", "stdout %r" % out)
    want = configure_version()
    if want:
        t.eq(first, "ferrymq " + want, "--version matches configure.ac")


def test_help(t):
    rc, out, err = run(["--help"])
    t.eq(rc, 0, "--help exits 0")
    text = out + err
    for key in ("listenPort", "listenAddress", "storePathRootDir",
                "flushDiskType", "maxMessageSize", "mappedFileSizeCommitLog",
                "autoCreateTopicEnable", "defaultTopicQueueNums",
                "brokerRole", "namesrvAddr"):
        t.ok(key in text, "--help lists %s" % key)
    for flag in ("-c", "--print-config", "--version"):
        t.ok(flag in text, "--help mentions %s" % flag)


def test_print_config(t):
    d = fmtest.tempdir("fm-e2e-cli-")
    conf = os.path.join(d, "broker.conf")
    with open(conf, "w") as f:
        f.write("# a broker.conf with comments and blank lines\n\n"
                "listenPort=9001\n"
                "brokerName=from-file\n"
                "maxMessageSize=12345\n"
                "  # indented comment\n"
                "flushDiskType=SYNC_FLUSH\n")
    rc, out, err = run(["-c", conf, "--listenPort=9002",
                        "--defaultTopicQueueNums=3", "--print-config"], d)
    t.eq(rc, 0, "--print-config exits 0")
    kv = conf_lines(out)
    t.eq(kv.get("listenPort"), "9002", "--KEY wins over the file")
    t.eq(kv.get("brokerName"), "from-file", "file value is in effect")
    t.eq(kv.get("maxMessageSize"), "12345", "file number is in effect")
    t.eq(kv.get("flushDiskType"), "SYNC_FLUSH", "file enum is in effect")
    t.eq(kv.get("defaultTopicQueueNums"), "3", "flag-only value is in effect")
    t.eq(kv.get("brokerClusterName"), "DefaultCluster",
         "unset keys show their defaults")
    t.eq(kv.get("brokerRole"), "ASYNC_MASTER", "default role")
    t.ok(not os.path.exists(os.path.join(d, "ferrymq-data")),
         "--print-config does not create the data dir")

    rc, out, err = run(["--print-config"])
    kv = conf_lines(out)
    t.eq(kv.get("listenPort"), "8080", "default listenPort is 8080")
    t.eq(kv.get("storePathRootDir"), "./ferrymq-data",
         "default storePathRootDir")


def refused(t, args, key, what, cwd=None):
    rc, out, err = run(args, cwd)
    t.ok(rc != 0, "%s: non-zero exit" % what, "exit %d" % rc)
    t.ok(key in err, "%s: stderr names '%s'" % (what, key),
         "stdout %r\nstderr %r" % (out[-500:], err[-500:]))


def test_refusals(t):
    d = fmtest.tempdir("fm-e2e-cli-")
    port = fmtest.free_port()
    base = ["--listenAddress=127.0.0.1", "--listenPort=%d" % port,
            "--storePathRootDir=%s" % os.path.join(d, "data")]
    refused(t, base + ["--lstenPort=1"], "lstenPort", "unknown flag key", d)

    conf = os.path.join(d, "unknown.conf")
    with open(conf, "w") as f:
        f.write("listenPort=%d\nbogusKey=1\n" % port)
    refused(t, ["-c", conf] + base[2:], "bogusKey", "unknown file key", d)

    refused(t, base[:1] + ["--listenPort=99999"] + base[2:], "listenPort",
            "port out of range", d)
    refused(t, base + ["--flushDiskType=SOMETIMES"], "flushDiskType",
            "bad enum flag", d)
    refused(t, base + ["--maxMessageSize=lots"], "maxMessageSize",
            "non-numeric flag", d)
    refused(t, base + ["--autoCreateTopicEnable=perhaps"],
            "autoCreateTopicEnable", "bad boolean flag", d)

    conf = os.path.join(d, "bad.conf")
    with open(conf, "w") as f:
        f.write("defaultTopicQueueNums=many\n")
    refused(t, ["-c", conf] + base, "defaultTopicQueueNums",
            "bad value in file", d)

    rc, out, err = run(["-c", os.path.join(d, "missing.conf")] + base, d)
    t.ok(rc != 0 and "missing.conf" in err,
         "missing config file: non-zero exit naming the file",
         "exit %d, stderr %r" % (rc, err[-300:]))


def test_port_in_use(t):
    d = fmtest.tempdir("fm-e2e-cli-")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc, out, err = run(["--listenAddress=127.0.0.1",
                            "--listenPort=%d" % port,
                            "--storePathRootDir=%s" %
                            os.path.join(d, "data")], d)
    finally:
        s.close()
    t.ok(rc != 0, "port in use: non-zero exit", "exit %d" % rc)
    t.ok(str(port) in err and re.search(r"in use|EADDRINUSE", err, re.I),
         "port in use: stderr names the port and says it is in use",
         "stderr %r" % err[-500:])


def test_no_sanitizer_reports(t):
    for args, err in _stderrs:
        marks = [m for m in fmtest.SANITIZER_MARKS if m in err]
        if marks:
            t.ok(False, "no sanitizer report running %s" % " ".join(args),
                 err[-3000:])
            return
    t.ok(True, "no sanitizer report in %d runs" % len(_stderrs))


if __name__ == "__main__":
    fmtest.main([test_version, test_help, test_print_config, test_refusals,
                 test_port_in_use, test_no_sanitizer_reports], timeout=85)
