#!/usr/bin/env bash
# test_retry.sh - CloudMount's retries and resumes against injected faults.
#
# tests/tools/faultproxy.py sits between cloudmount and the server under test
# (run.sh SERVER starts it) and answers 503/500, resets connections, or cuts
# GET bodies half-way, by a plan given on its command line. cloudmount talks
# only to the proxy; awsx (straight to the server) is the second client that
# checks what was stored. Run: tests/integration/run.sh s3rver test_retry.sh
. "$(dirname "$0")/lib.sh"

B=
trap 'stop_proxy; rm -rf "$WORK"' EXIT

# cloudmount through the proxy (the `cm` helper would go straight to the server).
px() {
	timeout 120 "$CLOUDMOUNT" "$@" --endpoint "http://127.0.0.1:$PROXY_PORT" --path-style
}

# stat_of KEY: a number from the proxy's statistics (faults.503, faults_total, requests...).
stat_of() {
	"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d[k]
print(d)' "$PROXY_STATS" "$1"
}

# show_stats LABEL: the proxy's counts in the test output (no secrets in them).
show_stats() {
	"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
f = d["faults"]
print("# proxy %s: %d requests on %d connections; faults: 503=%d 500=%d reset=%d reset_accept=%d cut=%d (cut_skipped=%d); upstream errors %d"
      % (sys.argv[2], d["requests"], d["connections"], f["503"], f["500"], f["reset"], f["reset_accept"],
         f["cut"], d["cut_skipped"], d["upstream_errors"]))' "$PROXY_STATS" "$1"
}

ge() { [ "$1" -ge "$2" ]; }
not() { ! "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# same_via_awsx KEY FILE: the object as the server holds it equals FILE.
same_via_awsx() {
	rm -f "$WORK/check.bin"
	awsx s3 cp "s3://$B/$1" "$WORK/check.bin" --only-show-errors && cmp "$WORK/check.bin" "$2"
}

# cat_same KEY FILE: `cloudmount cat` through the proxy gives FILE's bytes.
cat_same() {
	px cat "s3://$B/$1" >"$WORK/cat.bin" && cmp "$WORK/cat.bin" "$2"
}


B=$(new_bucket) || {
	echo "not ok - create a bucket"
	FAILED=1
	finish
	exit 1
}
head -c 300000 /dev/urandom >"$WORK/small.bin"

# --- 1. the first 3 requests answer 503 SlowDown
start_proxy slowdown --fail-first 3 --status 503
it "cp succeeds through 3 503 SlowDown answers" px cp "$WORK/small.bin" "s3://$B/slowdown.bin" -q
stop_proxy # its final statistics are written on SIGTERM
it "the proxy injected at least 3 faults" ge "$(stat_of faults.503)" 3
show_stats slowdown
it "the object is right (awsx, straight to the server)" same_via_awsx slowdown.bin "$WORK/small.bin"

# --- 2. the first 2 connections are reset (after the request; then on accept)
start_proxy reset --reset-first 2
it "ls succeeds through 2 connection resets" px ls "s3://$B/"
out_has "ls lists the object" 'slowdown\.bin'
stop_proxy
it "the proxy reset 2 connections" [ "$(stat_of faults.reset)" = 2 ]
show_stats reset
start_proxy reset-accept --reset-accept-first 2
it "ls succeeds through 2 connections reset on accept" px ls "s3://$B/"
out_has "ls lists the object" 'slowdown\.bin'
stop_proxy
it "the proxy reset 2 connections on accept" [ "$(stat_of faults.reset_accept)" = 2 ]
show_stats reset-accept

# --- 3. a 20 MiB GET cut half-way, 3 times: resumed with Range
head -c $((20 << 20)) /dev/urandom >"$WORK/big.bin"
it "a 20 MiB object is put with awsx" awsx s3 cp "$WORK/big.bin" "s3://$B/big.bin" --only-show-errors
start_proxy cut --cut-body-first 3
it "cat of 20 MiB through 3 cut bodies gives the same bytes" cat_same big.bin "$WORK/big.bin"
stop_proxy
it "the proxy cut 3 bodies" [ "$(stat_of faults.cut)" = 3 ]
show_stats cut

# --- 4. persistent 503: a bounded failure with a clear message
start_proxy persistent --fail-first 1000 --status 503
t0=$(now_ms)
expect_exit 1 "cp against a server that always answers 503 fails with exit 1" \
	px cp "$WORK/small.bin" "s3://$B/never.bin" -q --retries 3
t=$(($(now_ms) - t0))
out_has "the message names the server error" '503|SlowDown|server error'
it "it gave up within 60 s (took ${t} ms)" [ "$t" -lt 60000 ]
stop_proxy
it "it made 1 + 3 attempts (--retries 3)" [ "$(stat_of requests)" = 4 ]
show_stats persistent
it "no object was created (awsx head-object fails)" \
	not awsx s3api head-object --bucket "$B" --key never.bin

# --- 5. random faults (P=0.3, fixed seed): 10 uploads and 10 downloads, byte for byte
# --cut-body-first 2 makes sure two downloads are cut (random cuts are rare here).
start_proxy random --random 0.3 --seed 20240611 --kinds 503,500,reset,cut \
	--cut-body-first 2
sizes=(0 1 1024 4097 65536 300000 1048576 3000000 5242881)
for i in "${!sizes[@]}"; do
	head -c "${sizes[$i]}" /dev/urandom >"$WORK/r$i.bin"
done
head -c $((12 << 20)) /dev/urandom >"$WORK/r9.bin"
up_ok=0 down_ok=0 srv_ok=0
t0=$(now_ms)
for i in 0 1 2 3 4 5 6 7 8 9; do
	extra=()
	[ "$i" = 9 ] && extra=(--part-size 5M)
	if px cp "$WORK/r$i.bin" "s3://$B/random/r$i.bin" -q --retries 8 "${extra[@]}" >"$WORK/last.out" 2>&1; then
		up_ok=$((up_ok + 1))
	else
		echo "# upload r$i.bin failed:"
		sed -e 's/^/#   /' "$WORK/last.out" | tail -n 5 | scrub
	fi
done
for i in 0 1 2 3 4 5 6 7 8 9; do
	if px cat "s3://$B/random/r$i.bin" --retries 8 >"$WORK/cat.bin" 2>"$WORK/last.out" &&
		cmp -s "$WORK/cat.bin" "$WORK/r$i.bin"; then
		down_ok=$((down_ok + 1))
	else
		echo "# download r$i.bin failed or differs:"
		sed -e 's/^/#   /' "$WORK/last.out" | tail -n 5 | scrub
	fi
	same_via_awsx "random/r$i.bin" "$WORK/r$i.bin" >/dev/null 2>&1 && srv_ok=$((srv_ok + 1))
done
t=$(($(now_ms) - t0))
stop_proxy
it "10 cp uploads through random faults succeed (incl. 12 MiB multipart)" [ "$up_ok" = 10 ]
it "10 cat downloads through random faults give the same bytes" [ "$down_ok" = 10 ]
it "all 10 objects are right on the server (awsx)" [ "$srv_ok" = 10 ]
it "the proxy injected faults in this run" ge "$(stat_of faults_total)" 5
echo "# random run took ${t} ms"
show_stats random

# --- 6. nobody listens: exit 6, quickly
stop_proxy
free=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(now_ms)
expect_exit 6 "an endpoint that refuses connections gives exit 6" \
	timeout 60 "$CLOUDMOUNT" ls "s3://$B/" --endpoint "http://127.0.0.1:$free" --path-style \
	--retries 2 --connect-timeout 2
t=$(($(now_ms) - t0))
out_has "the message says the endpoint is unreachable" 'connect|unreachable|refused|endpoint'
it "it gave up within 15 s (took ${t} ms)" [ "$t" -lt 15000 ]

# --- retry timing and retried POSTs (both were bugs this test found)
# A retry waits its backoff (base 100 ms), not the engine's idle poll (1 s).
start_proxy latency --fail-first 1 --status 503
t0=$(now_ms)
px stat "s3://$B/slowdown.bin" >/dev/null 2>&1
t=$(($(now_ms) - t0))
it "one retry after a 503 waits the backoff (base 100 ms), not ~1 s (took ${t} ms)" [ "$t" -lt 700 ]

# CreateMultipartUpload is harmless to repeat and AWS asks clients to retry
# CompleteMultipartUpload on 500 InternalError: both are retried.
start_proxy complete500 --methods POST --after 1 --fail-first 1 --status 500
it "a multipart cp survives a 500 on CompleteMultipartUpload" \
	px cp "$WORK/r9.bin" "s3://$B/complete500.bin" -q --part-size 5M
stop_proxy
show_stats complete500

finish
