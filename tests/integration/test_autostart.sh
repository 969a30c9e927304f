#!/usr/bin/env bash
# test_autostart.sh - `cloudmount autostart` writes and removes a systemd --user
# unit that runs the daemon as Type=notify (mount processes outliving it), and
# the daemon sends READY=1 to $NOTIFY_SOCKET only once its automounts are up.
# Where cloudmount-tray sits beside the binary, enable also writes an XDG
# autostart entry for it (checked with GLib's own parser, from a directory
# whose name needs the Desktop Entry spec's quoting) and disable removes it.
. "$(dirname "$0")/lib.sh"

export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run XDG_CACHE_HOME=$WORK/cache
export CLOUDMOUNT_SECRETS=file
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR" "$XDG_CACHE_HOME"
chmod 700 "$XDG_RUNTIME_DIR"
UNIT=$XDG_CONFIG_HOME/systemd/user/cloudmount.service
DAEMON_PID=
cleanup() {
	[ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null
	for m in "$WORK"/mnt-*; do
		mountpoint -q "$m" 2>/dev/null && { "$CLOUDMOUNT" unmount "$m" >/dev/null 2>&1 || fusermount3 -uz "$m"; }
	done
	sleep 0.3
	rm -rf "$WORK"
}
trap cleanup EXIT

it "autostart enable" "$CLOUDMOUNT" autostart enable
it "writes the user unit" test -f "$UNIT"
it "Type=notify" grep -qx 'Type=notify' "$UNIT"
it "ExecStart runs this binary's daemon" grep -qx "ExecStart=$(readlink -f "$CLOUDMOUNT") daemon" "$UNIT"
it "KillMode=process (mount processes outlive daemon restarts)" grep -qx 'KillMode=process' "$UNIT"
it "autostart status says enabled" sh -c "'$CLOUDMOUNT' autostart status | grep -q enabled"
it "autostart disable" "$CLOUDMOUNT" autostart disable
it "removes the unit" test ! -e "$UNIT"
it "autostart status says disabled" sh -c "'$CLOUDMOUNT' autostart status | grep -q disabled"

# The tray's XDG autostart entry, from binaries in an awkwardly named directory.
ENTRY=$XDG_CONFIG_HOME/autostart/cloudmount-tray.desktop
TRAYBIN=$(dirname "$CLOUDMOUNT")/cloudmount-tray
# exec_of FILE: argv[0] of the entry's Exec line, as a desktop session reads it
exec_of() {
	"$PY" - "$1" <<'PY'
import sys
from gi.repository import Gio, GLib
info = Gio.DesktopAppInfo.new_from_filename(sys.argv[1])
print(GLib.shell_parse_argv(info.get_commandline())[1][0])
PY
}
if [ -x "$TRAYBIN" ] && "$PY" -c 'import gi' 2>/dev/null; then
	ODD="$WORK/odd dir \$HOME \"q\" \`x\`"
	mkdir -p "$ODD"
	cp "$(readlink -f "$CLOUDMOUNT")" "$ODD/cloudmount"
	cp "$TRAYBIN" "$ODD/cloudmount-tray"
	it "autostart enable (binaries in an odd directory)" "$ODD/cloudmount" autostart enable
	it "writes the tray's XDG autostart entry" test -f "$ENTRY"
	exec_is() { [ "$(exec_of "$ENTRY")" = "$1" ] || { echo "Exec runs: $(exec_of "$ENTRY" 2>&1)"; return 1; }; }
	it "its Exec starts that directory's cloudmount-tray" exec_is "$ODD/cloudmount-tray"
	it "autostart disable removes the entry too" sh -c "'$ODD/cloudmount' autostart disable && test ! -e '$ENTRY'"
	it "no entry when no tray is installed beside the binary" \
		sh -c "rm '$ODD/cloudmount-tray' && '$ODD/cloudmount' autostart enable >/dev/null && test ! -e '$ENTRY' && test -f '$UNIT'"
	"$ODD/cloudmount" autostart disable >/dev/null
else
	skip "the tray's XDG autostart entry" "cloudmount-tray is not built or python3-gi is missing"
fi

# READY=1 once the automount is mounted
bucket=$(new_bucket) || exit 1
"$CLOUDMOUNT" remote add auto1 "s3://$bucket" --endpoint "$S3_ENDPOINT" --path-style --automount \
	--mountpoint "$WORK/mnt-auto1" >/dev/null
cat >"$WORK/notify.py" <<'PY'
import os, socket, sys, time
path, mnt, out = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(30)
try:
    msg = s.recv(4096).decode()
except socket.timeout:
    msg = "TIMEOUT"
mounted = any(l.split()[1] == mnt and l.split()[2] == "fuse.cloudmount" for l in open("/proc/mounts"))
open(out, "w").write("%s %s\n" % (msg, "mounted" if mounted else "not-mounted"))
PY
$PY "$WORK/notify.py" "$WORK/notify.sock" "$WORK/mnt-auto1" "$WORK/notify.out" &
NPID=$!
for _ in $(seq 1 50); do [ -S "$WORK/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$WORK/notify.sock "$CLOUDMOUNT" daemon -f >"$WORK/daemon.out" 2>&1 &
DAEMON_PID=$!
wait "$NPID"
it "the daemon sent READY=1" grep -q '^READY=1 ' "$WORK/notify.out"
it "and the automount was up when it did" grep -q ' mounted$' "$WORK/notify.out"
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
it "mounts outlive the daemon" mountpoint -q "$WORK/mnt-auto1"
finish
