# lib.sh - shared helpers for the integration tests (sourced, bash).
#
# A test script sources this file, runs `it "what is checked" COMMAND...` or
# `check "what" CONDITION-COMMAND...` for each case, and ends with `finish`,
# which prints "SCRIPT: N passed, N failed" (the line scripts/test adds up) and
# exits non-zero if anything failed.
#
# The server under test is described by the environment that
# tests/servers/*.sh wrote (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY,
# S3_REGION, S3_SERVER, and for radosgw S3_TLS_ENDPOINT, S3_CA_BUNDLE);
# CLOUDMOUNT is the binary under test. Secrets must never be printed: `scrub`
# filters a command's output through sed to hide them before it is shown.

set -u
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}
PASSED=0
FAILED=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLOUDMOUNT=${CLOUDMOUNT:-$ROOT/build/src/cloudmount}
AWS=/usr/bin/aws
PY=/usr/bin/python3
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cm-${TEST_NAME}.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
: >"$WORK/.started"

: "${S3_ENDPOINT:?run under tests/integration/run.sh (no server environment)}"
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_DEFAULT_REGION=${S3_REGION:-us-east-1} AWS_REGION=${S3_REGION:-us-east-1}
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
# keep the user's ~/.aws out of the tests
export AWS_CONFIG_FILE=$WORK/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/aws-credentials
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_CA_BUNDLE AWS_ENDPOINT_URL

# Hide secrets in whatever passes through.
scrub() {
	sed -e "s#${S3_SECRET_KEY//#/\\#}#<secret>#g"
}

# awscli against the server under test.
awsx() {
	"$AWS" --endpoint-url "$S3_ENDPOINT" "$@"
}

# cloudmount against the server under test (path-style, as local servers need).
cm() {
	"$CLOUDMOUNT" "$@" --endpoint "$S3_ENDPOINT" --path-style
}

# ---- tests/tools/faultproxy.py in front of the server -------------------
FAULTPROXY=$ROOT/tests/tools/faultproxy.py
PROXY_PID=
PROXY_PORT=
PROXY_STATS=

# start_proxy NAME [faultproxy options...]: a fresh proxy (a running one is
# stopped first). Sets PROXY_PID, PROXY_PORT and PROXY_STATS (its statistics,
# written when it stops); its errors go to $WORK/NAME.proxy.err. With
# --port P the "server" comes back at the same address after a stop.
start_proxy() {
	local name=$1 i
	shift
	stop_proxy
	PROXY_STATS=$WORK/$name.stats.json
	rm -f "$WORK/$name.port"
	"$PY" "$FAULTPROXY" "$S3_ENDPOINT" --port-file "$WORK/$name.port" --stats-file "$PROXY_STATS" \
		--max-lifetime 900 "$@" >/dev/null 2>>"$WORK/$name.proxy.err" &
	PROXY_PID=$!
	for ((i = 0; i < 100; i++)); do
		[ -s "$WORK/$name.port" ] && break
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.05
	done
	PROXY_PORT=$(cat "$WORK/$name.port" 2>/dev/null)
	if [ -z "$PROXY_PORT" ]; then
		echo "# faultproxy did not start:"
		sed -e 's/^/#   /' "$WORK/$name.proxy.err"
		return 1
	fi
}

# stop_proxy: stop it (it writes its statistics on SIGTERM).
stop_proxy() {
	[ -n "$PROXY_PID" ] || return 0
	kill -TERM "$PROXY_PID" 2>/dev/null
	wait "$PROXY_PID" 2>/dev/null
	PROXY_PID=
}

# A fresh bucket name for this test (3-63 chars, lower case).
new_bucket() {
	local b="cm-${TEST_NAME//_/-}-$RANDOM$RANDOM"
	b=${b:0:50}
	awsx s3api create-bucket --bucket "$b" >/dev/null 2>&1 || { echo "cannot create bucket $b" >&2; return 1; }
	echo "$b"
}

_record() {
	if [ "$1" = 0 ]; then
		PASSED=$((PASSED + 1))
		echo "ok - $2"
	else
		FAILED=$((FAILED + 1))
		echo "not ok - $2"
		if [ -s "$WORK/last.out" ]; then
			sed -e 's/^/#   /' "$WORK/last.out" | tail -n 20 | scrub
		fi
	fi
}

# it "description" command...: passes if the command exits 0. Output is kept
# in $WORK/last.out and shown (scrubbed) on failure.
it() {
	local what=$1
	shift
	"$@" >"$WORK/last.out" 2>&1
	_record $? "$what"
}

# expect_exit CODE "description" command...: passes if the command exits CODE.
expect_exit() {
	local code=$1 what=$2 rc
	shift 2
	"$@" >"$WORK/last.out" 2>&1
	rc=$?
	if [ "$rc" != "$code" ]; then
		echo "# exit $rc, wanted $code" >>"$WORK/last.out"
		_record 1 "$what"
	else
		_record 0 "$what"
	fi
}

# out_has "description" PATTERN: the last command's output matches PATTERN (grep -E).
out_has() {
	grep -Eq -- "$2" "$WORK/last.out"
	_record $? "$1"
}

# skip "description" "reason": counted neither way, but said.
skip() {
	echo "ok - $1 # SKIP $2"
}

# mount_log_clean BUCKET: the background mount's log (under the sanitizer
# build: every error it found) holds no sanitizer report and no crash.
mount_log_clean() {
	local log=${XDG_CACHE_HOME:-$HOME/.cache}/cloudmount/$1.log
	if [ -f "$log" ] && grep -qE 'runtime error|AddressSanitizer|LeakSanitizer|ThreadSanitizer' "$log"; then
		grep -E -A12 'runtime error|AddressSanitizer|LeakSanitizer' "$log" | head -40 >"$WORK/last.out"
		_record 1 "the mount process's log has no sanitizer report ($log)"
	else
		: >"$WORK/last.out"
		_record 0 "the mount process's log has no sanitizer report"
	fi
}

# dump_logs: after a failure, the end of every mount/daemon log the test
# left (its own $WORK and the cache directory): the cause of a failure seen
# through the mount (a crash, a sanitizer report, an aborted connection) is
# there, and $WORK is gone once the script exits.
dump_logs() {
	local f
	find "$WORK" "${XDG_CACHE_HOME:-$HOME/.cache}/cloudmount" -maxdepth 2 -name '*.log' -newer "$WORK/.started" \
		-size +0 2>/dev/null | sort | while read -r f; do
		echo "# --- last lines of $f"
		if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer|SUMMARY:' "$f"; then
			grep -E -B2 -A25 'runtime error|AddressSanitizer|LeakSanitizer' "$f" | head -n 60
		fi
		tail -n 25 "$f"
	done 2>/dev/null | scrub | sed -e 's/^\([^#]\)/#   \1/'
}

finish() {
	[ "$FAILED" = 0 ] || dump_logs
	echo "$TEST_NAME[$S3_SERVER]: $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}
