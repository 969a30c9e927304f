#!/usr/bin/env bash
# test_exerciser.sh - data integrity under a random mix of operations.
#
# tests/tools/exerciser.py runs a seeded mix of writes at random offsets,
# appends, large sequential writes (multipart with --part-size 5M), truncates,
# reads, renames, unlink+recreate, reopen cycles (O_TRUNC, O_APPEND) and
# fsyncs on a few files in the mount, checking every step against an
# in-memory shadow. After unmounting, awscli (the second client) downloads
# every object, which must equal the shadows byte for byte, with no key
# missing or extra.
#
# A second run goes through tests/tools/faultproxy.py (random 503/500/reset/
# cut on 5% of requests, then on 20%; mount with --retries 0 so that errors
# reach the program): errors are allowed, wrong data never (see the exerciser's
# docstring for what it asserts), every op is bounded in time, and awscli
# must then show each file's final content.
#
# Patterns that once hit bugs (a listing taken while a file is open, close
# racing unlink, the view after a failed close or rename) are also checked on
# their own, as plain cases. Every program that might block in the mount is bounded: on a
# hang the mount daemon is killed (nothing else frees a process blocked in a
# FUSE request).
#
# Env: EXERCISER_OPS (default 2500), EXERCISER_FAULT_OPS (300), EXERCISER_HEAVY_OPS (150),
# EXERCISER_SEED (default 4242), EXERCISER_FILES (6).
. "$(dirname "$0")/lib.sh"

EXERCISER="$ROOT/tests/tools/exerciser.py"
OPS=${EXERCISER_OPS:-2500}
FAULT_OPS=${EXERCISER_FAULT_OPS:-300}
HEAVY_OPS=${EXERCISER_HEAVY_OPS:-150}
SEED=${EXERCISER_SEED:-4242}
FILES=${EXERCISER_FILES:-6}
TTL=1
SETTLE=1.6 # the metadata TTL and some: after it the mount's view must be the store's
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup_mount() {
	if mountpoint -q "$MNT" 2>/dev/null; then
		"$CLOUDMOUNT" unmount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT" 2>/dev/null
	fi
}
trap 'cleanup_mount; stop_proxy; rm -rf "$WORK"' EXIT

# mount_px BUCKET [options]: mount through the running proxy
mount_px() {
	local b=$1
	shift
	fresh_mnt
	timeout 120 "$CLOUDMOUNT" mount "s3://$b" "$MNT" --endpoint "http://127.0.0.1:$PROXY_PORT" --path-style \
		--metadata-ttl $TTL --part-size 5M "$@"
}

# fresh_mnt: detach whatever is left on $MNT (a daemon killed after a hang)
fresh_mnt() {
	if grep -q " $MNT " /proc/mounts; then
		"$CLOUDMOUNT" unmount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	return 0
}

# mount_pid STATS: the mount daemon's pid, from its stats file (for --kill-on-hang:
# a program blocked in a FUSE request is only freed when the daemon answers or dies)
mount_pid() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ -s "$1" ] && break
		sleep 0.1
	done
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$1" 2>/dev/null || echo 0
}

# bounded SECS PID CMD...: run CMD; if it still runs after SECS, SIGKILL the
# mount daemon PID (a program blocked in a FUSE request is only freed that way)
bounded() {
	local secs=$1 pid=$2 c i
	shift 2
	"$@" &
	c=$!
	for ((i = 0; i < secs * 10; i++)); do
		kill -0 "$c" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$c" 2>/dev/null; then
		echo "HANG: still running after $secs s; killing the mount daemon (pid $pid)"
		kill -KILL "$pid"
	fi
	wait "$c"
}

unmount() {
	timeout 300 "$CLOUDMOUNT" unmount "$MNT"
}

# same_as_store BUCKET SHADOWDIR DLDIR: awscli downloads every object of BUCKET
# into DLDIR; the keys are exactly the shadow's names and each object equals
# its shadow byte for byte.
same_as_store() {
	local b=$1 sh=$2 dl=$3 keys want
	rm -rf "$dl"
	mkdir -p "$dl"
	awsx s3 cp --recursive --only-show-errors "s3://$b" "$dl" || return 1
	keys=$(awsx s3api list-objects-v2 --bucket "$b" --query 'Contents[].Key' --output text | tr '\t' '\n' |
		grep -v '^None$' | sort | tr '\n' ' ')
	want=$(find "$sh" -type f -printf '%P\n' | sort | tr '\n' ' ')
	echo "keys in the bucket: $keys"
	echo "shadow files:       $want"
	[ "$keys" = "$want" ] || { echo "the key set differs"; return 1; }
	diff -r "$sh" "$dl" && echo "all $(echo "$want" | wc -w) objects equal their shadows"
}

stat_of() { # FILE FIELD: a counter from a stats file
	"$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null || echo 0
}

# manifest_count FILE STATUS: files of a status ("ok" or "resynced") in the manifest
manifest_count() {
	"$PY" -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(sum(1 for f in m["files"].values() if f["status"] == sys.argv[2]))' "$1" "$2"
}

# ---- 1. the random mix, no faults ----------------------------------------
B1=$(new_bucket) || exit 1
fresh_mnt
it "mount (metadata TTL $TTL s, part size 5M)" cm mount "s3://$B1" "$MNT" --metadata-ttl $TTL --part-size 5M \
	--stats-file "$WORK/stats1.json" --log-file "$WORK/mount1.log"
t0=$(date +%s)
it "exerciser: $OPS ops on $FILES files, seed $SEED, every step matches the shadow" \
	timeout 900 "$PY" "$EXERCISER" "$MNT" --seed "$SEED" --ops "$OPS" --files "$FILES" \
	--kill-on-hang "$(mount_pid "$WORK/stats1.json")" \
	--shadow-dir "$WORK/shadow1" --manifest "$WORK/manifest1.json" --trace "$WORK/trace1.jsonl"
tail -n 2 "$WORK/last.out" | sed -e 's/^/# /'
echo "# exerciser run took $(($(date +%s) - t0)) s"
it "unmount" unmount
it "awscli: every object equals its shadow, no key missing or extra" \
	same_as_store "$B1" "$WORK/shadow1" "$WORK/dl1"
# POSTs are CreateMultipartUpload/CompleteMultipartUpload: files over 5M went up in parts
it "multipart uploads were used ($(stat_of "$WORK/stats1.json" post) POSTs, $(stat_of "$WORK/stats1.json" commits) commits)" \
	test "$(stat_of "$WORK/stats1.json" post)" -ge 2

# ---- 2. the random mix through the fault proxy ----------------------------
B2=$(new_bucket) || exit 1
if start_proxy faults --random 0.05 --seed 77 --kinds 503,500,reset,cut --after 20; then
	# --retries 0: the proxy's faults reach the program as errors instead of being retried away
	it "mount through the fault proxy (5% faults, --retries 0)" mount_px "$B2" --retries 0 \
		--log-file "$WORK/mount2.log" --stats-file "$WORK/stats2.json"
	t0=$(date +%s)
	it "exerciser with faults: $FAULT_OPS ops, errors allowed, wrong data never, every op bounded (120 s)" \
		timeout 900 "$PY" "$EXERCISER" "$MNT" --seed $((SEED + 1)) --ops "$FAULT_OPS" --files 4 \
		--allow-errors --op-timeout 120 --settle $SETTLE \
		--kill-on-hang "$(mount_pid "$WORK/stats2.json")" \
		--shadow-dir "$WORK/shadow2" --manifest "$WORK/manifest2.json" --trace "$WORK/trace2.jsonl" \
		--verify-cmd "timeout 300 '$CLOUDMOUNT' unmount '$MNT' && \
			'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp --recursive --only-show-errors 's3://$B2' '$WORK/dl2'" \
		--verify-dir "$WORK/dl2"
	grep -E '^exerciser: [0-9]+ files' "$WORK/last.out" | sed -e 's/^/# /'
	grep -E '^exerciser: note' "$WORK/last.out" | head -n 5 | cut -c1-300 | sed -e 's/^/# /'
	echo "# fault run took $(($(date +%s) - t0)) s; proxy: $("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1])); print(d["requests"], "requests,", d["faults_total"], "faults", d["faults"])' \
		"$WORK/faults.stats.json" 2>/dev/null)"
	cleanup_mount
	stop_proxy
	if [ -s "$WORK/manifest2.json" ]; then
		nok=$(manifest_count "$WORK/manifest2.json" ok)
		nre=$(manifest_count "$WORK/manifest2.json" resynced)
		it "awscli: the $nok files whose last close succeeded and the $nre read back after an error equal their shadows" \
			same_as_store "$B2" "$WORK/shadow2" "$WORK/dl2b"
	else
		it "the fault run left a manifest" false
	fi
else
	it "faultproxy started" false
fi

# ---- 2b. heavier faults: 20% of requests, so that errors hit every path ----
B2H=$(new_bucket) || exit 1
if start_proxy heavy --random 0.2 --seed 78 --kinds 503,500,reset,cut --after 20; then
	it "mount through the fault proxy (20% faults, --retries 0)" mount_px "$B2H" --retries 0 \
		--log-file "$WORK/mount2h.log" --stats-file "$WORK/stats2h.json"
	t0=$(date +%s)
	it "exerciser with heavy faults: $HEAVY_OPS ops, wrong data never, every op bounded" \
		timeout 900 "$PY" "$EXERCISER" "$MNT" --seed $((SEED + 2)) --ops "$HEAVY_OPS" --files 4 \
		--allow-errors --op-timeout 120 --settle $SETTLE \
		--kill-on-hang "$(mount_pid "$WORK/stats2h.json")" \
		--shadow-dir "$WORK/shadow2h" --manifest "$WORK/manifest2h.json" --trace "$WORK/trace2h.jsonl"
	grep -E '^exerciser: [0-9]+ files' "$WORK/last.out" | sed -e 's/^/# /'
	echo "# heavy fault run took $(($(date +%s) - t0)) s"
	it "unmount" unmount
	stop_proxy
	if [ -s "$WORK/manifest2h.json" ]; then
		it "awscli: the files equal their shadows ($(manifest_count "$WORK/manifest2h.json" ok) closed ok, $(manifest_count "$WORK/manifest2h.json" resynced) read back after an error)" \
			same_as_store "$B2H" "$WORK/shadow2h" "$WORK/dl2h"
	fi
else
	it "faultproxy started" false
fi

# ---- 3. known bugs the exerciser found (left out of the runs above) ------
# Each case states the correct behaviour; it fails while the bug is there.
cat >"$WORK/stale_listing.py" <<'EOF'
import os, sys
D = sys.argv[1]; P = lambda n: os.path.join(D, n)
with open(P("a"), "wb") as f: f.write(b"v1")          # committed: 2 bytes
fd = os.open(P("a"), os.O_RDWR)
os.pwrite(fd, b"important" * 1000, 2)                 # 9002 bytes
os.listdir(D)                                         # ls while it is open
os.close(fd)                                          # committed: the store has 9002 bytes
os.listdir(D)                                         # ls again within --metadata-ttl
print("stat after close:", os.stat(P("a")).st_size, "(want 9002)")
fd = os.open(P("a"), os.O_RDWR)
os.pwrite(fd, b"+tail", 9002)
os.close(fd)
data = open(P("a"), "rb").read()
ok = data == b"v1" + b"important" * 1000 + b"+tail"
print(len(data), "bytes;", "ok" if ok else "WRONG: %r..." % data[:16])
sys.exit(0 if ok else 1)
EOF
cat >"$WORK/orphan.py" <<'EOF'
import os, sys
D = sys.argv[1]; P = lambda n: os.path.join(D, n)
with open(P("o"), "wb") as f: f.write(b"x" * 30000)
fd = os.open(P("o"), os.O_RDWR)
os.unlink(P("o"))
os.pwrite(fd, b"y" * 100, 1000)                       # POSIX: still usable until closed
assert os.pread(fd, 100, 1000) == b"y" * 100
assert os.pread(fd, 10, 0) == b"x" * 10
os.close(fd)
assert not os.path.exists(P("o"))
print("ok")
EOF
cat >"$WORK/release_race.py" <<'EOF'
import os, sys
D = sys.argv[1]; P = lambda n: os.path.join(D, n)
for i in range(int(sys.argv[2])):
    n = P("race%d" % i)
    with open(n, "wb") as f: f.write(b"r" * (1 << 20))
    fd = os.open(n, os.O_RDWR)
    os.pread(fd, 4096, 0)
    os.close(fd)        # the kernel sends FUSE RELEASE after close() returned,
    os.unlink(n)        # so this may meet the RELEASE still being handled
    assert not os.path.exists(n)
print("ok")
EOF
cat >"$WORK/failed_close.py" <<'EOF'
import os, sys, time
D = sys.argv[1]; P = lambda n: os.path.join(D, n)
with open(P("a"), "wb") as f: f.write(b"old" * 2000)   # the only PUT that passes: 6000 bytes
fd = os.open(P("a"), os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"NEW" * 1000)
try:
    os.close(fd); print("close succeeded but the proxy fails every PUT"); sys.exit(1)
except OSError as e: print("close:", e)
st = os.stat(P("a")).st_size
data = open(P("a"), "rb").read()
print("right after: stat %d, read %d bytes (%s); the store has the 6000-byte old object" % (
    st, len(data), "old" if data == b"old" * 2000 else "the lost new data" if data == b"NEW" * 1000 else "other"))
sys.exit(0 if st == 6000 and data == b"old" * 2000 else 1)
EOF
cat >"$WORK/failed_rename.py" <<'EOF'
import os, sys, time
D = sys.argv[1]; P = lambda n: os.path.join(D, n)
with open(P("a"), "wb") as f: f.write(b"data" * 1000)
try:
    os.rename(P("a"), P("b")); print("rename succeeded but the proxy fails every DELETE"); sys.exit(1)
except OSError as e: print("rename:", e)
now = (os.path.exists(P("a")), os.path.exists(P("b")))
time.sleep(float(sys.argv[2]))
later = (os.path.exists(P("a")), os.path.exists(P("b")))
print("(a, b) exist right after:", now, "after the TTL:", later, "ls:", sorted(os.listdir(D)))
intact = open(P("a"), "rb").read() == b"data" * 1000
# argv[3] "rollback": the copy was taken back, only a exists; "stuck": the
# removal of the copy failed too, so after the TTL the mount shows both, as
# the store has them, and a is intact either way
if sys.argv[3] == "rollback":
    sys.exit(0 if now == later == (True, False) and intact else 1)
sys.exit(0 if now[0] and later == (True, True) and intact else 1)
EOF

B3=$(new_bucket) || exit 1
fresh_mnt
it "mount for the known-bug cases" cm mount "s3://$B3" "$MNT" --metadata-ttl $TTL --part-size 5M \
	--stats-file "$WORK/stats3.json"
pid3=$(mount_pid "$WORK/stats3.json")
it "stale listing: an ls taken while a file is open must not undo its commit (data loss)" \
	bounded 60 "$pid3" "$PY" "$WORK/stale_listing.py" "$MNT"
it "orphan: a file unlinked while open stays readable and writable until closed" \
	bounded 60 "$pid3" "$PY" "$WORK/orphan.py" "$MNT"
it "release race: close then unlink at once, 200 times (no ENOENT, no hang, no use after free)" \
	bounded 60 "$pid3" "$PY" "$WORK/release_race.py" "$MNT" 200
it "unmount" unmount

B4=$(new_bucket) || exit 1
if start_proxy failput --methods PUT --after 1 --fail-first 1000 --status 500; then
	it "mount through a proxy that fails every PUT after the first" mount_px "$B4" --retries 0
	it "after a failed close the mount shows what the store has (not the lost data)" \
		"$PY" "$WORK/failed_close.py" "$MNT"
	cleanup_mount
fi
B5=$(new_bucket) || exit 1
if start_proxy faildel1 --methods DELETE --fail-first 1 --status 500; then
	it "mount through a proxy that fails the first DELETE" mount_px "$B5" --retries 0
	it "a rename whose delete fails (EIO) takes its copy back: only the old name" \
		"$PY" "$WORK/failed_rename.py" "$MNT" $SETTLE rollback
	cleanup_mount
	stop_proxy
	it "awscli: only the old key is in the bucket" \
		test "$(awsx s3api list-objects-v2 --bucket "$B5" --query 'Contents[].Key' --output text)" = a
fi
B6=$(new_bucket) || exit 1
if start_proxy faildel --methods DELETE --fail-first 1000 --status 500; then
	it "mount through a proxy that fails every DELETE" mount_px "$B6" --retries 0
	it "a rename that fails with every DELETE failing: the mount shows what the store has" \
		"$PY" "$WORK/failed_rename.py" "$MNT" $SETTLE stuck
	cleanup_mount
	stop_proxy
fi
finish
