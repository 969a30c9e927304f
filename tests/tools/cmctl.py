#!/usr/bin/python3
"""cmctl.py - a small client of CloudMount's manager daemon, for tests.

The control socket is $XDG_RUNTIME_DIR/cloudmount/control.sock (or --socket).
Protocol: one JSON object per line (src/manager/control.h).

    cmctl.py call JSON                  send one request, print the answer line
    cmctl.py get NAME KEY               print remotes[NAME][KEY] from status
    cmctl.py wait NAME STATES SECS [--restarts-min N] [--seen FILE]
                                        poll status every 0.1 s until NAME's state is one
                                        of STATES (comma-separated); print its JSON; exit 1
                                        on timeout. --seen appends every state observed.
    cmctl.py subscribe FILE             subscribe; append "EPOCH JSON" per line received
                                        to FILE (flushed) until the daemon closes
    cmctl.py probe                      connect and read what the daemon says unasked
                                        (for another user): prints "CONNECT-ERROR errno
                                        text", or "LINE ..." / "EOF"
Standard library only.
"""
import json
import os
import socket
import sys
import time


def sock_path():
    rt = os.environ.get("XDG_RUNTIME_DIR") or "/tmp/cloudmount-%d" % os.getuid()
    return os.path.join(rt, "cloudmount", "control.sock")


def connect(timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path())
    return s


def call(req, timeout=10.0):
    s = connect(timeout)
    try:
        s.sendall((json.dumps(req) + "\n").encode())
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\n", 1)[0].decode()
    finally:
        s.close()


def slot(name):
    ans = json.loads(call({"cmd": "status"}))
    for r in ans.get("remotes", []):
        if r.get("name") == name:
            return r
    return None


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "call":
        print(call(json.loads(argv[2])))
        return 0
    if cmd == "get":
        r = slot(argv[2])
        if r is None:
            return 1
        v = r.get(argv[3])
        print(json.dumps(v) if isinstance(v, (dict, list)) else v)
        return 0
    if cmd == "wait":
        name, states, secs = argv[2], argv[3].split(","), float(argv[4])
        rest = argv[5:]
        restarts_min, seen = None, None
        while rest:
            if rest[0] == "--restarts-min":
                restarts_min = int(rest[1])
            elif rest[0] == "--seen":
                seen = rest[1]
            rest = rest[2:]
        deadline = time.monotonic() + secs
        last, r = None, None
        while True:
            try:
                r = slot(name)
            except (OSError, ValueError) as e:
                r = {"state": "?no-daemon(%s)" % e}
            st = (r or {}).get("state")
            if seen and st != last:
                with open(seen, "a") as f:
                    f.write("%.3f %s %s\n" % (time.time(), st, (r or {}).get("reason", "")))
            last = st
            if st in states and (restarts_min is None or (r or {}).get("restarts", 0) >= restarts_min):
                print(json.dumps(r))
                return 0
            if time.monotonic() > deadline:
                print("timeout; last: %s" % json.dumps(r))
                return 1
            time.sleep(0.1)
    if cmd == "subscribe":
        out = open(argv[2], "a", buffering=1)
        s = connect(None)
        s.sendall(b'{"cmd": "subscribe"}\n')
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out.write("%.3f %s\n" % (time.time(), line.decode(errors="replace")))
        return 0
    if cmd == "probe":
        try:
            s = connect(5.0)
        except OSError as e:
            print("CONNECT-ERROR %d %s" % (e.errno or 0, e.strerror))
            return 0
        try:
            s.sendall(b'{"cmd": "ping"}\n')
        except OSError:
            pass
        try:
            data = s.recv(65536)
        except OSError as e:
            print("RECV-ERROR %s" % e)
            return 0
        print("LINE " + data.decode(errors="replace").strip() if data else "EOF")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
