#!/usr/bin/env bash
# test_manager.sh - the mount manager (`cloudmount daemon`) end to end: remotes
# in cloudmount.conf, automount, status/mount/unmount/usage through the control
# socket, restart of a dead mount process, degraded while S3 is unreachable,
# adoption of running mounts by a restarted daemon, the socket refusing other
# users, config errors with FILE:LINE, and no secret leaking anywhere.
#
# Everything is isolated under $WORK (HOME, XDG_*; secrets in the credentials
# file). The remotes talk to the server through tests/tools/faultproxy.py (no
# fault options: a plain forwarder) on a fixed port, so stopping it is "the
# server went away" and starting it again on that port is "it is back".
# tests/tools/cmctl.py talks to the control socket.
# Run: tests/integration/run.sh s3rver|radosgw test_manager.sh
. "$(dirname "$0")/lib.sh"

CTL="$ROOT/tests/tools/cmctl.py"
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run XDG_CACHE_HOME=$WORK/cache
export CLOUDMOUNT_SECRETS=file
unset DBUS_SESSION_BUS_ADDRESS
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR" "$XDG_CACHE_HOME"
chmod 700 "$XDG_RUNTIME_DIR"
CONF=$XDG_CONFIG_HOME/cloudmount/cloudmount.conf
CREDS=$XDG_CONFIG_HOME/cloudmount/credentials
LOGDIR=$XDG_CACHE_HOME/cloudmount
RTDIR=$XDG_RUNTIME_DIR/cloudmount
SOCK=$RTDIR/control.sock
MA=$WORK/mnt/alpha # remote alpha: access key id + secret (stdin) in the credentials file
MB=$WORK/mnt/beta  # remote beta: the AWS_* environment's credentials
cd "$WORK" || exit 1 # `unmount NAME` means the remote only while no file NAME is here

# The keyring remote's secret: s3rver checks no signature, so a secret of this
# test's own shows whether it travels anywhere; radosgw needs the real one.
if [ "$S3_SERVER" = radosgw ]; then
	KR_SECRET=$S3_SECRET_KEY
else
	KR_SECRET=cmkr$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
fi

FWD_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DAEMON_PID=
SUB_PID=
TESTUSER=

# alive PID: running and not a zombie
alive() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}
wait_gone() { # PID SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do alive "$1" || return 0; sleep 0.1; done
	return 1
}
# (without run.sh's S3_SECRET_KEY: only what a user would have in the environment)
start_daemon() {
	env -u S3_SECRET_KEY "$CLOUDMOUNT" daemon >"$WORK/daemon.start" 2>&1 || { cat "$WORK/daemon.start"; return 1; }
	cat "$WORK/daemon.start"
	DAEMON_PID=$(sed -n 's/^cloudmount daemon started (pid \([0-9]*\)).*/\1/p' "$WORK/daemon.start")
	[ -n "$DAEMON_PID" ] && alive "$DAEMON_PID"
}
stop_daemon() {
	[ -n "$DAEMON_PID" ] || return 0
	alive "$DAEMON_PID" && grep -qa daemon "/proc/$DAEMON_PID/cmdline" && kill -TERM "$DAEMON_PID"
	wait_gone "$DAEMON_PID" 10
	local rc=$?
	DAEMON_PID=
	return $rc
}
ctl() { "$PY" "$CTL" "$@"; }
in_mounts() { grep -q " $1 fuse.cloudmount " /proc/mounts; }
mount_id() { awk -v m="$1" '$5 == m { print $1 }' /proc/self/mountinfo; }

cleanup() {
	[ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null
	stop_daemon
	local m p pids=
	for m in "$MA" "$MB"; do
		p=$(cat "$RTDIR/$(basename "$m").stats.json" 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
		pids="$pids $p"
		if in_mounts "$m"; then
			"$CLOUDMOUNT" unmount "$m" >/dev/null 2>&1 || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m"
		fi
	done
	for p in $pids; do wait_gone "$p" 10 || kill -9 "$p" 2>/dev/null; done
	stop_proxy
	if [ -n "$TESTUSER" ]; then userdel "$TESTUSER" >/dev/null 2>&1; fi
	cd / && rm -rf "$WORK"
}
trap cleanup EXIT

# The secrets to look for: alpha's, and the server's unless it equals the
# access key id (s3rver's S3RVER/S3RVER: the key id may be shown anywhere).
SECRETS=("$KR_SECRET")
if [ "$S3_SECRET_KEY" != "$KR_SECRET" ] && [ "$S3_SECRET_KEY" != "$S3_ACCESS_KEY" ]; then
	SECRETS+=("$S3_SECRET_KEY")
fi
# has_secret FILE...: does any of them hold a secret?
has_secret() {
	local f s
	for f in "$@"; do
		[ -f "$f" ] || { echo "no file $f"; return 0; }
		for s in "${SECRETS[@]}"; do
			if grep -qF -- "$s" "$f"; then
				echo "secret found in $f"
				return 0
			fi
		done
	done
	return 1
}
no_secret_in() { ! has_secret "$@"; }

BA=$(new_bucket) || exit 1
BB=$(new_bucket) || exit 1
it "the forwarder starts on port $FWD_PORT" start_proxy fwd --port "$FWD_PORT"
EP=http://127.0.0.1:$FWD_PORT

# ---- 1. two remotes, automount, the daemon mounts both
add_alpha() {
	printf '%s\n' "$KR_SECRET" | "$CLOUDMOUNT" remote add alpha "s3://$BA" --endpoint "$EP" --path-style \
		--access-key-id "$S3_ACCESS_KEY" --automount --mountpoint "$MA"
}
it "remote add alpha (secret on stdin)" add_alpha
out_has "the secret went to the credentials file" 'credentials'
it "remote add beta (environment credentials)" \
	"$CLOUDMOUNT" remote add beta "s3://$BB" --endpoint "$EP" --path-style --automount --mountpoint "$MB"
it "the credentials file is 0600" test "$(stat -c %a "$CREDS")" = 600
it "remote list shows both" "$CLOUDMOUNT" remote list
out_has "alpha, automount" "^alpha +s3://$BA +yes +$MA"
out_has "beta, automount" "^beta +s3://$BB +yes +$MB"
it "remote test alpha (keyring secret) reaches the bucket" "$CLOUDMOUNT" remote test alpha
it "remote test beta (environment) reaches the bucket" "$CLOUDMOUNT" remote test beta

it "cloudmount daemon starts in the background" start_daemon
it "the control socket is 0600 in a 0700 directory" \
	test "$(stat -c %a "$RTDIR"):$(stat -c %a "$SOCK")" = 700:600
it "alpha is mounted within 10 s" ctl wait alpha mounted 10
it "beta is mounted within 10 s" ctl wait beta mounted 10
it "status --json lists both as mounted" sh -c "'$CLOUDMOUNT' status --json >'$WORK/status1.json'"
it "status --json has name/state/pid/mountpoint" $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
r = {x["name"]: x for x in d["remotes"]}
assert r["alpha"]["state"] == "mounted" and r["beta"]["state"] == "mounted", r
assert r["alpha"]["mountpoint"] == sys.argv[2] and r["beta"]["mountpoint"] == sys.argv[3], r
assert r["alpha"]["pid"] > 0 and r["beta"]["pid"] > 0
assert "usage" in r["alpha"] and "traffic" in r["alpha"], r["alpha"].keys()
' "$WORK/status1.json" "$MA" "$MB"
it "status (table) shows both" "$CLOUDMOUNT" status
out_has "alpha row" "^alpha +$MA +mounted"
it "alpha is in /proc/mounts as fuse.cloudmount" grep -q "^cloudmount:$BA $MA fuse.cloudmount " /proc/mounts
it "beta is in /proc/mounts as fuse.cloudmount" grep -q "^cloudmount:$BB $MB fuse.cloudmount " /proc/mounts
it "a file written into alpha" sh -c "echo 'hello alpha' >'$MA/hello.txt'"
it "a file written into beta" sh -c "echo 'hello beta' >'$MB/hello.txt'"
it "awscli reads alpha's file" sh -c "test \"\$('$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$BA/hello.txt' -)\" = 'hello alpha'"
it "awscli reads beta's file" sh -c "test \"\$('$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$BB/hello.txt' -)\" = 'hello beta'"

# ---- 2. a mount process killed with SIGKILL is restarted
PA=$(ctl get alpha pid)
PB=$(ctl get beta pid)
it "alpha's mount process (pid $PA) runs" alive "$PA"
kill -9 "$PA"
it "alpha goes to error or mounting" ctl wait alpha error,mounting 5 --seen "$WORK/seen2"
it "then mounted again within 10 s, with restarts >= 1" ctl wait alpha mounted 10 --restarts-min 1 --seen "$WORK/seen2"
sed -e 's/^/#   seen: /' "$WORK/seen2"
it "the error said the process was killed" grep -q 'killed (signal 9)' "$WORK/seen2"
PA2=$(ctl get alpha pid)
it "alpha has a new mount process ($PA -> $PA2)" sh -c "[ -n '$PA2' ] && [ '$PA2' != '$PA' ] && [ '$PA2' != 0 ]"
it "alpha is in /proc/mounts again" in_mounts "$MA"
it "beta is unaffected: same pid $PB, mounted, no restart" sh -c \
	"test \"\$($PY '$CTL' get beta pid):\$($PY '$CTL' get beta state):\$($PY '$CTL' get beta restarts)\" = '$PB:mounted:0'"
it "alpha's file still reads" grep -qx 'hello alpha' "$MA/hello.txt"
it "beta's file still reads" grep -qx 'hello beta' "$MB/hello.txt"

# ---- 3. the server goes away (the forwarder stops) and comes back
stop_proxy
it "with the server gone, alpha is degraded within 10 s" ctl wait alpha degraded 10
it "and beta too" ctl wait beta degraded 10
it "the reason says S3 is unreachable" sh -c "$PY '$CTL' get alpha reason | grep -qiE 'S3|unreachable'"
"$PY" "$CTL" get alpha reason | sed -e 's/^/#   reason: /'
it "degraded mounts stay mounted" sh -c "grep -q ' $MA fuse.cloudmount ' /proc/mounts && grep -q ' $MB fuse.cloudmount ' /proc/mounts"
it "the forwarder starts again on port $FWD_PORT" start_proxy fwd --port "$FWD_PORT"
it "alpha is mounted again within 10 s" ctl wait alpha mounted 10
it "beta is mounted again within 10 s" ctl wait beta mounted 10
it "alpha's mount process survived the outage" test "$(ctl get alpha pid)" = "$PA2"
it "alpha's file still reads after the outage" grep -qx 'hello alpha' "$MA/hello.txt"

# ---- 4 and 5. unmount NAME / mount NAME, watched by a subscriber
: >"$WORK/events"
"$PY" "$CTL" subscribe "$WORK/events" &
SUB_PID=$!
for _ in $(seq 50); do [ "$(wc -l <"$WORK/events")" -ge 3 ] && break; sleep 0.1; done
it "subscribe answers ok, then one state event per remote" $PY -c '
import json, sys
lines = [json.loads(l.split(" ", 1)[1]) for l in open(sys.argv[1])]
assert lines[0].get("ok") is True, lines[0]
names = sorted(e["name"] for e in lines[1:3] if e.get("event") == "state")
assert names == ["alpha", "beta"], lines[:3]
' "$WORK/events"
T0=$EPOCHREALTIME
it "unmount alpha (through the daemon)" "$CLOUDMOUNT" unmount alpha
T1=$EPOCHREALTIME
it "alpha is unmounted" test "$(ctl get alpha state)" = unmounted
it "alpha is gone from /proc/mounts" sh -c "! grep -q ' $MA fuse.cloudmount ' /proc/mounts"
sleep 5
it "5 s later alpha is still unmounted, not restarted" test "$(ctl get alpha state):$(ctl get alpha pid)" = unmounted:0
it "and not in /proc/mounts" sh -c "! grep -q ' $MA fuse.cloudmount ' /proc/mounts"
it "beta stayed mounted" test "$(ctl get beta state)" = mounted
T2=$EPOCHREALTIME
it "mount alpha (through the daemon)" "$CLOUDMOUNT" mount alpha
T3=$EPOCHREALTIME
out_has "it says where" "alpha mounted on $MA"
it "right when the command returns, alpha is in /proc/mounts" in_mounts "$MA"
it "and its state is mounted" test "$(ctl get alpha state)" = mounted
it "its file reads" grep -qx 'hello alpha' "$MA/hello.txt"
sleep 0.5
it "the subscriber saw unmounted (<1 s), then mounting and mounted (<1 s) for alpha" $PY -c '
import json, sys
t0, t1, t2, t3 = map(float, sys.argv[2:6])
ev = []
for l in open(sys.argv[1]):
    ts, js = l.split(" ", 1)
    e = json.loads(js)
    if e.get("event") == "state" and e.get("name") == "alpha" and float(ts) >= t0:
        ev.append((float(ts), e["state"]))
print(ev)
um = [t for t, s in ev if s == "unmounted" and t <= t2]
assert um, "no unmounted event"
assert um[0] <= t1 + 1.0, "unmounted seen %.2f s after the command returned" % (um[0] - t1)
later = [(t, s) for t, s in ev if t >= t2 - 0.05]
states = [s for t, s in later]
assert "mounting" in states and "mounted" in states, states
assert states.index("mounting") < states.index("mounted"), states
tm = [t for t, s in later if s == "mounted"][0]
assert tm <= t3 + 1.0, "mounted seen %.2f s after the mount command returned" % (tm - t3)
' "$WORK/events" "$T0" "$T1" "$T2" "$T3"

# ---- 6. usage NAME counts what awscli counts
printf 'x%.0s' $(seq 1 1000) >"$WORK/k1"
head -c 123457 /dev/urandom >"$WORK/k2"
awsx s3 cp "$WORK/k1" "s3://$BB/u/k1" >/dev/null
awsx s3 cp "$WORK/k2" "s3://$BB/u/sub/k2" >/dev/null
AWS_COUNT=$(awsx s3api list-objects-v2 --bucket "$BB" --query '[sum(Contents[].Size), length(Contents[])]' --output text | tr -s '\t ' ' ')
it "usage beta" "$CLOUDMOUNT" usage beta
out_has "says BYTES OBJECTS NAME as awscli counts ($AWS_COUNT)" "^$AWS_COUNT beta( |$)"
cat "$WORK/last.out" | sed -e 's/^/#   usage: /'

# ---- 6b. reload: a remote added and removed while others are mounted
PA_BEFORE=$(ctl get alpha pid)
it "remote add gamma while the daemon runs" "$CLOUDMOUNT" remote add gamma "s3://$BB/g" --endpoint "$EP" --path-style \
	--mountpoint "$WORK/mnt/gamma"
it "reload" sh -c "$PY '$CTL' call '{\"cmd\":\"reload\"}' | grep -q '\"ok\":true'"
it "the daemon survived the reload" kill -0 "$DAEMON_PID"
it "status lists gamma, unmounted" test "$(ctl get gamma state)" = unmounted
it "alpha kept its state and mount process" test "$(ctl get alpha state):$(ctl get alpha pid)" = "mounted:$PA_BEFORE"
it "remote remove gamma" "$CLOUDMOUNT" remote remove gamma
it "reload again" sh -c "$PY '$CTL' call '{\"cmd\":\"reload\"}' | grep -q '\"ok\":true'"
it "gamma is gone from status" sh -c "! $PY '$CTL' get gamma state"
it "beta is still mounted" test "$(ctl get beta state)" = mounted

# ---- 7. a restarted daemon adopts the running mounts
PA=$(ctl get alpha pid)
PB=$(ctl get beta pid)
IDA=$(mount_id "$MA")
IDB=$(mount_id "$MB")
OLD_DAEMON=$DAEMON_PID
it "the daemon stops on SIGTERM" stop_daemon
it "its socket is gone" test ! -e "$SOCK"
it "the mounts stayed up (mount processes $PA $PB alive)" sh -c "kill -0 $PA && kill -0 $PB && grep -q ' $MA fuse.cloudmount ' /proc/mounts && grep -q ' $MB fuse.cloudmount ' /proc/mounts"
wait "$SUB_PID" 2>/dev/null
SUB_PID=
it "the daemon starts again" start_daemon
it "a new daemon ($OLD_DAEMON -> $DAEMON_PID)" test "$DAEMON_PID" != "$OLD_DAEMON"
it "it finds alpha mounted at once" ctl wait alpha mounted 2 --seen "$WORK/seen7"
it "it finds beta mounted at once" ctl wait beta mounted 2 --seen "$WORK/seen7"
it "it never went through mounting" sh -c "! grep -q ' mounting' '$WORK/seen7'"
it "same pids ($PA, $PB), no restarts" test "$(ctl get alpha pid):$(ctl get beta pid):$(ctl get alpha restarts):$(ctl get beta restarts)" = "$PA:$PB:0:0"
it "same mounts (mount ids $IDA $IDB): no remount" test "$(mount_id "$MA"):$(mount_id "$MB")" = "$IDA:$IDB"
it "the adoption is logged in daemon.log (not on the starting terminal)" grep -q 'alpha: adopted the running mount' "$LOGDIR/daemon.log"
it "adopted mounts still work" grep -qx 'hello alpha' "$MA/hello.txt"

# ---- 8. another user cannot use the socket
if command -v useradd >/dev/null && command -v runuser >/dev/null && command -v userdel >/dev/null; then
	for n in 1 2 3 4 5 6 7 8 9; do
		if ! id "cmtestuser$n" >/dev/null 2>&1 && useradd -M -r -s /usr/sbin/nologin "cmtestuser$n" 2>/dev/null; then
			TESTUSER=cmtestuser$n
			break
		fi
	done
fi
if [ -z "$TESTUSER" ]; then
	skip "another user cannot use the control socket" "useradd/runuser unavailable or failed"
else
	probe_as() { (cd / && runuser -u "$TESTUSER" -- env XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" "$PY" - probe <"$CTL"); }
	chmod 711 "$WORK" "$XDG_RUNTIME_DIR" # only the cloudmount directory keeps them out
	it "as $TESTUSER: connecting fails" probe_as
	out_has "with permission denied (the 0700 directory)" '^CONNECT-ERROR 13 '
	chmod 711 "$RTDIR"
	chmod 666 "$SOCK"
	it "as $TESTUSER, with the directory traversable and the socket 0666: connecting" probe_as
	out_has "is refused by the daemon (own user)" '^LINE .*"ok": *false.*own user'
	chmod 700 "$RTDIR" "$WORK" "$XDG_RUNTIME_DIR"
	chmod 600 "$SOCK"
	it "modes restored (700/600)" test "$(stat -c %a "$RTDIR"):$(stat -c %a "$SOCK")" = 700:600
	it "the daemon logged the refusal with the uid" grep -q "refused a control connection from uid $(id -u "$TESTUSER")" "$LOGDIR/daemon.log"
	it "the daemon still serves its own user" "$CLOUDMOUNT" status
fi

# ---- 9. a broken config line: FILE:LINE, non-zero exit
cp -p "$CONF" "$WORK/conf.good"
N=$(($(wc -l <"$CONF") + 1))
printf '[remote bad\n' >>"$CONF"
expect_exit 3 "remote list with '[remote bad' fails" "$CLOUDMOUNT" remote list
out_has "naming $CONF:$N:" "$CONF:$N:"
expect_exit 3 "daemon -f with '[remote bad' fails" timeout 10 "$CLOUDMOUNT" daemon -f
out_has "naming $CONF:$N:" "$CONF:$N:"
cp -p "$WORK/conf.good" "$CONF"
L=$(grep -n '^\[remote alpha\]' "$CONF" | cut -d: -f1)
N=$(awk -v l="$L" 'NR > l && /^automount *=/ { print NR; exit }' "$CONF")
sed -i "${N}s/.*/automount = maybe/" "$CONF"
expect_exit 3 "remote list with 'automount = maybe' fails" "$CLOUDMOUNT" remote list
out_has "naming $CONF:$N:" "$CONF:$N:"
expect_exit 3 "daemon -f with 'automount = maybe' fails" timeout 10 "$CLOUDMOUNT" daemon -f
out_has "naming $CONF:$N:" "$CONF:$N:"
cp -p "$WORK/conf.good" "$CONF"
it "the fixed file loads again" "$CLOUDMOUNT" remote list
it "the running daemon is untouched" test "$(ctl get alpha state):$(ctl get beta state)" = mounted:mounted

# ---- 10. secrets never leak
PA=$(ctl get alpha pid)
PB=$(ctl get beta pid)
"$CLOUDMOUNT" status --json >"$WORK/status10.json" 2>&1
"$CLOUDMOUNT" remote show alpha >"$WORK/show-alpha" 2>&1
"$CLOUDMOUNT" remote show beta >"$WORK/show-beta" 2>&1
it "remote show alpha says where the secret is" grep -q 'secret in the file' "$WORK/show-alpha"
it "no secret in status --json" no_secret_in "$WORK/status10.json"
it "no secret in remote show" no_secret_in "$WORK/show-alpha" "$WORK/show-beta"
it "no secret in cloudmount.conf" no_secret_in "$CONF"
it "no secret in the daemon log" no_secret_in "$LOGDIR/daemon.log"
it "no secret in the mount logs" no_secret_in "$LOGDIR/mount-alpha.log" "$LOGDIR/mount-beta.log"
it "no secret in the stats files" no_secret_in "$RTDIR"/*.stats.json
for p in "$DAEMON_PID" "$PA" "$PB"; do tr '\0' '\n' <"/proc/$p/cmdline" >"$WORK/cmdline.$p"; done
it "no secret on the command lines (daemon $DAEMON_PID, mounts $PA $PB)" \
	no_secret_in "$WORK/cmdline.$DAEMON_PID" "$WORK/cmdline.$PA" "$WORK/cmdline.$PB"
# environ: AWS_SECRET_ACCESS_KEY is there because this test exported it (for
# beta); nothing else may hold a secret, and alpha's keyring secret nowhere.
for p in "$DAEMON_PID" "$PA"; do
	tr '\0' '\n' <"/proc/$p/environ" | grep -v '^AWS_SECRET_ACCESS_KEY=' >"$WORK/environ.$p"
done
it "no secret in the daemon's or alpha's environment (beyond the test's AWS_SECRET_ACCESS_KEY)" \
	no_secret_in "$WORK/environ.$DAEMON_PID" "$WORK/environ.$PA"
if [ "$KR_SECRET" != "$S3_SECRET_KEY" ]; then
	it "alpha's keyring secret is nowhere in its mount process's environment" \
		sh -c "! tr '\\0' '\\n' </proc/$PA/environ | grep -qF -- '$KR_SECRET'"
fi

# ---- the end: stop the daemon, unmount, check the logs
it "the daemon stops" stop_daemon
it "unmount alpha" "$CLOUDMOUNT" unmount alpha
it "unmount beta" "$CLOUDMOUNT" unmount beta
it "both mount processes exit" sh -c "for p in $PA $PB; do for i in \$(seq 100); do kill -0 \$p 2>/dev/null || continue 2; sleep 0.1; done; exit 1; done"
it "neither is in /proc/mounts" sh -c "! grep -qE ' ($MA|$MB) fuse.cloudmount ' /proc/mounts"
mount_log_clean mount-alpha
mount_log_clean mount-beta
it "the daemon log has no sanitizer report" sh -c "! grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' '$LOGDIR/daemon.log'"
finish
