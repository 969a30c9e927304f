#!/usr/bin/python3
"""exerciser.py - a seeded data-integrity exerciser for a mounted filesystem.

Runs a random mix of file operations on a few files under DIR (normally a
CloudMount mount point) and checks every result against a shadow copy kept in
memory: writes at random offsets (1 B .. 3 MiB, log-distributed), sequential
appends, large sequential writes from offset 0 (5-20 MiB, half of them after an
O_TRUNC reopen, which is the streaming-upload path), truncates (shrink and
grow), reads of random ranges, full reads through a second descriptor, stat,
rename to a new name (sometimes while open), unlink and recreate (sometimes
unlinking while open and using the orphan), reopen cycles (plain, O_TRUNC,
O_APPEND), fsync and close.

The same --seed gives the same sequence of operations (as long as no operation
fails). On a mismatch it prints the seed, the op number and the last ops of the
op log, and exits 1.

--allow-errors (for runs through a fault-injecting proxy): an OSError from an
operation is accepted if it is a clean errno. The file it happened on is then
closed and read back in full through the mount, and what is read must be one
of the contents the file may soundly have:
  * the shadow just before the failed step, or the shadow with the failed step
    applied (a write is done in pieces; the pieces the kernel reported as
    written are in the "before" shadow);
  * if the close (or the step: unlink, rename, create) failed too: the content
    of the last successful commit (close, fsync), or any state the file passed
    through since then (hashes are kept: a streamed upload may have been
    completed early) - unacknowledged data may be lost, never mixed.
Anything else is WRONG data and fails the run. With --settle S (the mount's
metadata TTL and a little) the file is read back again S seconds later with its
page cache dropped, and both views must agree: otherwise the mount showed a
state the store does not have (--avoid unsettled: accept, note it, and keep the
later view). The view read back becomes the new shadow and "last committed"
content (the file is closed: the mount must now serve what the store has; the
final check against the second view verifies that). A failed rename may leave
both names: the new one is kept and the old one unlinked.

--avoid listdir,orphan,unsettled leaves out patterns that hit known bugs, so
the rest can still run. --trace FILE records every system call (JSON lines);
--replay FILE runs a trace again against a model, and --emit-python FILE turns
one into a standalone script (for minimising a failure into a bug report).

No hangs: every op runs under a deadline (--op-timeout, default 120 s). A
watchdog thread reports the op and exits the process when it passes (a Python
signal handler cannot run while the main thread is blocked inside a FUSE
request; signal.alarm with the default action is kept as a last resort). A
process blocked in a FUSE request the daemon has already read cannot exit, not
even on SIGKILL, until the daemon answers or the connection ends: so on a hang
the watchdog also aborts the FUSE connection (when fusectl is mounted) and
kills --kill-on-hang PID (the mount daemon).

At the end every descriptor is closed (recorded per file: "ok" when the last
close succeeded, "resynced" when the file's final content was taken from the
mount after an error), every file is read back through the mount and compared,
the shadows are written to --shadow-dir (one file per name, plus
--manifest JSON), --verify-cmd is run (sh -c; it may unmount and download), and
--verify-dir (a directory with the files as another client sees them) is
compared byte for byte: the set of names must match exactly.

Exit status: 0 ok, 1 mismatch/hang/verification failure, 2 usage error.
The last line is "exerciser: N ops, seed S, ok" (or "... FAILED").
"""

import argparse
import collections
import errno
import hashlib
import json
import math
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time

KiB = 1024
MiB = 1024 * 1024

OPS = ["write", "append", "bigseq", "truncate", "read", "fullread", "stat", "rename",
       "unlink", "reopen", "fsync", "close"]
DEFAULT_WEIGHTS = {
    "write": 20, "append": 10, "bigseq": 1.0, "truncate": 6, "read": 22, "fullread": 4,
    "stat": 5, "rename": 3, "unlink": 2, "reopen": 7, "fsync": 4, "close": 3,
}


class Failure(Exception):
    """A check failed: wrong data, wrong size, a lost file."""


class OpError(Exception):
    """An OSError in the middle of a step whose effect is then uncertain."""

    def __init__(self, oserr, before, after, what):
        super().__init__(str(oserr))
        self.oserr = oserr
        self.before = before      # content before the failed step (bytes) or None: absent
        self.after = after        # content if the failed step took effect, or None: absent
        self.what = what


def parse_size(s):
    s = s.strip().upper()
    mult = 1
    for suf, m in (("K", KiB), ("M", MiB), ("G", 1024 * MiB)):
        if s.endswith(suf):
            mult, s = m, s[:-1]
            break
    return int(float(s) * mult)


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if getattr(e, "errno", None) else type(e).__name__


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


FLAG_NAMES = [("O_RDONLY", os.O_RDONLY), ("O_RDWR", os.O_RDWR), ("O_CREAT", os.O_CREAT), ("O_EXCL", os.O_EXCL),
              ("O_TRUNC", os.O_TRUNC), ("O_APPEND", os.O_APPEND)]


def flags_str(fl):
    names = ["O_RDWR" if fl & os.O_ACCMODE == os.O_RDWR else "O_RDONLY"]
    names += [n for n, v in FLAG_NAMES[2:] if fl & v]
    return "|".join(names)


def flags_val(text):
    v = 0
    for n in text.split("|"):
        v |= dict(FLAG_NAMES)[n]
    return v


class Sys:
    """The system calls the exerciser makes, on names in one directory, optionally traced
    (one JSON array per line, written before the call) for --replay."""

    def __init__(self, d, trace=None):
        self.dir = d
        self.trace = open(trace, "w") if trace else None
        self.hid = {}      # fd -> handle id in the trace
        self.next = 0
        self.names = {}    # fd -> name it was opened as
        self.closed = {}   # name -> time of its last close (--avoid release-race)
        self.release_gap = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def t(self, *rec):
        if self.trace:
            self.trace.write(json.dumps(rec) + "\n")
            self.trace.flush()

    def open(self, name, flags):
        h = self.next
        self.next += 1
        self.t("open", name, flags_str(flags), h)
        fd = os.open(self.path(name), flags, 0o644)
        self.hid[fd] = h
        self.names[fd] = name
        return fd

    def close(self, fd):
        self.t("close", self.hid.pop(fd, -1))
        name = self.names.pop(fd, None)
        try:
            os.close(fd)
        finally:
            self.closed[name] = time.monotonic()

    def wait_release(self, name):
        """The kernel sends FUSE RELEASE after close() returned; give it time to be handled."""
        if self.release_gap and name in self.closed:
            left = self.closed[name] + self.release_gap - time.monotonic()
            if left > 0:
                time.sleep(left)

    def pwrite(self, fd, buf, off):
        self.t("pwrite", self.hid.get(fd), off, len(buf))
        return os.pwrite(fd, buf, off)

    def write(self, fd, buf):
        self.t("write", self.hid.get(fd), len(buf))
        return os.write(fd, buf)

    def pread(self, fd, n, off):
        self.t("pread", self.hid.get(fd), off, n)
        return os.pread(fd, n, off)

    def fstat(self, fd):
        self.t("fstat", self.hid.get(fd))
        return os.fstat(fd)

    def ftruncate(self, fd, n):
        self.t("ftruncate", self.hid.get(fd), n)
        os.ftruncate(fd, n)

    def fsync(self, fd):
        self.t("fsync", self.hid.get(fd))
        os.fsync(fd)

    def truncate(self, name, n):
        self.t("truncate", name, n)
        os.truncate(self.path(name), n)

    def rename(self, a, b):
        self.t("rename", a, b)
        os.rename(self.path(a), self.path(b))
        for fd, n in self.names.items():
            if n == a:
                self.names[fd] = b
        if a in self.closed:
            self.closed[b] = self.closed.pop(a)

    def unlink(self, name):
        self.wait_release(name)
        self.t("unlink", name)
        os.unlink(self.path(name))

    def stat(self, name):
        self.t("stat", name)
        return os.stat(self.path(name))

    def exists(self, name):
        self.t("exists", name)
        return os.path.lexists(self.path(name))

    def listdir(self):
        self.t("listdir")
        return os.listdir(self.dir)

    def readall(self, name):
        self.t("readall", name)
        fd = os.open(self.path(name), os.O_RDONLY)
        try:
            out = bytearray()
            while True:
                b = os.read(fd, 4 * MiB)
                if not b:
                    break
                out += b
            return out
        finally:
            os.close(fd)
            self.closed[name] = time.monotonic()


def replay_data(lineno, n):
    return random.Random(lineno).randbytes(n)


def replay(d, lines, verbose=False):
    """Run a trace on directory d against a model of it. Returns None, or (line index, message)."""
    files = {}     # name -> bytearray (an inode's content, shared with handles)
    handles = {}   # trace handle id -> [fd, content, append]
    for i, rec in enumerate(lines):
        op, args = rec[0], rec[1:]
        if verbose:
            print("replay %d: %s" % (i, json.dumps(rec)), file=sys.stderr)
        try:
            if op == "open":
                name, fl, h = args[0], flags_val(args[1]), args[2]
                if fl & os.O_CREAT and name in files:
                    continue
                if not fl & os.O_CREAT and name not in files:
                    continue
                fd = os.open(os.path.join(d, name), fl, 0o644)
                if fl & os.O_CREAT:
                    files[name] = bytearray()
                if fl & os.O_TRUNC:
                    del files[name][:]
                handles[h] = [fd, files[name], bool(fl & os.O_APPEND)]
                continue
            if op in ("close", "pwrite", "write", "pread", "fstat", "ftruncate", "fsync"):
                if args[0] not in handles:
                    continue
                fd, content, append = handles[args[0]]
                if op == "close":
                    del handles[args[0]]
                    os.close(fd)
                elif op in ("pwrite", "write"):
                    n = args[-1]
                    buf = replay_data(i, n)
                    off = len(content) if append or op == "write" else args[1]
                    w = os.pwrite(fd, buf, off) if op == "pwrite" else os.write(fd, buf)
                    if off > len(content):
                        content.extend(bytes(off - len(content)))
                    content[off:off + w] = buf[:w]
                elif op == "pread":
                    off, n = args[1], args[2]
                    got = os.pread(fd, n, off)
                    want = bytes(content[off:off + n])
                    if got != want:
                        return i, "pread off=%d len=%d: got %d bytes (sha %s), expected %d (sha %s)%s" % (
                            off, n, len(got), sha(got), len(want), sha(want), first_diff(got, want, off))
                elif op == "fstat":
                    sz = os.fstat(fd).st_size
                    if sz != len(content):
                        return i, "fstat size %d, expected %d" % (sz, len(content))
                elif op == "ftruncate":
                    os.ftruncate(fd, args[1])
                    resize(content, args[1])
                elif op == "fsync":
                    os.fsync(fd)
                continue
            if op == "listdir":
                got = sorted(os.listdir(d))
                if got != sorted(files):
                    return i, "listdir %s, expected %s" % (got, sorted(files))
                continue
            if op in ("exists", "stat", "readall", "truncate", "unlink"):
                name = args[0]
                p = os.path.join(d, name)
                if op == "exists":
                    if os.path.lexists(p) != (name in files):
                        return i, "exists(%s) is %s" % (name, not (name in files))
                    continue
                if name not in files:
                    continue
                if op == "stat":
                    sz = os.stat(p).st_size
                    if sz != len(files[name]):
                        return i, "stat size %d, expected %d" % (sz, len(files[name]))
                elif op == "readall":
                    with open(p, "rb") as f:
                        got = f.read()
                    want = bytes(files[name])
                    if got != want:
                        return i, "read of %s: got %d bytes (sha %s), expected %d (sha %s)%s" % (
                            name, len(got), sha(got), len(want), sha(want), first_diff(got, want, 0))
                elif op == "truncate":
                    os.truncate(p, args[1])
                    resize(files[name], args[1])
                elif op == "unlink":
                    os.unlink(p)
                    del files[name]
                continue
            if op == "rename":
                a, b = args
                if a not in files or b in files:
                    continue
                os.rename(os.path.join(d, a), os.path.join(d, b))
                files[b] = files.pop(a)
                continue
            raise SystemExit("replay: unknown op %r" % op)
        except OSError as e:
            return i, "%s failed: %s" % (json.dumps(rec), e)
    for h in list(handles):
        try:
            os.close(handles.pop(h)[0])
        except OSError as e:
            return len(lines), "final close: %s" % e
    for name, content in sorted(files.items()):
        with open(os.path.join(d, name), "rb") as f:
            got = f.read()
        if got != bytes(content):
            return len(lines), "final read of %s: got %d bytes, expected %d%s" % (
                name, len(got), len(content), first_diff(got, bytes(content), 0))
    return None


def regions(content, cands, block=64 * KiB):
    """Which candidate each block of content equals, as runs: "0-4M before, 4M-5M last committed"."""
    def fmt(x):
        return "%dM" % (x // MiB) if x % MiB == 0 else "%dK" % (x // KiB) if x % KiB == 0 else str(x)
    runs = []
    for off in range(0, max(len(content), 1), block):
        got = bytes(content[off:off + block])
        m = [k for k, v in cands.items() if v is not None and v[off:off + len(got)] == got]
        label = "/".join(m) if m else "NONE"
        if runs and runs[-1][2] == label:
            runs[-1][1] = off + len(got)
        else:
            runs.append([off, off + len(got), label])
    out = ", ".join("%s-%s %s" % (fmt(a), fmt(b), l) for a, b, l in runs[:40])
    return out + (" ..." if len(runs) > 40 else "")


def resize(content, n):
    if n < len(content):
        del content[n:]
    else:
        content.extend(bytes(n - len(content)))


def first_diff(got, want, base):
    n = min(len(got), len(want))
    i = 0
    while i < n and got[i] == want[i]:
        i += 1
    if i == n:
        return ""
    return "; first difference at offset %d: got %s expected %s" % (base + i, bytes(got[i:i + 8]).hex(),
                                                                    bytes(want[i:i + 8]).hex())


def emit_python(lines):
    """A standalone script doing the trace's calls, with the model's checks as asserts."""
    out = ["#!/usr/bin/python3", "# generated by exerciser.py --emit-python", "import os, random, sys",
           "D = sys.argv[1]", "P = lambda n: os.path.join(D, n)", "data = lambda i, n: random.Random(i).randbytes(n)",
           "h = {}", "# model", "files = {}"]
    model = {}
    hs = {}
    for i, rec in enumerate(lines):
        op, args = rec[0], rec[1:]
        if op == "open":
            name, fl, hid = args
            v = flags_val(fl)
            if v & os.O_CREAT and name in model or not v & os.O_CREAT and name not in model:
                continue
            if v & os.O_CREAT:
                model[name] = bytearray()
            if v & os.O_TRUNC:
                del model[name][:]
            hs[hid] = [model[name], bool(v & os.O_APPEND)]
            out.append("h[%d] = os.open(P(%r), %s, 0o644)" % (hid, name, "|".join("os." + f for f in fl.split("|"))))
        elif op in ("close", "pwrite", "write", "pread", "fstat", "ftruncate", "fsync"):
            if args[0] not in hs:
                continue
            content, append = hs[args[0]]
            if op == "close":
                del hs[args[0]]
                out.append("os.close(h[%d])" % args[0])
            elif op in ("pwrite", "write"):
                n = args[-1]
                buf = replay_data(i, n)
                off = len(content) if append or op == "write" else args[1]
                if off > len(content):
                    content.extend(bytes(off - len(content)))
                content[off:off + n] = buf
                if op == "pwrite":
                    out.append("assert os.pwrite(h[%d], data(%d, %d), %d) == %d" % (args[0], i, n, args[1], n))
                else:
                    out.append("assert os.write(h[%d], data(%d, %d)) == %d" % (args[0], i, n, n))
            elif op == "pread":
                want = bytes(content[args[1]:args[1] + args[2]])
                out.append("assert hashlib_sha(os.pread(h[%d], %d, %d)) == %r, 'pread'" % (args[0], args[2], args[1], sha(want)))
            elif op == "fstat":
                out.append("assert os.fstat(h[%d]).st_size == %d, 'fstat'" % (args[0], len(content)))
            elif op == "ftruncate":
                resize(content, args[1])
                out.append("os.ftruncate(h[%d], %d)" % (args[0], args[1]))
            elif op == "fsync":
                out.append("os.fsync(h[%d])" % args[0])
        elif op == "listdir":
            out.append("assert sorted(os.listdir(D)) == %r, 'listdir'" % sorted(model))
        elif op == "exists":
            out.append("assert os.path.lexists(P(%r)) == %r, 'exists'" % (args[0], args[0] in model))
        elif op in ("stat", "readall", "truncate", "unlink"):
            name = args[0]
            if name not in model:
                continue
            if op == "stat":
                out.append("assert os.stat(P(%r)).st_size == %d, 'stat'" % (name, len(model[name])))
            elif op == "readall":
                out.append("assert hashlib_sha(open(P(%r), 'rb').read()) == %r, 'read %s'" % (name, sha(bytes(model[name])), name))
            elif op == "truncate":
                resize(model[name], args[1])
                out.append("os.truncate(P(%r), %d)" % (name, args[1]))
            else:
                del model[name]
                out.append("os.unlink(P(%r))" % name)
        elif op == "rename":
            a, b = args
            if a not in model or b in model:
                continue
            model[b] = model.pop(a)
            out.append("os.rename(P(%r), P(%r))" % (a, b))
    for hid in hs:
        out.append("os.close(h[%d])" % hid)
    for name, content in sorted(model.items()):
        out.append("assert hashlib_sha(open(P(%r), 'rb').read()) == %r, 'final read %s'" % (name, sha(bytes(content)), name))
    out.insert(3, "import hashlib; hashlib_sha = lambda b: hashlib.sha256(b).hexdigest()[:16]")
    out.append("print('ok')")
    return "\n".join(out) + "\n"


class Watchdog:
    """Exits the process with a report when an op takes longer than its deadline."""

    def __init__(self, report, on_hang=None, fuse_dev=None):
        self.report = report
        self.on_hang = on_hang
        self.fuse_dev = fuse_dev
        self.deadline = None
        self.what = ""
        self.lock = threading.Lock()
        t = threading.Thread(target=self._run, daemon=True)
        t.start()

    def arm(self, seconds, what):
        with self.lock:
            self.deadline = time.monotonic() + seconds
            self.what = what
        # last resort: SIGALRM's default action terminates even a thread stuck in FUSE
        signal.alarm(int(seconds) + 30)

    def disarm(self):
        with self.lock:
            self.deadline = None
        signal.alarm(0)

    def _run(self):
        while True:
            time.sleep(0.5)
            with self.lock:
                d, what = self.deadline, self.what
            if d is not None and time.monotonic() > d:
                try:
                    self.report("HANG: %s did not finish within its deadline" % what)
                    self.unstick()
                finally:
                    os._exit(1)

    def unstick(self):
        """A thread blocked in a FUSE request that the daemon already read cannot be killed, not
        even by exit: only an answer or the end of the connection frees it. So abort the
        connection (fusectl, when mounted), and SIGKILL --kill-on-hang (the daemon)."""
        if self.fuse_dev is not None:
            p = "/sys/fs/fuse/connections/%d/abort" % self.fuse_dev
            try:
                with open(p, "w") as f:
                    f.write("1")
                print("exerciser: aborted the FUSE connection (%s)" % p, file=sys.stderr, flush=True)
            except OSError:
                pass
        if self.on_hang and self.on_hang > 1:   # never 0 or -1: those would signal whole groups
            # no fork here: a child would flush our FUSE descriptors when it closes them, and block too
            print("exerciser: --kill-on-hang: SIGKILL to pid %d" % self.on_hang, file=sys.stderr, flush=True)
            try:
                os.kill(self.on_hang, signal.SIGKILL)
            except OSError as e:
                print("exerciser: kill %d: %s" % (self.on_hang, e), file=sys.stderr, flush=True)


class Slot:
    def __init__(self, idx):
        self.idx = idx
        self.gen = 0
        self.name = None          # current name, None: the file does not exist
        self.data = bytearray()   # shadow
        self.committed = None     # content the store has for self.name (bytes), None: nothing yet
        self.fd = None
        self.append = False       # fd opened with O_APPEND
        self.dirty = False        # changed since the last successful commit
        self.status = "ok"        # "ok": last close/fsync succeeded; "resynced": taken from the mount
        self.errors = 0
        self.history = []         # (op, size, sha256) of states since the last commit (--allow-errors)

    def new_name(self):
        self.gen += 1
        return "f%d-g%d.bin" % (self.idx, self.gen)


class Exerciser:
    def __init__(self, a):
        self.a = a
        self.dir = a.dir
        self.rng = random.Random(a.seed)
        self.log = collections.deque(maxlen=a.log_tail)
        self.opno = 0
        self.slots = [Slot(i) for i in range(a.files)]
        self.counts = collections.Counter()
        self.errors = collections.Counter()
        self.resyncs = 0
        self.intermediate = 0
        self.unsettled = 0
        self.weights = dict(DEFAULT_WEIGHTS)
        for w in a.weight or []:
            k, _, v = w.partition("=")
            if k not in self.weights:
                raise SystemExit("exerciser: unknown op in --weight: %s" % k)
            self.weights[k] = float(v)
        for d in (a.disable or "").split(","):
            d = d.strip()
            if d:
                if d not in self.weights:
                    raise SystemExit("exerciser: unknown op in --disable: %s" % d)
                self.weights[d] = 0
        avoid = set(x.strip() for x in a.avoid.split(",") if x.strip())
        known = {"listdir", "orphan", "unsettled", "release-race"}
        if avoid - known:
            raise SystemExit("exerciser: unknown --avoid item: %s" % ",".join(avoid - known))
        self.avoid_unsettled = "unsettled" in avoid
        self.avoid_release_race = "release-race" in avoid
        self.avoid_listdir = "listdir" in avoid
        self.avoid_orphan = "orphan" in avoid
        self.opnames = [o for o in OPS if self.weights[o] > 0]
        self.opweights = [self.weights[o] for o in self.opnames]
        try:
            fuse_dev = os.minor(os.stat(a.dir).st_dev) if os.major(os.stat(a.dir).st_dev) == 0 else None
        except OSError:
            fuse_dev = None
        self.watchdog = Watchdog(self.report, a.kill_on_hang, fuse_dev)
        self.cur = ""
        self.sys = Sys(a.dir, a.trace)
        if self.avoid_release_race:
            self.sys.release_gap = 0.3

    # ---- reporting ----
    def note(self, msg):
        self.log.append("#%d %s" % (self.opno, msg))
        if self.a.verbose:
            print("#%d %s" % (self.opno, msg), file=sys.stderr, flush=True)

    def report(self, msg):
        out = sys.stderr
        # the op log first, the failure last (callers often show only the tail)
        print("exerciser: last %d ops:" % len(self.log), file=out)
        for line in self.log:
            print("  " + line, file=out)
        print("exerciser: FAILURE at op %d (seed %d): %s" % (self.opno, self.a.seed, msg), file=out)
        print("exerciser: in progress: %s" % self.cur, file=out)
        print("exerciser: reproduce with: %s" % self.repro(), file=out)
        print("exerciser: %d ops, seed %d, FAILED" % (self.opno, self.a.seed), file=out)
        out.flush()
        sys.stdout.flush()

    def repro(self):
        parts = ["exerciser.py", "DIR", "--seed", str(self.a.seed), "--ops", str(self.opno),
                 "--files", str(self.a.files)]
        if self.a.allow_errors:
            parts.append("--allow-errors")
        if self.a.disable:
            parts += ["--disable", self.a.disable]
        if self.a.avoid:
            parts += ["--avoid", self.a.avoid]
        for w in self.a.weight or []:
            parts += ["--weight", w]
        return " ".join(parts)

    def path(self, name):
        return os.path.join(self.dir, name)

    # ---- comparisons ----
    def compare(self, what, got, want, base=0):
        if bytes(got) == bytes(want):
            return
        n = min(len(got), len(want))
        i = 0
        step = 4096
        while i < n and got[i:i + step] == want[i:i + step]:
            i += step
        while i < n and got[i] == want[i]:
            i += 1
        msg = "%s: wrong data: got %d bytes, expected %d" % (what, len(got), len(want))
        if i < n:
            # how far the difference runs
            j = i
            while j < n and got[j] != want[j]:
                j += 1
            msg += "; first difference at file offset %d (differing run of %d bytes): got %s expected %s" % (
                base + i, j - i, bytes(got[i:i + 16]).hex(), bytes(want[i:i + 16]).hex())
            if not any(got[i:j]):
                msg += " (got zeros)"
        else:
            msg += "; equal over the common %d bytes" % n
        raise Failure(msg)

    # ---- file handles ----
    def open_fd(self, s, flags_extra=0, append=False):
        fl = os.O_RDWR | flags_extra | (os.O_APPEND if append else 0)
        s.fd = self.sys.open(s.name, fl)
        s.append = append

    def close_fd(self, s):
        """Close; a successful close commits. Raises OSError (fd is gone either way)."""
        fd, s.fd = s.fd, None
        if fd is None:
            return
        self.sys.close(fd)
        self.commit_ok(s)

    def commit_ok(self, s):
        s.history = []
        s.committed = bytes(s.data)
        s.dirty = False
        s.status = "ok"

    def ensure_fd(self, s):
        if s.name is None:
            self.recreate(s)
        if s.fd is None:
            self.open_fd(s)

    def recreate(self, s):
        name = s.new_name()
        before = None
        try:
            fd = self.sys.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except OSError as e:
            s.name = name  # may or may not exist now
            s.data = bytearray()
            s.committed = None
            raise OpError(e, before, b"", "create %s" % name)
        s.name = name
        s.fd = fd
        s.append = False
        s.data = bytearray()
        s.committed = None
        s.dirty = True
        self.note("create %s" % name)

    # ---- write helpers (shadow follows what the kernel reports written) ----
    def shadow_write(self, s, off, buf):
        d = s.data
        if off > len(d):
            d.extend(bytes(off - len(d)))
        d[off:off + len(buf)] = buf
        s.dirty = True
        self.remember(s)

    def remember(self, s):
        """--allow-errors: the hash of each state the file passes through since its last commit."""
        if self.a.allow_errors:
            s.history.append((self.opno, len(s.data), hashlib.sha256(s.data).hexdigest()))

    def write_all(self, s, off, buf, what):
        """pwrite (or append) all of buf; the shadow tracks each piece written."""
        pos = 0
        while pos < len(buf):
            chunk = buf[pos:]
            before = bytes(s.data)
            at = len(s.data) if s.append else off + pos
            try:
                if s.append:
                    n = self.sys.write(s.fd, chunk)
                else:
                    n = self.sys.pwrite(s.fd, chunk, off + pos)
            except OSError as e:
                tmp = bytearray(before)
                if at > len(tmp):
                    tmp.extend(bytes(at - len(tmp)))
                tmp[at:at + len(chunk)] = chunk
                raise OpError(e, before, bytes(tmp), "%s at %d len %d" % (what, at, len(chunk)))
            if n <= 0:
                raise Failure("%s: write returned %d" % (what, n))
            self.shadow_write(s, at, chunk[:n])
            pos += n

    def rand_len(self, lo, hi):
        # log-uniform between lo and hi
        return max(lo, min(hi, int(math.exp(self.rng.uniform(math.log(lo), math.log(hi + 1))))))

    def data(self, n):
        return self.rng.randbytes(n)

    # ---- ops ----
    def op_write(self, s):
        self.ensure_fd(s)
        n = self.rand_len(1, self.a.max_write)
        size = len(s.data)
        r = self.rng.random()
        if r < 0.1:
            off = size + self.rng.randint(1, 4 * MiB)      # a hole
        elif r < 0.2 and size:
            off = self.rng.randrange(0, size)               # exact small patch in the middle
            n = min(n, 64)
        else:
            off = self.rng.randint(0, size + 256 * KiB)
        if off + n > self.a.max_size:
            off = max(0, self.a.max_size - n)
        eff = len(s.data) if s.append else off
        self.note("%s write off=%d len=%d%s" % (s.name, off, n, " (O_APPEND: at %d)" % eff if s.append else ""))
        self.write_all(s, off, self.data(n), "write")
        self.check_fsize(s, "after write")

    def op_append(self, s):
        self.ensure_fd(s)
        n = self.rand_len(1, self.a.max_write)
        if len(s.data) + n > self.a.max_size:
            return self.op_truncate(s, shrink=True)
        pieces = self.rng.randint(1, 4)
        self.note("%s append len=%d in %d pieces at %d" % (s.name, n, pieces, len(s.data)))
        buf = self.data(n)
        cut = sorted(self.rng.randint(0, n) for _ in range(pieces - 1))
        bounds = [0] + cut + [n]
        for i in range(pieces):
            piece = buf[bounds[i]:bounds[i + 1]]
            if piece:
                self.write_all(s, len(s.data), piece, "append")
        self.check_fsize(s, "after append")

    def op_bigseq(self, s):
        total = self.rng.randint(self.a.big_min, self.a.big_max)
        trunc = self.rng.random() < 0.5
        if s.name is None:
            self.recreate(s)
            trunc = False
        chunk = self.rng.choice([128 * KiB, 1 * MiB, 1 * MiB + 4097, 3 * MiB])
        self.note("%s bigseq len=%d chunk=%d%s" % (s.name, total, chunk, " after O_TRUNC reopen" if trunc else ""))
        if trunc:
            self.reopen(s, "trunc")
        elif s.fd is None or s.append:
            if s.fd is not None:
                self.close_checked(s)
            self.open_fd(s)
        buf = self.data(total)
        pos = 0
        while pos < total:
            self.write_all(s, pos, buf[pos:pos + chunk], "bigseq")
            pos += chunk
        self.check_fsize(s, "after bigseq")

    def op_truncate(self, s, shrink=None):
        if s.name is None:
            self.recreate(s)
        size = len(s.data)
        if shrink is None:
            shrink = self.rng.random() < 0.55
        if shrink:
            new = 0 if self.rng.random() < 0.1 else self.rng.randint(0, size)
        else:
            new = min(self.a.max_size, size + self.rng.choice([1, 100, 4096, 65537, self.rng.randint(1, 6 * MiB)]))
        use_fd = s.fd is not None and self.rng.random() < 0.7
        self.note("%s truncate %d -> %d (%s)" % (s.name, size, new, "ftruncate" if use_fd else "truncate(path)"))
        before = bytes(s.data)
        after = bytes(s.data[:new]) + bytes(max(0, new - size))
        try:
            if use_fd:
                self.sys.ftruncate(s.fd, new)
            else:
                self.sys.truncate(s.name, new)
        except OSError as e:
            raise OpError(e, before, after, "truncate")
        s.data = bytearray(after)
        s.dirty = True
        self.remember(s)
        if not use_fd and s.fd is None:
            # truncate(2) of a closed file is committed by the time it returns
            self.commit_ok(s)
        self.check_fsize(s, "after truncate")

    def op_read(self, s):
        if s.name is None:
            return self.op_write(s)
        if s.fd is None and self.rng.random() < 0.5:
            self.open_fd(s)
        size = len(s.data)
        off = self.rng.randint(0, size + 10) if self.rng.random() < 0.9 else max(0, size - self.rng.randint(0, 100))
        n = self.rand_len(1, self.a.max_write)
        self.note("%s read off=%d len=%d (size %d, %s)" % (s.name, off, n, size, "open fd" if s.fd is not None else "new fd"))
        if s.fd is not None:
            got = self.pread_all(s.fd, off, n)
        else:
            fd = self.sys.open(s.name, os.O_RDONLY)
            try:
                got = self.pread_all(fd, off, n)
            finally:
                self.sys.close(fd)
        self.compare("%s read off=%d len=%d" % (s.name, off, n), got, s.data[off:off + n], off)

    def pread_all(self, fd, off, n):
        out = bytearray()
        while len(out) < n:
            b = self.sys.pread(fd, n - len(out), off + len(out))
            if not b:
                break
            out += b
        return out

    def read_file(self, name):
        return self.sys.readall(name)

    def op_fullread(self, s):
        if s.name is None:
            return self.op_write(s)
        self.note("%s fullread size=%d (%s)" % (s.name, len(s.data), "while open" if s.fd is not None else "closed"))
        got = self.read_file(s.name)
        self.compare("%s full read" % s.name, got, s.data)

    def check_fsize(self, s, when):
        if s.fd is not None:
            st = self.sys.fstat(s.fd)
            if st.st_size != len(s.data):
                raise Failure("%s: fstat size %d %s, expected %d" % (s.name, st.st_size, when, len(s.data)))

    def op_stat(self, s):
        if s.name is None:
            return self.op_write(s)
        self.note("%s stat (size %d)" % (s.name, len(s.data)))
        st = self.sys.stat(s.name)
        if not stat.S_ISREG(st.st_mode):
            raise Failure("%s: stat mode %o is not a regular file" % (s.name, st.st_mode))
        if st.st_size != len(s.data):
            raise Failure("%s: stat size %d, expected %d" % (s.name, st.st_size, len(s.data)))
        self.check_fsize(s, "at stat")
        if self.avoid_listdir:
            return
        names = set(self.sys.listdir())
        if s.name not in names:
            raise Failure("%s: stat works but readdir does not list it" % s.name)

    def op_rename(self, s):
        if s.name is None:
            return self.op_write(s)
        old = s.name
        new = s.new_name()
        if s.fd is not None and self.rng.random() < 0.5:
            self.close_checked(s)
        self.note("%s rename -> %s (%s, %s)" % (old, new, "open" if s.fd is not None else "closed",
                                                  "dirty" if s.dirty else "clean"))
        try:
            self.sys.rename(old, new)
        except OSError as e:
            raise OpError(e, bytes(s.data), bytes(s.data), "rename %s -> %s" % (old, new), ) from None
        s.name = new
        if self.sys.exists(old):
            raise Failure("rename %s -> %s: the old name still exists" % (old, new))

    def op_unlink(self, s):
        if s.name is None:
            return self.recreate(s)
        orphan = s.fd is not None and self.rng.random() < 0.3 and not self.avoid_orphan
        name = s.name
        self.note("%s unlink%s, then recreate" % (name, " while open (then use the orphan)" if orphan else ""))
        if not orphan and s.fd is not None:
            self.close_checked(s)
        try:
            self.sys.unlink(name)
        except OSError as e:
            raise OpError(e, bytes(s.data), None, "unlink %s" % name)
        if orphan:
            fd = s.fd
            s.fd = None
            od = bytearray(s.data)
            try:
                buf = self.data(self.rand_len(1, 256 * KiB))
                off = self.rng.randint(0, len(od))
                n = self.sys.pwrite(fd, buf, off)
                if s.append:
                    off = len(od)  # Linux: pwrite on an O_APPEND descriptor appends
                if off > len(od):
                    od.extend(bytes(off - len(od)))
                od[off:off + n] = buf[:n]
                got = self.pread_all(fd, 0, len(od) + 10)
                self.compare("%s orphan (unlinked, still open) read" % name, got, od)
            except OSError as e:
                if not self.a.allow_errors:
                    raise
                self.note("orphan use failed: %s (allowed)" % errname(e))
            finally:
                try:
                    self.sys.close(fd)
                except OSError as e:
                    self.note("orphan close: %s" % errname(e))
        s.name = None
        s.data = bytearray()
        s.committed = None
        s.dirty = False
        if self.sys.exists(name):
            raise Failure("%s still exists after unlink%s" % (name, " and the orphan's close" if orphan else ""))
        if not self.avoid_listdir and name in self.sys.listdir():
            raise Failure("%s still listed after unlink" % name)
        if self.rng.random() < 0.85:
            self.recreate(s)
            if self.rng.random() < 0.5:
                n = self.rand_len(1, self.a.max_write)
                self.note("%s initial write len=%d" % (s.name, n))
                self.write_all(s, 0, self.data(n), "initial write")

    def reopen(self, s, mode):
        if s.fd is not None:
            self.close_checked(s)
        if mode == "trunc":
            before = bytes(s.data)
            try:
                self.open_fd(s, os.O_TRUNC)
            except OSError as e:
                raise OpError(e, before, b"", "open O_TRUNC")
            s.data = bytearray()
            s.dirty = True
            self.remember(s)
        else:
            self.open_fd(s, append=(mode == "append"))
        self.check_fsize(s, "after reopen (%s)" % mode)

    def close_checked(self, s):
        before = bytes(s.data)
        try:
            self.close_fd(s)
        except OSError as e:
            raise OpError(e, before, before, "close")

    def op_reopen(self, s):
        if s.name is None:
            return self.recreate(s)
        r = self.rng.random()
        mode = "trunc" if r < 0.15 else "append" if r < 0.45 else "plain"
        self.note("%s reopen (%s), size %d%s" % (s.name, mode, len(s.data), ", dirty" if s.dirty else ""))
        self.reopen(s, mode)

    def op_fsync(self, s):
        if s.name is None or s.fd is None:
            return self.op_write(s)
        self.note("%s fsync (size %d%s)" % (s.name, len(s.data), ", dirty" if s.dirty else ""))
        before = bytes(s.data)
        try:
            self.sys.fsync(s.fd)
        except OSError as e:
            raise OpError(e, before, before, "fsync")
        self.commit_ok(s)

    def op_close(self, s):
        if s.fd is None:
            return self.op_read(s)
        self.note("%s close (size %d%s)" % (s.name, len(s.data), ", dirty" if s.dirty else ""))
        self.close_checked(s)

    # ---- errors ----
    def resync(self, s, err):
        """After a failed step: close, read back, check against what is sound, adopt."""
        self.resyncs += 1
        s.errors += 1
        close_failed = err.what == "close"
        if s.fd is not None:
            fd, s.fd = s.fd, None
            try:
                self.sys.close(fd)
            except OSError as e:
                close_failed = True
                self.note("resync: close failed: %s" % errname(e))
        uncertain = close_failed or err.what.startswith(("unlink", "rename", "create"))
        cands = {}
        if uncertain:
            cands["last committed"] = s.committed
        cands["before"] = err.before
        cands["after"] = err.after
        names = [s.name]
        if err.what.startswith("rename"):
            names = [err.what.split()[1], err.what.split()[3]]

        def describe():
            return ", ".join("%s (%s)" % (k, "absent" if v is None else "%d bytes sha %s" % (len(v), sha(v)))
                             for k, v in cands.items())

        def check(view, when):
            for name, content in view.items():
                if content is None or any(v is not None and content == v for v in cands.values()):
                    continue
                h = hashlib.sha256(content).hexdigest()
                past = [op for op, size, hh in s.history if hh == h]
                if past and uncertain:
                    # a state the file had after op N (e.g. a streamed upload completed early when
                    # the file switched to staging): unacknowledged data lost, but nothing mixed
                    self.note("resync: %s holds the state after op %d (an intermediate version)" % (name, past[-1]))
                    self.intermediate += 1
                    continue
                self.dump(name, content, cands)
                raise Failure("after %s failed with %s, %s reads back (%s) %d bytes (sha %s) that are none of: "
                              "%s\n  which candidate each region of it matches: %s" % (
                                  err.what, errname(err.oserr), name, when, len(content), sha(content),
                                  describe(), regions(content, cands)))
            if not any(c is not None for c in view.values()) and all(v is not None for v in cands.values()):
                raise Failure("after %s failed with %s, the file is gone (%s, %s); it should be one of: %s" % (
                    err.what, errname(err.oserr), ", ".join(names), when, describe()))

        def show(view):
            return ", ".join("%s %s" % (n, "absent" if c is None else "%d bytes sha %s" % (len(c), sha(c)))
                             for n, c in view.items())

        # what the mount shows right away, then once its caches expired
        view = {name: self.read_back(name) for name in names}
        check(view, "right after the error")
        if self.a.settle:
            time.sleep(self.a.settle)
            later = {name: self.read_back(name, drop_cache=True) for name in names}
            check(later, "%.1f s later, page cache dropped" % self.a.settle)
            if later != view:
                msg = ("after %s failed with %s, the mount showed %s right after the error, but %s %.1f s later "
                       "(its caches showed a state the store does not have)" % (
                           err.what, errname(err.oserr), show(view), show(later), self.a.settle))
                if not self.avoid_unsettled:
                    raise Failure(msg)
                self.note("resync: " + msg)
                print("exerciser: note (op %d, --avoid unsettled): %s" % (self.opno, msg), file=sys.stderr)
                self.unsettled += 1
            view = later
        present = {n: c for n, c in view.items() if c is not None}
        if not present:
            s.name = None
            s.data = bytearray()
            s.committed = None
            s.history = []
            s.dirty = False
            s.status = "ok"
            self.note("resync: %s absent" % "/".join(names))
            return
        if err.what.startswith("rename"):
            old, new = names
            if new in present:
                s.name = new
                if old in present:
                    self.retry(lambda: self.sys.unlink(old), "unlink %s (rename leftover)" % old)
            else:
                s.name = old
        content = present[s.name]
        s.data = bytearray(content)
        s.committed = bytes(content)
        s.history = []
        s.dirty = False
        s.status = "resynced"
        self.note("resync: %s is %d bytes sha %s" % (s.name, len(content), sha(content)))

    def retry(self, fn, what, tries=8):
        last = None
        for i in range(tries):
            self.watchdog.arm(self.a.op_timeout, what)
            try:
                return fn()
            except FileNotFoundError:
                raise
            except OSError as e:
                last = e
                self.note("%s: %s (try %d)" % (what, errname(e), i + 1))
                time.sleep(0.2 * (i + 1))
            finally:
                self.watchdog.disarm()
        raise Failure("%s keeps failing: %s" % (what, last))

    def dump(self, name, content, cands):
        if not self.a.dump_dir:
            return
        os.makedirs(self.a.dump_dir, exist_ok=True)
        with open(os.path.join(self.a.dump_dir, name + ".readback"), "wb") as f:
            f.write(content)
        for k, v in cands.items():
            if v is not None:
                with open(os.path.join(self.a.dump_dir, name + "." + k.replace(" ", "_")), "wb") as f:
                    f.write(v)

    def read_back(self, name, drop_cache=False):
        """The file's content through the mount, None if it does not exist."""
        def once():
            if drop_cache:
                fd = os.open(self.path(name), os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
            return bytes(self.read_file(name))
        try:
            return self.retry(once, "read back %s" % name)
        except FileNotFoundError:
            return None

    # ---- main loop ----
    def run(self):
        a = self.a
        t0 = time.monotonic()
        for s in self.slots:
            self.cur = "initial create of slot %d" % s.idx
            self.step(s, lambda s=s: self.recreate(s))
        for i in range(a.ops):
            self.opno = i + 1
            op = self.rng.choices(self.opnames, self.opweights)[0]
            s = self.rng.choice(self.slots)
            self.cur = "%s on slot %d (%s)" % (op, s.idx, s.name)
            self.counts[op] += 1
            self.step(s, lambda: getattr(self, "op_" + op)(s))
            if a.max_seconds and time.monotonic() - t0 > a.max_seconds:
                print("exerciser: stopping after %d ops: --max-seconds %s reached" % (self.opno, a.max_seconds),
                      file=sys.stderr)
                break
        self.opno_done = self.opno
        # the end: close all, read all back through the mount
        for s in self.slots:
            self.cur = "final close of slot %d (%s)" % (s.idx, s.name)
            if s.fd is not None:
                self.note("%s final close" % s.name)
                self.step(s, lambda s=s: self.close_checked(s))
        for s in self.slots:
            if s.name is None:
                continue
            self.cur = "final read back of %s" % s.name
            self.note("%s final full read" % s.name)
            got = self.read_back(s.name) if a.allow_errors else self.timed(lambda: self.read_file(s.name), self.cur)
            if got is None:
                raise Failure("%s is gone at the end" % s.name)
            self.compare("%s final read back" % s.name, got, s.data)
        if self.a.allow_errors:
            names = sorted(self.retry(self.sys.listdir, "final listdir"))
        else:
            names = sorted(self.sys.listdir())
        want = sorted(s.name for s in self.slots if s.name is not None)
        if names != want:
            raise Failure("directory lists %s, expected %s" % (names, want))
        self.elapsed = time.monotonic() - t0

    def timed(self, fn, what):
        self.watchdog.arm(self.a.op_timeout, what)
        try:
            return fn()
        finally:
            self.watchdog.disarm()

    def step(self, s, fn):
        try:
            self.timed(fn, self.cur)
        except OpError as e:
            self.errors[errname(e.oserr)] += 1
            self.note("%s: %s failed: %s" % (s.name, e.what, errname(e.oserr)))
            if not self.a.allow_errors:
                raise Failure("%s: %s failed: %s" % (s.name, e.what, e.oserr))
            self.timed(lambda: self.resync(s, e), "resync of %s" % s.name)
        except Failure:
            raise
        except OSError as e:
            # a failure outside a tracked step (open, read, stat, fsize...): nothing changed in the shadow
            self.errors[errname(e)] += 1
            self.note("%s: failed: %s" % (s.name, errname(e)))
            if not self.a.allow_errors:
                raise Failure("%s: unexpected error: %s" % (s.name, e))
            b = bytes(s.data)
            self.timed(lambda: self.resync(s, OpError(e, b, b, "op")), "resync of %s" % s.name)

    # ---- outputs ----
    def manifest(self):
        files = {}
        for s in self.slots:
            if s.name is None:
                continue
            files[s.name] = {"size": len(s.data), "sha256": hashlib.sha256(s.data).hexdigest(),
                             "status": s.status, "errors": s.errors}
        return {"seed": self.a.seed, "ops": self.opno, "files": files, "op_counts": dict(self.counts),
                "errors": dict(self.errors), "resyncs": self.resyncs}

    def write_shadow(self, d):
        os.makedirs(d, exist_ok=True)
        for s in self.slots:
            if s.name is not None:
                with open(os.path.join(d, s.name), "wb") as f:
                    f.write(s.data)

    def verify_dir(self, d):
        problems = []
        have = set()
        for root, _, files in os.walk(d):
            for f in files:
                have.add(os.path.relpath(os.path.join(root, f), d))
        want = {s.name: s for s in self.slots if s.name is not None}
        for extra in sorted(have - set(want)):
            problems.append("extra file in the second view: %s" % extra)
        for name, s in sorted(want.items()):
            if name not in have:
                problems.append("missing in the second view: %s (%d bytes, last close %s)" % (name, len(s.data), s.status))
                continue
            with open(os.path.join(d, name), "rb") as f:
                got = f.read()
            try:
                self.compare("second view of %s (last close %s)" % (name, s.status), got, s.data)
            except Failure as e:
                problems.append(str(e))
        return problems


def main():
    p = argparse.ArgumentParser(description="seeded data-integrity exerciser (see the module docstring)")
    p.add_argument("dir", nargs="?", help="directory to work in (the mount point); must be empty")
    p.add_argument("--seed", type=int, default=None, help="required for a random run")
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--max-write", type=parse_size, default=3 * MiB, help="largest random write (3M)")
    p.add_argument("--big-min", type=parse_size, default=5 * MiB, help="large sequential write, smallest (5M)")
    p.add_argument("--big-max", type=parse_size, default=20 * MiB, help="large sequential write, largest (20M)")
    p.add_argument("--max-size", type=parse_size, default=24 * MiB, help="files are kept below this (24M)")
    p.add_argument("--weight", action="append", metavar="OP=W", help="op weight, ops: " + ",".join(OPS))
    p.add_argument("--disable", metavar="OP[,OP]", help="ops not to run (a known-broken case)")
    p.add_argument("--avoid", default="", metavar="WHAT[,WHAT]",
                   help="leave out a pattern that hits a known bug: 'listdir' (readdir only at the end, none "
                        "while files are open), 'orphan' (no use of a file descriptor after unlinking its file), "
                        "'unsettled' (after an error, accept that the mount first shows one sound state and after "
                        "--settle another: only the later one must match the store), 'release-race' (no unlink "
                        "within 0.3 s of a close of the same file, while the kernel's RELEASE may still be "
                        "in flight)")
    p.add_argument("--allow-errors", action="store_true", help="accept clean errnos (fault-injection runs)")
    p.add_argument("--kill-on-hang", type=int, metavar="PID", help="SIGKILL this process (the mount daemon) when "
                   "an op passes its deadline: a process blocked in a FUSE request cannot exit until the "
                   "daemon answers or dies")
    p.add_argument("--settle", type=float, default=0, help="seconds after which the mount's caches show the "
                   "store (its metadata TTL and a little): after an error the file is read back at once and "
                   "again this much later; both must agree (0: once)")
    p.add_argument("--op-timeout", type=float, default=120, help="deadline of each op, seconds (120)")
    p.add_argument("--max-seconds", type=float, default=0, help="stop early after this long (0: no limit)")
    p.add_argument("--shadow-dir", help="write the final shadow files here")
    p.add_argument("--manifest", help="write a JSON manifest (names, sizes, sha256, last-close status) here")
    p.add_argument("--verify-cmd", help="run this (sh -c) at the end, after closing; env EXERCISER_SHADOW_DIR, "
                                        "EXERCISER_VERIFY_DIR; must exit 0")
    p.add_argument("--verify-dir", help="compare the final shadows with the files in this directory")
    p.add_argument("--log-tail", type=int, default=30)
    p.add_argument("--dump-dir", help="on a wrong read back, write it and the candidates here")
    p.add_argument("--trace", help="record every system call (JSON lines) here, for --replay")
    p.add_argument("--replay", metavar="TRACE", help="instead of a random run, replay a trace on DIR and check it "
                   "against a model (written data differs from the original run's); exit 1 on a difference")
    p.add_argument("--emit-python", metavar="TRACE", help="print a standalone Python script doing TRACE's calls "
                   "with asserts (run it as: python3 SCRIPT DIR)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every op to stderr")
    a = p.parse_args()
    if a.emit_python:
        with open(a.emit_python) as f:
            sys.stdout.write(emit_python([json.loads(x) for x in f if x.strip()]))
        return 0
    if a.replay:
        with open(a.replay) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        r = replay(a.dir, lines, a.verbose)
        if r:
            print("replay: FAILED at line %d of %d: %s" % (r[0] + 1, len(lines), r[1]))
            return 1
        print("replay: %d calls, ok" % len(lines))
        return 0
    if a.seed is None:
        p.error("--seed is required")
    if not a.dir or not os.path.isdir(a.dir):
        p.error("%s is not a directory" % a.dir)
    for i in range(10):
        try:
            if os.listdir(a.dir):
                p.error("%s is not empty" % a.dir)
            break
        except OSError as e:
            if not a.allow_errors or i == 9:
                raise
            time.sleep(0.2)
    if a.files < 1 or a.ops < 0:
        p.error("bad --files/--ops")
    signal.signal(signal.SIGALRM, signal.SIG_DFL)

    ex = Exerciser(a)
    try:
        ex.run()
    except Failure as e:
        ex.report(str(e))
        return 1
    m = ex.manifest()
    if a.shadow_dir:
        ex.write_shadow(a.shadow_dir)
    if a.manifest:
        with open(a.manifest, "w") as f:
            json.dump(m, f, indent=1, sort_keys=True)
    if a.verify_cmd:
        env = dict(os.environ)
        if a.shadow_dir:
            env["EXERCISER_SHADOW_DIR"] = a.shadow_dir
        if a.verify_dir:
            env["EXERCISER_VERIFY_DIR"] = a.verify_dir
        ex.cur = "verify command"
        ex.watchdog.arm(max(a.op_timeout, 600), "--verify-cmd")
        rc = subprocess.call(["sh", "-c", a.verify_cmd], env=env)
        ex.watchdog.disarm()
        if rc != 0:
            ex.report("--verify-cmd exited %d" % rc)
            return 1
    if a.verify_dir:
        problems = ex.verify_dir(a.verify_dir)
        if problems:
            ex.report("second view differs:\n  " + "\n  ".join(problems))
            return 1
    ok = sum(1 for f in m["files"].values() if f["status"] == "ok")
    print("exerciser: %d files (%d last closed ok, %d resynced), %d resyncs (%d found an intermediate version, "
          "%d an unsettled view), errors %s, %.1f s, ops %s" % (
        len(m["files"]), ok, len(m["files"]) - ok, ex.resyncs, ex.intermediate, ex.unsettled,
        json.dumps(m["errors"], sort_keys=True), ex.elapsed,
        " ".join("%s=%d" % kv for kv in sorted(ex.counts.items()))))
    print("exerciser: %d ops, seed %d, ok" % (ex.opno, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
