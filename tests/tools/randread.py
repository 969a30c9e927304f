#!/usr/bin/python3
"""randread.py MOUNTED_FILE LOCAL_COPY STATS_FILE: random reads through a mount.

Reads 4 KiB at random offsets (POSIX_FADV_RANDOM, seeded) from the mounted
file and compares each with the local copy. After the first 40 reads the
mount should be copying the file to its staging disk (--fill-after); this
waits until the mount's stats file shows no more GETs coming and the staging
bytes holding the file, then does 300 more reads and prints, as JSON, the
GETs those cost and the staging bytes seen while the file was open. Exits 1
on a wrong byte.
"""
import json
import os
import random
import sys
import time


def stats(path):
    time.sleep(0.6)                 # the mount rewrites it twice a second
    with open(path) as f:
        return json.load(f)


def main():
    mounted, local, stats_path = sys.argv[1:4]
    size = os.path.getsize(local)
    rnd = random.Random(4242)
    fd = os.open(mounted, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    with open(local, "rb") as f:
        want = f.read()

    def reads(n):
        for _ in range(n):
            off = rnd.randrange(0, size - 4096)
            got = os.pread(fd, 4096, off)
            if got != want[off:off + 4096]:
                print(f"wrong bytes at {off}", file=sys.stderr)
                sys.exit(1)

    reads(40)
    last, staging = None, 0
    for _ in range(40):             # up to ~24 s for the copy to complete
        s = stats(stats_path)
        staging = max(staging, s["staging_bytes"])
        if s["get"] == last:
            break
        last = s["get"]
    reads(300)
    after = stats(stats_path)
    os.close(fd)
    print(json.dumps({"gets": after["get"] - last, "staging_open": staging,
                      "staging_closed": stats(stats_path)["staging_bytes"]}))


if __name__ == "__main__":
    main()
