#!/usr/bin/env bash
# test_tray.sh - cloudmount-tray headless, against a real daemon with two
# remotes on the server under test.
#
# Part 1, StatusNotifierItem: tests/tools/fake_watcher.py plays the
# StatusNotifierWatcher and the notification server on a private session bus;
# the tray's exported menu (com.canonical.dbusmenu) is read and clicked with
# gdbus. Mount / Unmount / Mount all (checked in /proc/mounts and through
# awscli), Copy path (xclip reads the clipboard), Open folder (a fake file
# manager registered for inode/directory records its argument), degraded
# within seconds when the server goes away and back when it returns (label,
# icon and exactly one notification each way), Add bucket… (the GTK dialog,
# typed into with xdotool: Test connection, then Add and mount), Quit.
# The remote "traytest" reaches the server through tests/tools/faultproxy.py,
# which this test stops and restarts to play a server outage.
#
# Part 2, XEmbed fallback: with no watcher and no daemon, the tray starts the
# daemon (which adopts the mounts) and shows a classic tray icon in trayer; a
# click opens the menu; Quit with [tray] unmount-on-quit unmounts everything. Screenshots of the open menu and of the
# Add bucket dialog are saved as PNG under $CM_ARTIFACTS (default
# build-artifacts/ in the repository; docs/ keeps a copy).
#
# The secret typed into the dialog must never appear in the output of the
# tray, the daemon or the mounts, nor in their /proc/PID/cmdline or environ;
# the daemon and tray run without any AWS secret in their environment.
#
# The whole test runs inside `xvfb-run dbus-run-session` (it re-executes
# itself there). Skipped when cloudmount-tray is not built (env
# CLOUDMOUNT_TRAY) or the X/D-Bus tools are missing.
# Run: tests/integration/run.sh s3rver|radosgw test_tray.sh
if [ -z "${CM_TRAY_SESSION:-}" ] && command -v xvfb-run >/dev/null && command -v dbus-run-session >/dev/null; then
	CM_TRAY_SESSION=1 NO_AT_BRIDGE=1 exec timeout 300 xvfb-run -a -s "-screen 0 1024x600x24" \
		dbus-run-session -- bash "$0" "$@" 2> >(grep -v '^dbus-daemon\[' >&2)
fi
. "$(dirname "$0")/lib.sh"

TRAY=${CLOUDMOUNT_TRAY:-$(dirname "$CLOUDMOUNT")/cloudmount-tray}
WATCHER="$ROOT/tests/tools/fake_watcher.py"
ARTIFACTS=${CM_ARTIFACTS:-$ROOT/build-artifacts}

missing=
[ -n "${CM_TRAY_SESSION:-}" ] || missing="xvfb-run or dbus-run-session is missing"
[ -n "$missing" ] || [ -x "$TRAY" ] || missing="cloudmount-tray is not built ($TRAY)"
for tool in gdbus xdotool xclip import trayer xwininfo; do
	[ -n "$missing" ] || command -v "$tool" >/dev/null || missing="$tool is missing"
done
[ -n "$missing" ] || "$PY" -c 'import dbus, gi' 2>/dev/null || missing="python3-dbus/python3-gi are missing"
if [ -n "$missing" ]; then
	skip "the tray's menu, notifications and dialog" "$missing"
	finish
	exit $?
fi

export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_RUNTIME_DIR=$WORK/run XDG_CACHE_HOME=$WORK/cache
export XDG_DATA_HOME=$WORK/data CLOUDMOUNT_SECRETS=file CLOUDMOUNT_ICON_DIR=$ROOT/data/icons
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR" "$XDG_CACHE_HOME" "$XDG_DATA_HOME/applications" "$WORK/mnt" "$ARTIFACTS"
chmod 700 "$XDG_RUNTIME_DIR"
MP3=$HOME/CloudMount/traynew # added through the dialog: the default mount point
cd "$WORK" || exit 1 # `unmount NAME` means the remote only while no file NAME is here
MP=$WORK/mnt/traytest   # through the proxy
MP2=$WORK/mnt/traytwo   # straight to the server
TRAY_PID=
WATCHER_PID=
NOTIFY_PID=
TRAYER_PID=
DAEMON_PID=
# Only these processes may hold S3 secrets: the daemon, the tray and the mounts
# get theirs from the credentials file, never from the environment.
NOSECRET_ENV=(env -u AWS_SECRET_ACCESS_KEY -u AWS_ACCESS_KEY_ID -u S3_SECRET_KEY -u S3_ACCESS_KEY)

cleanup() {
	local m
	for pid in "$TRAY_PID" "$WATCHER_PID" "$NOTIFY_PID" "$TRAYER_PID"; do
		[ -n "$pid" ] && kill "$pid" 2>/dev/null
	done
	for m in "$MP" "$MP2" "$MP3"; do
		if mountpoint -q "$m" 2>/dev/null; then
			"$CLOUDMOUNT" unmount "$m" >/dev/null 2>&1 || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	# the daemon (or one a tray started after it died): whoever answers the socket
	pid=$("$PY" "$ROOT/tests/tools/cmctl.py" call '{"cmd":"ping"}' 2>/dev/null |
		"$PY" -c 'import json, sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)
	for p in $DAEMON_PID $pid; do
		grep -qa daemon "/proc/$p/cmdline" 2>/dev/null && kill -TERM "$p" 2>/dev/null
	done
	stop_proxy
	cd / && rm -rf "$WORK"
}
trap cleanup EXIT

# The secret the remotes use and the one typed into the dialog: s3rver checks
# no signature, so a secret of this test's own shows whether it travels
# anywhere; radosgw needs the real one.
if [ "$S3_SERVER" = radosgw ]; then
	DLG_SECRET=$S3_SECRET_KEY
else
	DLG_SECRET=cmtray$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
fi
printf '%s' "$DLG_SECRET" >"$WORK/secret" # for xdotool type --file: never in an argv
chmod 600 "$WORK/secret"
add_remote() { # NAME BUCKET ENDPOINT MOUNTPOINT
	printf '%s\n' "$S3_SECRET_KEY" | "$CLOUDMOUNT" remote add "$1" "s3://$2" --endpoint "$3" --path-style \
		--mountpoint "$4" --access-key-id "$S3_ACCESS_KEY"
}

# ---- the daemon, the proxy, two remotes ------------------------------------
it "the forwarder starts" start_proxy fwd
FWD_PORT=$PROXY_PORT
B1=$(new_bucket) && B2=$(new_bucket) && B3=$(new_bucket) || exit 1
it "remote add traytest (through the forwarder)" add_remote traytest "$B1" "http://127.0.0.1:$FWD_PORT" "$MP"
it "remote add traytwo" add_remote traytwo "$B2" "$S3_ENDPOINT" "$MP2"
start_daemon() {
	"${NOSECRET_ENV[@]}" "$CLOUDMOUNT" daemon >"$WORK/daemon.start" 2>&1 || { cat "$WORK/daemon.start"; return 1; }
	DAEMON_PID=$(sed -n 's/^cloudmount daemon started (pid \([0-9]*\)).*/\1/p' "$WORK/daemon.start")
}
it "the daemon starts (no AWS secret in its environment)" start_daemon

# ---- helpers for the menu ---------------------------------------------------
# layout: the tray's whole menu as GVariant text
layout() { gdbus call --session -d "$SENDER" -o "$OPATH/Menu" -m com.canonical.dbusmenu.GetLayout -- 0 -1 '["label","enabled"]'; }
# find_item SUBMENU-PREFIX LABEL: the id of the enabled item LABEL (in the
# submenu whose label starts with SUBMENU-PREFIX; "" = the top level)
find_item() {
	layout >"$WORK/layout.txt" || return 1
	"$PY" - "$1" "$2" "$WORK/layout.txt" <<'EOF'
import sys
from gi.repository import GLib
prefix, label, path = sys.argv[1:4]
v = GLib.Variant.parse(None, open(path).read().strip(), None, None).unpack()
def walk(node, parent):
    ident, props, children = node
    lab = props.get("label", "")
    inside = parent == "" if prefix == "" else (parent is not None and parent.startswith(prefix))
    if inside and lab == label and props.get("enabled", True):
        print(ident); sys.exit(0)
    for c in children:
        walk(c, "" if parent is None else lab)
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
	local n=$(($1 * 5)) i
	shift
	for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	"$@" # once more, with its output
}
click() { # SUBMENU-PREFIX LABEL
	local id
	id=$(find_item "$1" "$2") || { echo "no enabled item '$2' under '$1'"; return 1; }
	gdbus call --session -d "$SENDER" -o "$OPATH/Menu" -m com.canonical.dbusmenu.Event -- "$id" clicked '<"">' 0 >/dev/null
}
mounted() { grep -q " $1 fuse.cloudmount " /proc/mounts; }
unmounted() { ! grep -q " $1 " /proc/mounts; }
label_says() { submenu_label "$1 —" | grep -q -- "— $2"; } # NAME STATE
icon_is() {
	local icon
	icon=$(gdbus call --session -d "$SENDER" -o "$OPATH" -m org.freedesktop.DBus.Properties.Get -- \
		org.kde.StatusNotifierItem IconName 2>&1)
	echo "icon: $icon"
	echo "$icon" | grep -q "'$1'"
}
notices() { # PATTERN: how many notifications match
	grep -c -- "$1" "$WORK/notifications" 2>/dev/null || true
}
notices_are() { # PATTERN COUNT
	local n
	n=$(notices "$1")
	[ "$n" = "$2" ] || { echo "$n notifications match '$1', expected $2:"; cat "$WORK/notifications" 2>/dev/null; return 1; }
}
tray_says() { grep -q -- "$1" "$WORK/tray.log"; }

# ---- part 1: StatusNotifierItem ------------------------------------------
"$PY" "$WATCHER" --items "$WORK/items" --timeout 280 >>"$WORK/watcher.log" 2>&1 &
WATCHER_PID=$!
"$PY" "$WATCHER" --notifications "$WORK/notifications" --timeout 280 >>"$WORK/watcher.log" 2>&1 &
NOTIFY_PID=$!
bus_has() { gdbus call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.NameHasOwner "$1" | grep -q true; }
it "the fake watcher and notification server are on the bus" \
	wait_for 10 sh -c 'for n in org.kde.StatusNotifierWatcher org.freedesktop.Notifications; do
		gdbus call --session -d org.freedesktop.DBus -o /org/freedesktop/DBus -m org.freedesktop.DBus.NameHasOwner $n | grep -q true || exit 1; done'

# A file manager of the test's own for inode/directory: records what it opens.
cat >"$WORK/fakefm" <<EOF
#!/bin/sh
echo "\$1" >>"$WORK/opened"
EOF
chmod +x "$WORK/fakefm"
printf '[Desktop Entry]\nType=Application\nName=Fake FM\nExec=%s %%u\nMimeType=inode/directory;\n' "$WORK/fakefm" \
	>"$XDG_DATA_HOME/applications/cm-fakefm.desktop"
printf '[Default Applications]\ninode/directory=cm-fakefm.desktop\n' >"$XDG_CONFIG_HOME/mimeapps.list"

"${NOSECRET_ENV[@]}" "$TRAY" >>"$WORK/tray.log" 2>&1 &
TRAY_PID=$!
registered() {
	wait_for 15 grep -q ' /org/ayatana/NotificationItem/cloudmount$' "$WORK/items" && return 0
	echo "tray alive: $(kill -0 "$TRAY_PID" 2>&1 && echo yes)"; tail -n 15 "$WORK/tray.log" "$WORK/watcher.log"
	return 1
}
it "the tray registers /org/ayatana/NotificationItem/cloudmount with the watcher" registered
read -r SENDER OPATH <"$WORK/items" 2>/dev/null
: "${SENDER:=none}" "${OPATH:=/none}"

it "traytest's submenu has an enabled Mount item" wait_for 10 find_item "traytest —" Mount
it "the icon is cloudmount-idle while nothing is mounted" icon_is cloudmount-idle
it "clicking Mount" click "traytest —" Mount
it "traytest got mounted" wait_for 30 mounted "$MP"
it "its label says mounted" wait_for 10 label_says traytest mounted
it "the icon is cloudmount-ok while mounted" wait_for 5 icon_is cloudmount-ok
write_through() { # MOUNTPOINT BUCKET: a file written in the mount is in the bucket (awscli)
	echo "hello from the tray test" >"$1/tray.txt" &&
		awsx s3 cp "s3://$2/tray.txt" - | grep -q "hello from the tray test"
}
it "a file written in it is in the bucket (awscli)" write_through "$MP" "$B1"

# Copy path: the clipboard holds the mount point
clipboard_is() { [ "$(xclip -o -selection clipboard 2>&1)" = "$1" ] || { echo "clipboard: $(xclip -o -selection clipboard 2>&1)"; return 1; }; }
it "clicking Copy path" click "traytest —" "Copy path"
it "the clipboard holds the mount point" wait_for 5 clipboard_is "$MP"
# Open folder: the desktop's file manager is started on it
it "clicking Open folder" click "traytest —" "Open folder"
# (GIO hands a local path or a file:// URI to an Exec=... %u)
it "the file manager was started on the mount point" wait_for 10 grep -qxE "(file://)?$MP" "$WORK/opened"

# The server goes away: degraded within seconds, one notification; and back.
stop_proxy
it "with the server gone, the label says degraded within 10 s" wait_for 10 label_says traytest degraded
it "the icon is cloudmount-degraded" wait_for 5 icon_is cloudmount-degraded
it "one notification says traytest is degraded" wait_for 5 notices_are "traytest is degraded" 1
sleep 3 # more health checks while still down: no second notification
it "still one notification about it" notices_are "traytest is degraded" 1
it "the forwarder starts again on port $FWD_PORT" start_proxy fwd --port "$FWD_PORT"
it "with the server back, the label says mounted again" wait_for 15 label_says traytest mounted
it "the icon is cloudmount-ok again" wait_for 5 icon_is cloudmount-ok
it "one notification says traytest recovered" wait_for 5 notices_are "traytest recovered" 1
it "two notifications in all" notices_are summary 2
head -c 600 "$WORK/notifications" | sed -e 's/^/# /'

# Mount all mounts the other remote too
it "clicking Mount all" click "" "Mount all"
it "traytwo got mounted" wait_for 30 mounted "$MP2"
it "traytest is still mounted" mounted "$MP"
it "a file written in traytwo is in its bucket (awscli)" write_through "$MP2" "$B2"
it "clicking Unmount on traytest" click "traytest —" Unmount
it "traytest got unmounted" wait_for 30 unmounted "$MP"
it "its label says unmounted" wait_for 10 label_says traytest unmounted

# Add bucket…: the dialog, typed into as a user would
DLG=
find_dialog() { DLG=$(xdotool search --onlyvisible --name '^Add bucket$' | head -n 1); [ -n "$DLG" ]; }
type_field() { # MNEMONIC TEXT: focus the field by its label's mnemonic, replace its text
	xdotool key --clearmodifiers "alt+$1" && sleep 0.1 && xdotool key ctrl+a BackSpace &&
		{ [ -z "$2" ] || xdotool type --delay 5 -- "$2"; }
}
fill_dialog() { # ENDPOINT
	[ -n "$DLG" ] || return 1
	xdotool windowfocus --sync "$DLG" && sleep 0.2 &&
		type_field n traynew && type_field u "s3://$B3" && type_field e "$1" &&
		type_field r "${S3_REGION:-us-east-1}" && type_field k "$S3_ACCESS_KEY" &&
		xdotool key alt+s ctrl+a BackSpace && xdotool type --delay 5 --file "$WORK/secret"
}
it "clicking Add bucket…" click "" "Add bucket…"
it "the Add bucket dialog opens" wait_for 10 find_dialog
CLOSED_PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
it "typing a bucket with a wrong endpoint into it" fill_dialog "http://127.0.0.1:$CLOSED_PORT"
it "ticking Path-style" xdotool key alt+p
sleep 0.3
import -window "$DLG" "$ARTIFACTS/tray-add-bucket.png" 2>/dev/null
it "Test connection" xdotool key alt+t
it "says what is wrong (the endpoint does not answer)" wait_for 15 tray_says "add bucket: S3 unreachable"
grep "add bucket:" "$WORK/tray.log" | tail -n 2 | sed -e 's/^/# /'
it "with the right endpoint" type_field e "$S3_ENDPOINT"
it "Test connection again" xdotool key alt+t
it "says the bucket answers" wait_for 15 tray_says "add bucket: Connected"
it "Add and mount" xdotool key alt+a
it "traynew got mounted" wait_for 30 mounted "$MP3"
it "remote list shows traynew" sh -c "'$CLOUDMOUNT' remote list | grep -q traynew"
it "a file written in traynew is in its bucket (awscli)" write_through "$MP3" "$B3"
it "the dialog closed" sh -c "! xdotool search --onlyvisible --name '^Add bucket\$' >/dev/null"
it "traynew is in the menu, mounted" wait_for 10 label_says traynew mounted

# Quit: the tray exits, the mounts stay
it "clicking Quit" click "" Quit
tray_exited() { ! kill -0 "$TRAY_PID" 2>/dev/null; }
it "the tray exits" wait_for 10 tray_exited
wait "$TRAY_PID" 2>/dev/null
TRAY_PID=
it "mounts stay up after Quit" sh -c "grep -q ' $MP2 fuse' /proc/mounts && grep -q ' $MP3 fuse' /proc/mounts"

# ---- part 2: XEmbed fallback (no watcher), the menu's screenshot -----------
kill "$WATCHER_PID" 2>/dev/null
wait "$WATCHER_PID" 2>/dev/null
WATCHER_PID=
# and no daemon: the tray must start one, which adopts the running mounts
daemon_answers() { "$PY" "$ROOT/tests/tools/cmctl.py" call '{"cmd":"ping"}' 2>/dev/null | grep -q '"ok":true'; }
stop_daemon() {
	kill -TERM "$DAEMON_PID" && for _ in $(seq 50); do daemon_answers || return 0; sleep 0.1; done
	return 1
}
it "the daemon stops" stop_daemon
DAEMON_PID=
trayer --edge top --align right --widthtype pixel --width 120 --height 26 --SetDockType false \
	--transparent false >/dev/null 2>&1 &
TRAYER_PID=$!
it "trayer (an XEmbed tray) starts" wait_for 10 sh -c "xdotool search --name '^panel\$' >/dev/null"
"${NOSECRET_ENV[@]}" "$TRAY" >>"$WORK/tray2.log" 2>&1 &
TRAY_PID=$!
ICONWIN=
find_icon() { # the icon's window, named after the tooltip, inside trayer's panel
	ICONWIN=$(xdotool search --name '^[0-9]+ mounted' | head -n 1)
	[ -n "$ICONWIN" ]
}
it "the tray started a daemon" wait_for 10 daemon_answers
it "which adopted the mounts" wait_for 10 sh -c "'$CLOUDMOUNT' status | grep -E '^traytwo .* mounted'"
it "without a watcher the tray shows an XEmbed icon in trayer" wait_for 15 find_icon
in_panel() { xwininfo -tree -name panel | grep -q "$(printf '0x%x' "$ICONWIN")"; }
it "the icon is embedded in the panel" in_panel
MENUWIN=
open_menu() {
	local X Y WIDTH HEIGHT
	eval "$(xdotool getwindowgeometry --shell "$ICONWIN")"
	xdotool mousemove $((X + WIDTH / 2)) $((Y + HEIGHT / 2)) click 1
	sleep 0.5
	MENUWIN=$(xdotool search --onlyvisible --class cloudmount-tray | while read -r w; do
		[ "$(xdotool getwindowname "$w")" = cloudmount-tray ] && echo "$w"; done | tail -n 1)
	[ -n "$MENUWIN" ]
}
it "clicking the icon opens the menu" wait_for 5 open_menu
shoot_menu() { # hover the second remote (mounted) so its submenu opens, then shoot the top right corner
	local X Y WIDTH HEIGHT
	eval "$(xdotool getwindowgeometry --shell "$MENUWIN")"
	xdotool mousemove $((X + WIDTH / 2)) $((Y + 39))
	sleep 1
	import -window root -crop "$((1024 - X + WIDTH + 20))x$((HEIGHT + 60))+$((X - WIDTH - 20))+0" +repage \
		"$ARTIFACTS/tray-menu.png"
}
it "a screenshot of the open menu" shoot_menu
echo "# screenshots: $ARTIFACTS/tray-menu.png $ARTIFACTS/tray-add-bucket.png"
# Quit with [tray] unmount-on-quit = true: the buckets go down with the tray
printf '\n[tray]\nunmount-on-quit = true\n' >>"$XDG_CONFIG_HOME/cloudmount/cloudmount.conf"
click_quit() { # Quit is the menu's last item
	local X Y WIDTH HEIGHT
	eval "$(xdotool getwindowgeometry --shell "$MENUWIN")"
	xdotool mousemove $((X + WIDTH / 2)) $((Y + HEIGHT - 14)) sleep 0.3 click 1
}
it "clicking Quit in the XEmbed menu (unmount-on-quit set)" click_quit
it "the tray exits" wait_for 30 tray_exited
it "and unmounted every bucket first" sh -c "! grep -qE ' ($MP|$MP2|$MP3) ' /proc/mounts"
grep "quit:" "$WORK/tray2.log" | sed -e 's/^/# /'
kill "$TRAY_PID" "$TRAYER_PID" 2>/dev/null
wait "$TRAY_PID" "$TRAYER_PID" 2>/dev/null
TRAY_PID= TRAYER_PID=

# ---- the secret typed into the dialog went nowhere -----------------------
no_secret_anywhere() {
	local f pid hits=0
	for f in "$WORK/tray.log" "$WORK/tray2.log" "$WORK/daemon.start" "$XDG_CACHE_HOME"/cloudmount/*.log \
		"$XDG_CONFIG_HOME/cloudmount/cloudmount.conf"; do
		[ -f "$f" ] && grep -qF -- "$DLG_SECRET" "$f" && { echo "in $f"; hits=1; }
	done
	for pid in $(pgrep -f "$CLOUDMOUNT") $DAEMON_PID; do
		for f in cmdline environ; do
			tr '\0' '\n' <"/proc/$pid/$f" 2>/dev/null | grep -qF -- "$DLG_SECRET" && { echo "in /proc/$pid/$f"; hits=1; }
		done
	done
	[ "$hits" = 0 ]
}
it "the secret is in no log, config, cmdline or environ of tray, daemon and mounts" no_secret_anywhere
it "but the remote's secret is in the credentials store" grep -qF -- "$DLG_SECRET" "$XDG_CONFIG_HOME/cloudmount/credentials"
for name in traytest traytwo traynew; do mount_log_clean "$name"; done
[ -n "${TRAY_DEBUG:-}" ] && cat "$WORK/tray.log" "$WORK/tray2.log" "$WORK/watcher.log"

finish
