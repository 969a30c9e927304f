#!/usr/bin/env bash
# test_memory.sh - the mount's memory stays bounded while a 2 GiB file goes
# through it: written with dd, then (after a remount, so the reads reach the
# daemon and not the kernel's page cache) read back with cat and checksummed.
#
# The mount process's VmRSS is sampled every 100 ms from /proc/PID/status
# (PID from --stats-file), and its VmHWM (peak RSS) is read at the end of each
# phase (reset with /proc/PID/clear_refs before it). Default --memory-limit is
# 128M; the peak RSS must stay under MEMORY_MAX_MIB (default 128 MiB: buffers,
# code, libcurl, TLS and allocator slack all within the limit).
#
# Always measures a build without sanitizers (ASan inflates RSS several times):
# CLOUDMOUNT_RELEASE (default build/src/cloudmount), whatever CLOUDMOUNT says;
# a sanitizer build is refused. Env: MEMORY_TEST_MIB (default 2048).
. "$(dirname "$0")/lib.sh"

RELEASE=${CLOUDMOUNT_RELEASE:-$ROOT/build/src/cloudmount}
SIZE_MIB=${MEMORY_TEST_MIB:-2048}
MAX_MIB=${MEMORY_MAX_MIB:-128}
MNT=$WORK/mnt
STATS=$WORK/stats.json
mkdir -p "$MNT"
SAMPLER_PID=
cleanup() {
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	if mountpoint -q "$MNT" 2>/dev/null; then
		"$RELEASE" unmount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -x "$RELEASE" ]; then
	it "the release binary exists ($RELEASE; set CLOUDMOUNT_RELEASE)" false
	finish
	exit
fi
if ldd "$RELEASE" 2>/dev/null | grep -Eq 'lib(asan|tsan|ubsan|lsan)'; then
	it "$RELEASE is built without sanitizers (set CLOUDMOUNT_RELEASE to a release build)" false
	finish
	exit
fi
bt=$(meson configure "$(dirname "$(dirname "$RELEASE")")" 2>/dev/null | awk '$1 == "buildtype" {print $2}')
echo "# measuring $RELEASE (buildtype ${bt:-unknown}), $SIZE_MIB MiB, limit $MAX_MIB MiB"

# A background sampler: VmRSS every 100 ms into a file, one "rss_kib" a line.
cat >"$WORK/sampler.py" <<'EOF'
import sys, time
pid, out = sys.argv[1], open(sys.argv[2], "w", buffering=1)
while True:
    try:
        with open("/proc/%s/status" % pid) as f:
            st = dict(l.split(":", 1) for l in f if l.startswith(("VmRSS", "VmHWM")))
    except OSError:
        break
    out.write("%s %s\n" % (st["VmRSS"].split()[0], st["VmHWM"].split()[0]))
    time.sleep(0.1)
EOF

# mount_rel: mount with the release binary; sets PID and starts the sampler
PID=
mount_rel() { # PHASE
	rm -f "$STATS"
	"$RELEASE" mount "s3://$BUCKET" "$MNT" --endpoint "$S3_ENDPOINT" --path-style --stats-file "$STATS" \
		--log-file "$WORK/mount-$1.log" || return 1
	for _ in $(seq 1 50); do [ -s "$STATS" ] && break; sleep 0.1; done
	PID=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$STATS" 2>/dev/null)
	[ -n "$PID" ] || return 1
	echo 5 >"/proc/$PID/clear_refs" 2>/dev/null # reset VmHWM: the peak of this phase only
	"$PY" "$WORK/sampler.py" "$PID" "$WORK/samples-$1" &
	SAMPLER_PID=$!
}
# end_phase PHASE: stop the sampler; the phase's peaks in MiB: HWM (VmHWM), PEAK
# (largest sampled VmRSS), NS (samples), BUF (the mount's own data-buffer peak)
HWM=0 PEAK=0 NS=0 BUF=0
end_phase() {
	local hwm
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$PID/status" 2>/dev/null)
	sleep 0.6 # one more stats-file write
	kill "$SAMPLER_PID" 2>/dev/null
	wait "$SAMPLER_PID" 2>/dev/null
	SAMPLER_PID=
	HWM=$((${hwm:-0} / 1024))
	PEAK=$(awk 'BEGIN {m = 0} $1 > m {m = $1} END {printf "%d", m / 1024}' "$WORK/samples-$1")
	NS=$(wc -l <"$WORK/samples-$1")
	BUF=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["memory_peak"] >> 20)' "$STATS" 2>/dev/null || echo '?')
}
rate() { # T0 T1: "S s, R MiB/s"
	awk -v a="$1" -v b="$2" -v m="$SIZE_MIB" 'BEGIN {printf "%.1f s, %.0f MiB/s", b - a, m / (b - a)}'
}

# the data: a deterministic pseudo-random stream (AES-CTR of zeros), SIZE_MIB MiB
stream() {
	# openssl dies of SIGPIPE when head is done: not a failure
	{ openssl enc -aes-128-ctr -nosalt -pass pass:cloudmount-memory -pbkdf2 </dev/zero 2>/dev/null || true; } |
		head -c $((SIZE_MIB << 20))
}

do_write() {
	(
		set -o pipefail
		stream | timeout 600 dd of="$MNT/big.bin" bs=1M iflag=fullblock status=none
	)
}
do_read() {
	(
		set -o pipefail
		timeout 600 cat "$MNT/big.bin" | sha256sum | cut -d' ' -f1 >"$WORK/read.sum"
	)
}

BUCKET=$(new_bucket) || exit 1
stream | sha256sum | cut -d' ' -f1 >"$WORK/written.sum" # the same stream dd will write

# ---- write ----
it "mount (release binary, default --memory-limit 128M)" mount_rel write
t0=$(date +%s.%N)
it "dd writes $SIZE_MIB MiB into the mount" do_write
t1=$(date +%s.%N)
end_phase write
it "unmount after the write" "$RELEASE" unmount "$MNT"
echo "# write: $(rate "$t0" "$t1"); peak RSS $HWM MiB (VmHWM; sampled max $PEAK MiB over $NS samples); data buffers peak $BUF MiB"
it "peak RSS while writing $HWM MiB < $MAX_MIB MiB" test "$HWM" -gt 0 -a "$HWM" -lt "$MAX_MIB"
it "sampled RSS while writing $PEAK MiB < $MAX_MIB MiB" test "$PEAK" -lt "$MAX_MIB"
it "awscli: the object is $SIZE_MIB MiB" \
	test "$(awsx s3api head-object --bucket "$BUCKET" --key big.bin --query ContentLength --output text)" = $((SIZE_MIB << 20))

# ---- read (a fresh mount: nothing in the page cache, every byte through the daemon) ----
it "mount again for the read" mount_rel read
t0=$(date +%s.%N)
it "cat reads it back through the mount" do_read
t1=$(date +%s.%N)
end_phase read
echo "# read: $(rate "$t0" "$t1"); peak RSS $HWM MiB (VmHWM; sampled max $PEAK MiB over $NS samples); data buffers peak $BUF MiB"
it "the checksum read equals the checksum written ($(cut -c1-16 "$WORK/written.sum" 2>/dev/null))" \
	sh -c "test -s '$WORK/written.sum' && cmp '$WORK/written.sum' '$WORK/read.sum'"
it "peak RSS while reading $HWM MiB < $MAX_MIB MiB" test "$HWM" -gt 0 -a "$HWM" -lt "$MAX_MIB"
it "sampled RSS while reading $PEAK MiB < $MAX_MIB MiB" test "$PEAK" -lt "$MAX_MIB"
it "unmount after the read" "$RELEASE" unmount "$MNT"
# free the server's space (radosgw's memstore keeps it in RAM)
awsx s3 rm "s3://$BUCKET/big.bin" >/dev/null 2>&1
finish
