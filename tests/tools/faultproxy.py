#!/usr/bin/python3
"""faultproxy.py - an HTTP/1.1 fault-injecting proxy on loopback, for tests.

    faultproxy.py http://127.0.0.1:UPSTREAM_PORT [--port-file F] [--stats-file F]
                  [--fail-first N [--status 503|500]] [--reset-first N]
                  [--reset-accept-first N] [--cut-body-first N [--cut-min-bytes B]]
                  [--random P [--seed S] [--kinds 503,500,reset,cut]]
                  [--kinds-for METHOD=KINDS] [--methods GET,PUT,...] [--after N]
                  [--delay-ms D] [--latency-ms L]

It listens on 127.0.0.1 (a free port unless --port is given), prints the port on
stdout and writes it to --port-file. Each client connection gets a thread; the
connection is kept alive and every request on it is parsed (headers, a
Content-Length or chunked body), then, by the fault plan, either:

  503 / 500    answered by the proxy with an S3 <Error> document (SlowDown or
               InternalError); the request never reaches the upstream
  reset        the request is read, then the connection is reset (SO_LINGER 0)
  cut          forwarded; the response headers and half of the body are passed
               on, then the connection is reset (only 2xx GET answers with a
               Content-Length above --cut-min-bytes, default 1024)
  delay        --delay-ms: sleep before forwarding
  forward      passed to the upstream over a connection kept per client connection

Plan, in this order for each request: --reset-first N (the first N requests),
--fail-first N (the next N), --cut-body-first N (the first N eligible GETs),
then --random P (each request, with probability P, gets a fault drawn from
--kinds, or from --kinds-for METHOD=KINDS for that method; "cut" on a request
that turns out not to be eligible is forwarded as is and counted as
cut_skipped). --reset-accept-first N resets the first N connections right after
accept, before reading anything. --methods limits which request methods may get
a fault (default all); --after N lets the first N of those pass untouched
before the plan starts (e.g. --methods POST --after 1 --reset-first 1 hits
the second POST: a multipart upload's CompleteMultipartUpload).
With threads and parallel clients, which request draws which random number can
vary from run to run; the seed fixes the sequence of draws, not the order.

--latency-ms L delays every chunk of data, in each direction, by L ms while
keeping order (one queue with timestamps per direction and connection).

Statistics (requests, connections, faults by kind, bytes) are written as JSON to
--stats-file after each request and on SIGTERM/SIGINT, and served at
GET /__faultproxy/stats. It only talks to loopback addresses, times out idle
sockets (--timeout, default 30 s), caps connections (--max-conns) and exits by
itself after --max-lifetime seconds (default 3600). Standard library only.
"""
import argparse
import errno
import json
import os
import queue
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

MAX_HEAD = 64 * 1024
IO_CHUNK = 64 * 1024
REPLAY_MAX = 1 << 20          # request bodies up to this size are kept, for one upstream retry
POOL_IDLE_MAX = 2.0           # seconds a pooled upstream connection may idle before it is dropped
CONTROL_PREFIX = "/__faultproxy/"


class ProtocolError(Exception):
    pass


class ClientGone(Exception):
    pass


# ---------------------------------------------------------------- statistics

class Stats:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()     # snapshots reach the file in order
        self.d = {
            "requests": 0, "connections": 0, "active_connections": 0,
            "forwarded": 0, "control": 0,
            "faults": {"503": 0, "500": 0, "reset": 0, "reset_accept": 0, "cut": 0, "delay": 0},
            "cut_skipped": 0, "refused_overload": 0, "upstream_errors": 0,
            "upstream_retries": 0, "client_errors": 0,
            "methods": {}, "statuses": {},
            "bytes_from_client": 0, "bytes_to_client": 0,
        }

    def add(self, key, n=1):
        with self.lock:
            self.d[key] += n

    def fault(self, kind):
        with self.lock:
            self.d["faults"][kind] += 1

    def request(self, method):
        with self.lock:
            self.d["requests"] += 1
            self.d["methods"][method] = self.d["methods"].get(method, 0) + 1

    def status(self, code):
        with self.lock:
            k = str(code)
            self.d["statuses"][k] = self.d["statuses"].get(k, 0) + 1

    def snapshot(self):
        with self.lock:
            d = json.loads(json.dumps(self.d))
        d["faults_total"] = sum(v for k, v in d["faults"].items() if k != "delay")
        return d

    def write(self):
        if not self.path:
            return
        with self.write_lock:
            self._write()

    def _write(self):
        data = json.dumps(self.snapshot(), indent=1, sort_keys=True) + "\n"
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        try:
            with open(tmp, "w") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ---------------------------------------------------------------- fault plan

class Plan:
    def __init__(self, a):
        self.lock = threading.Lock()
        self.reset_left = a.reset_first
        self.fail_left = a.fail_first
        self.fail_kind = str(a.status)
        self.cut_left = a.cut_body_first
        self.cut_min = a.cut_min_bytes
        self.reset_accept_left = a.reset_accept_first
        self.p = a.random
        self.rng = random.Random(a.seed)
        self.kinds = a.kinds
        self.kinds_for = dict(a.kinds_for or [])
        self.methods = a.methods
        self.after_left = a.after

    def on_accept(self):
        with self.lock:
            if self.reset_accept_left > 0:
                self.reset_accept_left -= 1
                return True
            return False

    def on_request(self, method):
        """The fault for a request: '503', '500', 'reset', 'cut?' (if eligible) or None."""
        if self.methods and method not in self.methods:
            return None
        with self.lock:
            if self.after_left > 0:
                self.after_left -= 1
                return None
            if self.reset_left > 0:
                self.reset_left -= 1
                return "reset"
            if self.fail_left > 0:
                self.fail_left -= 1
                return self.fail_kind
            if self.cut_left > 0 and method == "GET":
                return "cut?"
            if self.p > 0 and self.rng.random() < self.p:
                kinds = self.kinds_for.get(method, self.kinds)
                if method != "GET":
                    kinds = [k for k in kinds if k != "cut"]
                if not kinds:
                    return None
                k = self.rng.choice(kinds)
                return "rcut?" if k == "cut" else k
            return None

    def take_cut(self, kind, eligible):
        """Called for 'cut?'/'rcut?' once the answer's headers are known."""
        if not eligible:
            return False
        if kind == "rcut?":
            return True
        with self.lock:
            if self.cut_left > 0:
                self.cut_left -= 1
                return True
            return False


# ---------------------------------------------------------------- sockets

def reset_socket(sock):
    """Close with an RST (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Out:
    """A writer on a socket, optionally delaying every chunk by a fixed latency."""

    def __init__(self, sock, latency_s, timeout):
        self.sock = sock
        self.latency = latency_s
        self.timeout = timeout
        self.err = None
        self.q = None
        if latency_s > 0:
            self.q = queue.Queue()
            self.cv = threading.Condition()
            self.pending = 0
            t = threading.Thread(target=self._run, daemon=True)
            t.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if self.err is None:
                try:
                    self.sock.sendall(data)
                except OSError as e:
                    self.err = e
            with self.cv:
                self.pending -= 1
                self.cv.notify_all()

    def send(self, data):
        if not data:
            return
        if self.q is None:
            self.sock.sendall(data)
            return
        if self.err is not None:
            raise self.err
        with self.cv:
            self.pending += 1
        self.q.put((time.monotonic() + self.latency, bytes(data)))

    def drain(self):
        """Wait until everything queued is on the wire (or failed)."""
        if self.q is None:
            return
        deadline = time.monotonic() + self.latency + self.timeout
        with self.cv:
            while self.pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("latency queue did not drain")
                self.cv.wait(left)
        if self.err is not None:
            raise self.err

    def close(self):
        if self.q is not None:
            self.q.put(None)


class Conn:
    """A socket with a buffered reader and an Out writer."""

    def __init__(self, sock, latency_s, timeout):
        sock.settimeout(timeout)
        self.sock = sock
        self.rf = sock.makefile("rb", buffering=IO_CHUNK)
        self.out = Out(sock, latency_s, timeout)
        self.last_used = time.monotonic()
        self.closed = False

    def close(self, reset=False):
        if self.closed:
            return
        self.closed = True
        try:
            self.out.drain()
        except OSError:
            pass
        self.out.close()
        try:
            self.rf.close()
        except OSError:
            pass
        if reset:
            reset_socket(self.sock)
        else:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass

    def stale(self):
        """A pooled connection that idled too long, or is readable (EOF/junk), is not reused."""
        if self.closed or time.monotonic() - self.last_used > POOL_IDLE_MAX:
            return True
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(r)


def read_line(rf, limit=MAX_HEAD):
    line = rf.readline(limit + 1)
    if len(line) > limit:
        raise ProtocolError("line too long")
    return line


def read_head(rf):
    """Read a message head. Returns (raw bytes, start line, [(name, value)]) or None at EOF."""
    raw = bytearray()
    line = read_line(rf)
    while line in (b"\r\n", b"\n"):          # tolerate stray CRLF between messages
        line = read_line(rf)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("truncated start line")
    raw += line
    start = line.decode("latin-1").rstrip("\r\n")
    headers = []
    while True:
        line = read_line(rf)
        if not line or not line.endswith(b"\n"):
            raise ProtocolError("truncated head")
        raw += line
        if len(raw) > MAX_HEAD:
            raise ProtocolError("head too long")
        if line in (b"\r\n", b"\n"):
            break
        s = line.decode("latin-1").rstrip("\r\n")
        if s[:1] in (" ", "\t") and headers:     # obsolete folding
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + s.strip())
            continue
        name, sep, value = s.partition(":")
        if not sep:
            raise ProtocolError("bad header line")
        headers.append((name.strip().lower(), value.strip()))
    return bytes(raw), start, headers


def header(headers, name):
    for n, v in headers:
        if n == name:
            return v
    return None


def has_token(headers, name, token):
    for n, v in headers:
        if n == name and token in [t.strip().lower() for t in v.split(",")]:
            return True
    return False


def build_head(start, headers):
    lines = [start] + ["%s: %s" % (n, v) for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def copy_exact(rf, n, sink):
    """Pass n bytes from rf to sink(data); raises ProtocolError on early EOF."""
    while n > 0:
        data = rf.read1(min(IO_CHUNK, n))
        if not data:
            raise ProtocolError("early EOF, %d bytes missing" % n)
        sink(data)
        n -= len(data)


def copy_chunked(rf, sink):
    """Pass a chunked body verbatim (sizes, data, trailers); returns the data length."""
    total = 0
    while True:
        line = read_line(rf, 4096)
        if not line.endswith(b"\n"):
            raise ProtocolError("truncated chunk size")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise ProtocolError("bad chunk size")
        sink(line)
        if size == 0:
            while True:
                t = read_line(rf)
                if not t.endswith(b"\n"):
                    raise ProtocolError("truncated trailer")
                sink(t)
                if t in (b"\r\n", b"\n"):
                    return total
        copy_exact(rf, size + 2, sink)
        total += size


def copy_until_eof(rf, sink):
    while True:
        data = rf.read1(IO_CHUNK)
        if not data:
            return
        sink(data)


def body_kind(headers):
    """('chunked', None) | ('length', n) | ('none', 0) for a request."""
    te = header(headers, "transfer-encoding")
    if te is not None and te.strip().lower() != "identity":
        if not te.strip().lower().endswith("chunked"):
            raise ProtocolError("unsupported transfer-encoding %r" % te)
        return "chunked", None
    cl = header(headers, "content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise ProtocolError("bad content-length")
        if n < 0:
            raise ProtocolError("negative content-length")
        return "length", n
    return "none", 0


def s3_error(status, code, message, rid):
    reason = {500: "Internal Server Error", 503: "Slow Down", 502: "Bad Gateway"}[status]
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<RequestId>%s</RequestId><HostId>faultproxy</HostId></Error>\n'
            % (code, message, rid)).encode()
    head = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
            "x-amz-request-id: %s\r\nServer: faultproxy\r\n\r\n" % (status, reason, len(body), rid))
    return head.encode() + body


# ---------------------------------------------------------------- the proxy

class Proxy:
    def __init__(self, a):
        self.a = a
        u = urllib.parse.urlsplit(a.upstream)
        if u.scheme != "http" or not u.hostname or not u.port:
            raise SystemExit("faultproxy: upstream must be http://127.0.0.1:PORT")
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("faultproxy: upstream must be a loopback address")
        self.up_host = "127.0.0.1" if u.hostname == "localhost" else u.hostname
        self.up_port = u.port
        self.plan = Plan(a)
        self.stats = Stats(a.stats_file)
        self.latency = a.latency_ms / 1000.0
        self.delay = a.delay_ms / 1000.0
        self.timeout = a.timeout
        self.slots = threading.BoundedSemaphore(a.max_conns)
        self.seq = 0
        self.seq_lock = threading.Lock()

    def next_id(self):
        with self.seq_lock:
            self.seq += 1
            return "FP%08d" % self.seq

    # -- upstream

    def connect_upstream(self):
        fam = socket.AF_INET6 if ":" in self.up_host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(min(self.timeout, 10))
        try:
            s.connect((self.up_host, self.up_port))
        except OSError:
            s.close()
            raise
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Conn(s, self.latency, self.timeout)

    # -- one client connection

    def serve(self, csock, peer):
        self.stats.add("connections")
        self.stats.add("active_connections")
        client = Conn(csock, self.latency, self.timeout)
        upstream = None
        reset = False
        try:
            while True:
                keep, upstream, reset = self.one_request(client, upstream)
                if not keep:
                    break
        except (ProtocolError, OSError, ClientGone) as e:
            if not isinstance(e, (ConnectionResetError, BrokenPipeError, ClientGone)):
                self.stats.add("client_errors")
                if self.a.verbose:
                    print("faultproxy: %s: %s" % (peer, e), file=sys.stderr, flush=True)
        finally:
            if upstream is not None:
                upstream.close()
            client.close(reset=reset)
            self.stats.add("active_connections", -1)
            self.stats.write()
            self.slots.release()

    def one_request(self, client, upstream):
        """Handle one request. Returns (keep_alive, upstream_conn, reset_client)."""
        head = read_head(client.rf)
        if head is None:
            return False, upstream, False
        raw, start, headers = head
        parts = start.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ProtocolError("bad request line %r" % start[:80])
        method, target, version = parts
        kind, length = body_kind(headers)
        client_close = has_token(headers, "connection", "close") or (
            version == "HTTP/1.0" and not has_token(headers, "connection", "keep-alive"))
        expect = has_token(headers, "expect", "100-continue")
        cnt = self.stats.add

        if target.startswith(CONTROL_PREFIX):
            self.discard_body(client, kind, length, expect)
            self.control(client, method, target)
            return not client_close, upstream, False

        self.stats.request(method)
        fault = self.plan.on_request(method)
        if fault in ("503", "500", "reset"):
            self.discard_body(client, kind, length, expect)
            self.stats.fault(fault)
            if fault == "reset":
                self.stats.write()
                return False, upstream, True
            self.stats.status(int(fault))
            self.stats.write()      # before the answer: a client that exits at once sees it counted
            if fault == "503":
                client.out.send(s3_error(503, "SlowDown", "Please reduce your request rate.", self.next_id()))
            else:
                client.out.send(s3_error(500, "InternalError",
                                         "We encountered an internal error. Please try again.", self.next_id()))
            return not client_close, upstream, False

        if self.delay > 0:
            self.stats.fault("delay")
            time.sleep(self.delay)

        # The head sent upstream: no Expect (we answer 100 ourselves), our own connection handling.
        fwd_headers = [(n, v) for n, v in headers if n not in ("expect", "connection", "keep-alive",
                                                              "proxy-connection")]
        fwd_head = build_head(start, fwd_headers)
        if expect:
            client.out.send(b"HTTP/1.1 100 Continue\r\n\r\n")

        # Small bodies are kept so that a stale pooled connection can be retried.
        body = None
        if kind == "length" and length <= REPLAY_MAX:
            body = bytearray()
            copy_exact(client.rf, length, body.extend)
            cnt("bytes_from_client", length)
        elif kind == "none":
            body = b""

        for attempt in (0, 1):
            reused = upstream is not None
            if upstream is not None and upstream.stale():
                upstream.close()
                upstream = None
                reused = False
            if upstream is None:
                try:
                    upstream = self.connect_upstream()
                except OSError as e:
                    cnt("upstream_errors")
                    if body is None:
                        self.discard_body(client, kind, length, False)
                    client.out.send(s3_error(502, "BadGateway", "upstream: %s" % e, self.next_id()))
                    self.stats.status(502)
                    self.stats.write()
                    return False, None, False
            try:
                upstream.out.send(fwd_head)
                if body is not None:
                    upstream.out.send(body)
                elif kind == "chunked":
                    n = copy_chunked(client.rf, upstream.out.send)
                    cnt("bytes_from_client", n)
                else:
                    copy_exact(client.rf, length, upstream.out.send)
                    cnt("bytes_from_client", length)
                resp = self.read_response_head(upstream)
                break
            except (OSError, ProtocolError) as e:
                upstream.close(reset=True)
                upstream = None
                if attempt == 0 and reused and body is not None:
                    cnt("upstream_retries")
                    continue
                cnt("upstream_errors")
                if self.a.verbose:
                    print("faultproxy: upstream: %s" % e, file=sys.stderr, flush=True)
                # We cannot answer for the server: break the connection, the client retries.
                return False, None, True

        rraw, rstart, rheaders, code = resp
        self.stats.status(code)
        no_body = method == "HEAD" or code in (204, 304) or 100 <= code < 200
        te = header(rheaders, "transfer-encoding")
        cl = header(rheaders, "content-length")
        if no_body:
            rkind, rlen = "none", 0
        elif te is not None and te.strip().lower() != "identity":
            rkind, rlen = "chunked", None
        elif cl is not None:
            try:
                rkind, rlen = "length", int(cl)
            except ValueError:
                upstream.close(reset=True)
                return False, None, True
        else:
            rkind, rlen = "eof", None
        upstream_close = has_token(rheaders, "connection", "close") or rkind == "eof" or \
            rstart.startswith("HTTP/1.0") and not has_token(rheaders, "connection", "keep-alive")

        cut = False
        if fault in ("cut?", "rcut?"):
            eligible = method == "GET" and 200 <= code < 300 and rkind == "length" and rlen > self.plan.cut_min
            cut = self.plan.take_cut(fault, eligible)
            if not cut and fault == "rcut?":
                cnt("cut_skipped")

        # Pass on the head, with our connection handling.
        out_headers = [(n, v) for n, v in rheaders if n not in ("connection", "keep-alive")]
        closing = client_close or upstream_close and rkind == "eof"
        if closing:
            out_headers.append(("connection", "close"))
        client.out.send(build_head(rstart, out_headers))

        sent = [0]

        def to_client(data):
            client.out.send(data)
            sent[0] += len(data)

        try:
            if cut:
                copy_exact(upstream.rf, rlen // 2, to_client)
                self.stats.fault("cut")
                cnt("bytes_to_client", sent[0])
                upstream.close(reset=True)
                self.stats.write()      # before the reset
                return False, None, True
            if rkind == "length":
                copy_exact(upstream.rf, rlen, to_client)
            elif rkind == "chunked":
                copy_chunked(upstream.rf, to_client)
            elif rkind == "eof":
                copy_until_eof(upstream.rf, to_client)
        except ProtocolError:
            # the upstream broke off: break the client connection the same way
            cnt("upstream_errors")
            cnt("bytes_to_client", sent[0])
            upstream.close(reset=True)
            return False, None, True
        cnt("bytes_to_client", sent[0])
        cnt("forwarded")
        upstream.last_used = time.monotonic()
        if upstream_close:
            upstream.close()
            upstream = None
        self.stats.write()
        return not closing, upstream, False

    def read_response_head(self, upstream):
        while True:
            h = read_head(upstream.rf)
            if h is None:
                raise ProtocolError("upstream closed before answering")
            rraw, rstart, rheaders = h
            p = rstart.split(" ", 2)
            if len(p) < 2 or not p[0].startswith("HTTP/1.") or not p[1].isdigit():
                raise ProtocolError("bad status line %r" % rstart[:80])
            code = int(p[1])
            if 100 <= code < 200 and code != 101:
                continue            # interim answer (we sent no Expect): drop it
            return rraw, rstart, rheaders, code

    def discard_body(self, client, kind, length, expect):
        if expect and (kind == "chunked" or length):
            client.out.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if kind == "chunked":
            n = copy_chunked(client.rf, lambda d: None)
        else:
            copy_exact(client.rf, length, lambda d: None)
            n = length
        self.stats.add("bytes_from_client", n)

    def control(self, client, method, target):
        self.stats.add("control")
        path = target.split("?", 1)[0]
        if path == CONTROL_PREFIX + "stats" and method in ("GET", "HEAD"):
            body = (json.dumps(self.stats.snapshot(), sort_keys=True) + "\n").encode()
            status = "200 OK"
        else:
            body = b'{"error": "unknown control request"}\n'
            status = "404 Not Found"
        head = ("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (status, len(body))).encode()
        client.out.send(head + (b"" if method == "HEAD" else body))

    # -- main loop

    def run(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.a.port))
        ls.listen(128)
        ls.settimeout(0.5)
        port = ls.getsockname()[1]
        self.stats.write()
        if self.a.port_file:
            tmp = self.a.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.replace(tmp, self.a.port_file)
        print(port, flush=True)

        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        deadline = time.monotonic() + self.a.max_lifetime
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                csock, peer = ls.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if e.errno in (errno.EINTR, errno.ECONNABORTED):
                    continue
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(0.1)
                    continue
                raise
            if self.plan.on_accept():
                self.stats.add("connections")
                self.stats.fault("reset_accept")
                reset_socket(csock)
                self.stats.write()
                continue
            if not self.slots.acquire(blocking=False):
                self.stats.add("refused_overload")
                reset_socket(csock)
                continue
            try:
                csock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(target=self.serve, args=(csock, peer), daemon=True)
                t.start()
            except Exception:
                self.slots.release()
                reset_socket(csock)
        ls.close()
        self.stats.write()
        # daemon threads die with the process; open client sockets are closed by the kernel
        os._exit(0)


def kinds_arg(s):
    out = [k.strip() for k in s.split(",") if k.strip()]
    for k in out:
        if k not in ("503", "500", "reset", "cut"):
            raise argparse.ArgumentTypeError("unknown fault kind %r (503, 500, reset, cut)" % k)
    return out


def kinds_for_arg(s):
    m, sep, k = s.partition("=")
    if not sep or not m.strip():
        raise argparse.ArgumentTypeError("--kinds-for takes METHOD=KIND,KIND")
    return m.strip().upper(), kinds_arg(k) if k.strip() else []


def methods_arg(s):
    return [m.strip().upper() for m in s.split(",") if m.strip()]


def main():
    p = argparse.ArgumentParser(description="HTTP/1.1 fault-injecting proxy on loopback (tests only)")
    p.add_argument("upstream", help="http://127.0.0.1:PORT")
    p.add_argument("--port", type=int, default=0, help="listen port (default: a free one)")
    p.add_argument("--port-file", help="write the listen port here")
    p.add_argument("--stats-file", help="write statistics (JSON) here")
    p.add_argument("--fail-first", type=int, default=0, metavar="N", help="answer the first N requests with --status")
    p.add_argument("--status", type=int, default=503, choices=(500, 503))
    p.add_argument("--reset-first", type=int, default=0, metavar="N", help="reset the first N requests after reading them")
    p.add_argument("--reset-accept-first", type=int, default=0, metavar="N", help="reset the first N connections on accept")
    p.add_argument("--cut-body-first", type=int, default=0, metavar="N",
                   help="cut the bodies of the first N 2xx GET answers longer than --cut-min-bytes")
    p.add_argument("--cut-min-bytes", type=int, default=1024)
    p.add_argument("--random", type=float, default=0.0, metavar="P", help="probability of a random fault per request")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kinds", type=kinds_arg, default=["503", "500", "reset", "cut"],
                   help="random fault kinds (default 503,500,reset,cut)")
    p.add_argument("--kinds-for", type=kinds_for_arg, action="append", metavar="METHOD=KINDS",
                   help="random fault kinds for one method, e.g. POST=503 (repeatable)")
    p.add_argument("--methods", type=methods_arg, default=None, help="only these methods get faults")
    p.add_argument("--after", type=int, default=0, metavar="N",
                   help="the first N requests (of --methods) pass untouched before the plan starts")
    p.add_argument("--delay-ms", type=int, default=0, help="sleep before forwarding each request")
    p.add_argument("--latency-ms", type=int, default=0, help="delay every chunk in each direction")
    p.add_argument("--timeout", type=float, default=30.0, help="socket timeout, seconds")
    p.add_argument("--max-conns", type=int, default=256)
    p.add_argument("--max-lifetime", type=float, default=3600.0, help="exit after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args()
    if not 0.0 <= a.random <= 1.0:
        p.error("--random takes a probability between 0 and 1")
    if min(a.after, a.fail_first, a.reset_first, a.reset_accept_first, a.cut_body_first, a.delay_ms, a.latency_ms) < 0:
        p.error("counts and delays must not be negative")
    Proxy(a).run()


if __name__ == "__main__":
    main()
