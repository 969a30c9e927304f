#!/usr/bin/env bash
# test_tray.sh - cloudmount-tray headless, through its D-Bus menu: the tray
# shows a remote of the daemon, "Mount" in the remote's submenu mounts it (the
# mountpoint appears in /proc/mounts, the submenu's label says mounted),
# "Unmount" unmounts it again.
#
# Runs under Xvfb (gtk_init needs a display) in a private session bus with
# tests/tools/fake_watcher.py as org.kde.StatusNotifierWatcher, which records
# the indicator's sender and object path; the menu is driven with gdbus
# (com.canonical.dbusmenu GetLayout / Event). Skipped when cloudmount-tray is
# not built (env CLOUDMOUNT_TRAY) or xvfb-run / dbus-run-session / gdbus are
# missing. Run: tests/integration/run.sh s3rver|radosgw test_tray.sh
. "$(dirname "$0")/lib.sh"

TRAY=${CLOUDMOUNT_TRAY:-$(dirname "$CLOUDMOUNT")/cloudmount-tray}
WATCHER="$ROOT/tests/tools/fake_watcher.py"

missing=
[ -x "$TRAY" ] || missing="cloudmount-tray is not built ($TRAY)"
for tool in xvfb-run dbus-run-session gdbus; do
	[ -n "$missing" ] || command -v "$tool" >/dev/null || missing="$tool is missing"
done
[ -n "$missing" ] || "$PY" -c 'import dbus, gi' 2>/dev/null || missing="python3-dbus/python3-gi are missing"
if [ -n "$missing" ]; then
	skip "the tray mounts and unmounts a remote from its menu" "$missing"
	finish
	exit $?
fi

export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run XDG_CACHE_HOME=$WORK/cache
export CLOUDMOUNT_SECRETS=file CLOUDMOUNT_ICON_DIR=$ROOT/data/icons
unset DBUS_SESSION_BUS_ADDRESS
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR" "$XDG_CACHE_HOME" "$WORK/mnt"
chmod 700 "$XDG_RUNTIME_DIR"
cd "$WORK" || exit 1
NAME=traytest
MP=$WORK/mnt/$NAME
DAEMON_PID=

cleanup() {
	if mountpoint -q "$MP" 2>/dev/null; then
		"$CLOUDMOUNT" unmount "$NAME" >/dev/null 2>&1 || fusermount3 -u "$MP" 2>/dev/null
	fi
	if [ -n "$DAEMON_PID" ] && grep -qa daemon "/proc/$DAEMON_PID/cmdline" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

BUCKET=$(new_bucket) || exit 1
it "remote add $NAME (environment credentials)" \
	"$CLOUDMOUNT" remote add "$NAME" "s3://$BUCKET" --endpoint "$S3_ENDPOINT" --path-style --mountpoint "$MP"

start_daemon() {
	env -u S3_SECRET_KEY "$CLOUDMOUNT" daemon >"$WORK/daemon.start" 2>&1 || { cat "$WORK/daemon.start"; return 1; }
	cat "$WORK/daemon.start"
	DAEMON_PID=$(sed -n 's/^cloudmount daemon started (pid \([0-9]*\)).*/\1/p' "$WORK/daemon.start")
}
it "the daemon starts" start_daemon

# ---- the part inside Xvfb + a private session bus -----------------------
# Writes "RC description" lines to $WORK/results and details to $WORK/inner.log.
cat >"$WORK/inner.sh" <<'INNER'
set -u
exec 2>>"$WORK/inner.log"
res() { echo "$1 $2" >>"$WORK/results"; }
# layout: the tray's whole menu as GVariant text
layout() { gdbus call --session -d "$SENDER" -o "$OPATH/Menu" -m com.canonical.dbusmenu.GetLayout -- 0 -1 '["label","enabled"]'; }
# find_item SUBMENU-PREFIX LABEL: the id of the enabled item LABEL in the submenu whose label starts with PREFIX
find_item() {
	layout >"$WORK/layout.txt" || return 1
	"$PY" - "$1" "$2" "$WORK/layout.txt" <<'EOF'
import sys
from gi.repository import GLib
prefix, label, path = sys.argv[1:4]
text = open(path).read().strip()
v = GLib.Variant.parse(None, text, None, None).unpack()
def walk(node, parent):
    ident, props, children = node
    lab = props.get("label", "")
    if parent is not None and parent.startswith(prefix) and lab == label and props.get("enabled", True):
        print(ident); sys.exit(0)
    for c in children:
        walk(c, lab)
walk(v[1], None)
sys.exit(1)
EOF
}
# submenu_label PREFIX: the label of the top-level item starting with PREFIX
submenu_label() {
	layout >"$WORK/layout.txt" || return 1
	"$PY" - "$1" "$WORK/layout.txt" <<'EOF'
import sys
from gi.repository import GLib
prefix, path = sys.argv[1:3]
v = GLib.Variant.parse(None, open(path).read().strip(), None, None).unpack()
for ident, props, children in v[1][2]:
    if props.get("label", "").startswith(prefix):
        print(props["label"]); sys.exit(0)
sys.exit(1)
EOF
}
# wait_for SECONDS COMMAND...: retry every 0.2 s
wait_for() {
	local n=$(( $1 * 5 )); shift
	for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	return 1
}
click() { gdbus call --session -d "$SENDER" -o "$OPATH/Menu" -m com.canonical.dbusmenu.Event -- "$1" clicked '<"">' 0 >/dev/null; }
mounted() { grep -q " $MP fuse" /proc/mounts; }
unmounted() { ! grep -q " $MP " /proc/mounts; }
label_says() { submenu_label "$NAME —" | grep -q -- "— $1"; }

"$PY" "$WATCHER" --items "$WORK/items" --timeout 90 >>"$WORK/inner.log" 2>&1 &
WPID=$!
for ((i = 0; i < 50; i++)); do
	gdbus call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.NameHasOwner org.kde.StatusNotifierWatcher 2>/dev/null | grep -q true && break
	sleep 0.1
done
"$TRAY" >>"$WORK/tray.log" 2>&1 &
TPID=$!
wait_for 10 test -s "$WORK/items"
read -r SENDER OPATH <"$WORK/items" 2>/dev/null
echo "indicator: ${SENDER:-?} ${OPATH:-?}" >>"$WORK/inner.log"
[ "${OPATH:-}" = /org/ayatana/NotificationItem/cloudmount ]; res $? "the tray registers /org/ayatana/NotificationItem/cloudmount with the watcher"
if [ -n "${SENDER:-}" ]; then
	wait_for 10 find_item "$NAME —" Mount; res $? "the remote's submenu has an enabled Mount item"
	ICON=$(gdbus call --session -d "$SENDER" -o "$OPATH" -m org.freedesktop.DBus.Properties.Get -- org.kde.StatusNotifierItem IconName 2>&1)
	echo "icon before: $ICON" >>"$WORK/inner.log"
	echo "$ICON" | grep -q cloudmount-idle; res $? "the icon is cloudmount-idle while nothing is mounted"
	ID=$(find_item "$NAME —" Mount) && click "$ID"; res $? "clicking Mount"
	wait_for 30 mounted; res $? "the remote got mounted ($MP in /proc/mounts)"
	wait_for 10 label_says mounted; res $? "the submenu's label says mounted"
	submenu_label "$NAME —" >>"$WORK/inner.log"
	ICON=$(gdbus call --session -d "$SENDER" -o "$OPATH" -m org.freedesktop.DBus.Properties.Get -- org.kde.StatusNotifierItem IconName 2>&1)
	echo "icon after mount: $ICON" >>"$WORK/inner.log"
	echo "$ICON" | grep -q cloudmount-ok; res $? "the icon is cloudmount-ok while mounted"
	wait_for 10 find_item "$NAME —" Unmount; res $? "the submenu now has an enabled Unmount item"
	ID=$(find_item "$NAME —" Unmount) && click "$ID"; res $? "clicking Unmount"
	wait_for 30 unmounted; res $? "the remote got unmounted"
	wait_for 10 label_says unmounted; res $? "the submenu's label says unmounted"
fi
kill -0 "$TPID" 2>/dev/null; res $? "the tray is still running"
kill -TERM "$TPID" "$WPID" 2>/dev/null
wait "$TPID" "$WPID" 2>/dev/null
exit 0
INNER

run_inner() {
	WORK=$WORK PY=$PY TRAY=$TRAY WATCHER=$WATCHER NAME=$NAME MP=$MP \
		timeout 80 xvfb-run -a dbus-run-session -- bash "$WORK/inner.sh"
}
it "the headless session runs" run_inner
if [ -s "$WORK/results" ]; then
	while read -r rc what; do
		if [ "$rc" != 0 ]; then
			{ tail -n 15 "$WORK/inner.log"; echo "# tray log:"; tail -n 10 "$WORK/tray.log" 2>/dev/null; } >"$WORK/last.out"
		else
			: >"$WORK/last.out"
		fi
		_record "$rc" "$what"
	done <"$WORK/results"
else
	cat "$WORK/inner.log" "$WORK/tray.log" >"$WORK/last.out" 2>/dev/null
	_record 1 "the headless session reported results"
fi
mount_log_clean "$NAME"; [ -n "${TRAY_DEBUG:-}" ] && cat "$WORK/inner.log" "$WORK/tray.log"

finish
