#!/usr/bin/env bash
# test_keyring.sh - secrets (src/config/secrets*.c) against a real Secret
# Service: gnome-keyring-daemon in a private D-Bus session (dbus-run-session),
# driven through test_secrets --real-keyring and checked from outside with
# secret-tool. Also the fallbacks: no D-Bus session, and a locked keyring,
# both ending in the 0600 credentials file. The S3 server is not used.
#
# Every keyring step runs in its own dbus-run-session; the keyring itself
# persists between them in $XDG_DATA_HOME/keyrings and is unlocked at the start
# of each session with the same password. HOME and every XDG directory point
# into $WORK, and DISPLAY is unset, so the user's own keyring is never touched
# and no unlock prompt can appear on a desktop. Secrets never reach the
# output: the secret-tool checks count lines or compare hashes, and the
# collected output is searched for the secret at the end.
#
# TEST_SECRETS_BIN: the driver; default: tests/test_secrets of the build that
# $CLOUDMOUNT comes from (build/ unless scripts/test points at build-asan/).
. "$(dirname "$0")/lib.sh"

TEST_SECRETS_BIN=${TEST_SECRETS_BIN:-$(dirname "$(dirname "$CLOUDMOUNT")")/tests/test_secrets}
ALL_OUT=$WORK/all-output
: >"$ALL_OUT"
keep() { cat "$WORK/last.out" >>"$ALL_OUT"; }

missing=""
for tool in dbus-run-session gnome-keyring-daemon secret-tool sha256sum; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ] || [ ! -x "$TEST_SECRETS_BIN" ]; then
	echo "# missing:$missing ${TEST_SECRETS_BIN} (scripts/bootstrap installs the tools; build first)" >"$WORK/last.out"
	_record 1 "the keyring tools and $TEST_SECRETS_BIN are present"
	finish
	exit
fi

# A private world: nothing of the user's, no display for prompts.
export HOME=$WORK/home XDG_CONFIG_HOME=$WORK/config XDG_DATA_HOME=$WORK/data
export XDG_CACHE_HOME=$WORK/cache XDG_RUNTIME_DIR=$WORK/run
mkdir -p "$HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
mkdir -m 0700 "$XDG_RUNTIME_DIR"
unset DISPLAY WAYLAND_DISPLAY DBUS_SESSION_BUS_ADDRESS CLOUDMOUNT_SECRETS SECRET_BACKEND
CRED=$XDG_CONFIG_HOME/cloudmount/credentials

KEYRING_PW=keyring-test-$RANDOM$RANDOM
TEST_SECRET_VALUE=$(head -c 30 /dev/urandom | base64 | tr -d '\n=')
TEST_ACCESS_KEY_ID=AKIATEST$RANDOM$RANDOM
export KEYRING_PW TEST_SECRET_VALUE TEST_ACCESS_KEY_ID
SECRET_SHA=$(printf '%s' "$TEST_SECRET_VALUE" | sha256sum | cut -d' ' -f1)
NAME=cm-keyring-$RANDOM

# in_keyring COMMAND...: run COMMAND in a fresh D-Bus session whose
# gnome-keyring is unlocked (the login keyring is created on first use).
# The daemon forks before it owns org.freedesktop.secrets; a request in that
# window has D-Bus start a second one, which finds the first and prints
# "discover_other_daemon: 1" (no newline) into our output. So we wait for the
# name, and still match the driver's "backend: ..." lines without a '^'.
in_keyring() {
	dbus-run-session -- bash -c '
		printf %s "$KEYRING_PW" | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 1
		for _ in $(seq 50); do
			dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
				org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
				grep -q "boolean true" && break
			sleep 0.1
		done
		exec "$@"' bash "$@"
}

# in_locked_keyring COMMAND...: the same, but the keyring is left locked (the
# daemon is started by D-Bus activation on first use, as on a headless login).
in_locked_keyring() {
	dbus-run-session -- "$@"
}

# items NAME: how many keyring items have remote = NAME. secret-tool prints
# the attributes on stderr and the secret on stdout: both only reach grep -c.
items() {
	secret-tool search --all remote "$1" 2>&1 | grep -c "^attribute.remote = $1\$"
}
# same_secret NAME: the keyring's secret for NAME is $TEST_SECRET_VALUE (by hash).
same_secret() {
	[ "$(secret-tool lookup remote "$1" 2>/dev/null | sha256sum | cut -d' ' -f1)" = "$SECRET_SHA" ]
}
export -f items same_secret
export SECRET_SHA


# 1. the driver's own cycle: store, lookup, replace (one item), delete
it "store/lookup/replace/delete cycle against gnome-keyring" in_keyring "$TEST_SECRETS_BIN" --real-keyring
keep
out_has "the cycle reports no failure" 'passed, 0 failed'

# 2. a stored secret, seen from outside with secret-tool
it "store NAME in the keyring" in_keyring "$TEST_SECRETS_BIN" --real-keyring store "$NAME"
keep
out_has "the secret went to the keyring" 'backend: keyring$'
it "no credentials file was written" test ! -e "$CRED"
it "secret-tool finds exactly one item for NAME" in_keyring bash -c '[ "$(items "$1")" = 1 ]' sh "$NAME"
it "the item holds the secret (compared by hash)" in_keyring bash -c 'same_secret "$1"' sh "$NAME"
it "the item carries the access key id and label" in_keyring bash -c \
	'secret-tool search --all remote "$1" 2>&1 | grep -c -e "^attribute.access_key_id = $TEST_ACCESS_KEY_ID\$" -e "^label = CloudMount remote $1\$" | grep -qx 2' sh "$NAME"
it "lookup reads it back" in_keyring "$TEST_SECRETS_BIN" --real-keyring lookup "$NAME"
keep
out_has "lookup used the keyring" 'backend: keyring$'
out_has "lookup got the secret" 'secret: matches$'
out_has "lookup got the access key id" 'key id: matches$'

# 3. re-store with another key id: still one item, with the new id
it "store again with a new access key id" in_keyring env TEST_ACCESS_KEY_ID=AKIANEWID "$TEST_SECRETS_BIN" --real-keyring store "$NAME"
keep
it "still exactly one item" in_keyring bash -c '[ "$(items "$1")" = 1 ]' sh "$NAME"
it "the item has the new key id" in_keyring bash -c \
	'secret-tool search --all remote "$1" 2>&1 | grep -qx "attribute.access_key_id = AKIANEWID"' sh "$NAME"

# 4. delete
it "delete NAME" in_keyring "$TEST_SECRETS_BIN" --real-keyring delete "$NAME"
keep
it "secret-tool finds no item any more" in_keyring bash -c '[ "$(items "$1")" = 0 ]' sh "$NAME"
expect_exit 1 "lookup after delete fails" in_keyring "$TEST_SECRETS_BIN" --real-keyring lookup "$NAME"
keep
out_has "lookup says not found" 'not found'

# 5. no D-Bus session: the file, 0600 in a 0700 directory
it "store without D-Bus" env -u DBUS_SESSION_BUS_ADDRESS "$TEST_SECRETS_BIN" --real-keyring store "$NAME-nobus"
keep
out_has "the secret went to the file" 'backend: file$'
it "the file is mode 600" test "$(stat -c %a "$CRED" 2>/dev/null)" = 600
it "its directory is mode 700" test "$(stat -c %a "$(dirname "$CRED")" 2>/dev/null)" = 700
it "the file has the remote's section" grep -qx "\[$NAME-nobus\]" "$CRED"
it "the file holds the secret" grep -qxF "aws_secret_access_key = $TEST_SECRET_VALUE" "$CRED"
it "lookup without D-Bus" env -u DBUS_SESSION_BUS_ADDRESS "$TEST_SECRETS_BIN" --real-keyring lookup "$NAME-nobus"
keep
out_has "lookup used the file" 'backend: file$'
out_has "lookup got the secret" 'secret: matches$'
it "lookup with a keyring falls back to the file" in_keyring "$TEST_SECRETS_BIN" --real-keyring lookup "$NAME-nobus"
keep
out_has "found in the file" 'backend: file$'
it "delete (with a keyring) removes it from the file" in_keyring "$TEST_SECRETS_BIN" --real-keyring delete "$NAME-nobus"
keep
it "the section is gone" sh -c "! grep -qF '[$NAME-nobus]' '$CRED'"
expect_exit 1 "CLOUDMOUNT_SECRETS=keyring refuses to store without D-Bus" \
	env -u DBUS_SESSION_BUS_ADDRESS CLOUDMOUNT_SECRETS=keyring "$TEST_SECRETS_BIN" --real-keyring store "$NAME-nobus"
keep
out_has "and says there is no file fallback" 'no file fallback'

# 6. a locked keyring: store falls back to the file; a lookup says "locked"
it "store NAME-locked in the unlocked keyring" in_keyring "$TEST_SECRETS_BIN" --real-keyring store "$NAME-locked"
keep
expect_exit 1 "lookup in a locked keyring fails" in_locked_keyring "$TEST_SECRETS_BIN" --real-keyring lookup "$NAME-locked"
keep
out_has "and says the keyring is locked" 'keyring is locked'
it "store into a locked keyring" in_locked_keyring "$TEST_SECRETS_BIN" --real-keyring store "$NAME-locked2"
keep
out_has "falls back to the file" 'backend: file$'
it "clean up" in_keyring "$TEST_SECRETS_BIN" --real-keyring delete "$NAME-locked"
it "and the file entry" in_keyring "$TEST_SECRETS_BIN" --real-keyring delete "$NAME-locked2"

# 7. the sanitizer build found nothing, and no secret was printed
it "no sanitizer report in any output" sh -c "! grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' '$ALL_OUT'"
it "the secret appears in no output" sh -c "! grep -qF -- \"\$TEST_SECRET_VALUE\" '$ALL_OUT'"

finish
