#!/usr/bin/env bash
# test_mount_more.sh - more of the mount: s3fs metadata written by other tools
# (--posix-metadata), renames above the multipart-copy threshold, SIGTERM with
# a file still open, many writers at once, --read-only, the mount(8) form and
# a busy unmount. Results are checked through awscli as well.
. "$(dirname "$0")/lib.sh"

# keep ~/.cache/cloudmount out of it (mounts through -o have no --cache-dir)
export XDG_CACHE_HOME=$WORK/xdg
bucket=$(new_bucket) || exit 1
MNT=$WORK/mnt
mkdir -p "$MNT"
BG=
is_mounted() { awk -v d="$1" '$2 == d { f = 1 } END { exit !f }' /proc/mounts; }
cleanup() {
	exec 3>&-
	[ -n "$BG" ] && kill "$BG" 2>/dev/null && wait "$BG" 2>/dev/null
	if is_mounted "$MNT"; then
		"$CLOUDMOUNT" unmount "$MNT" >/dev/null 2>&1 || fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	# never rm -rf through a live mount: that would empty the bucket
	is_mounted "$MNT" || rm -rf "$WORK"
}
trap cleanup EXIT

N=0
mnt() { # mount "$MNT" with a cache dir and stats file of its own: mnt [options]
	N=$((N + 1))
	STATS=$WORK/stats$N.json
	cm mount "s3://$bucket" "$MNT" --cache-dir "$WORK/cache$N" --stats-file "$STATS" "$@"
}
umnt() { "$CLOUDMOUNT" unmount "$MNT"; }
stat_field() { # NAME: a counter from the current mount's stats file
	sleep 0.5
	$PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$STATS" "$1"
}
mount_pid() {
	for _ in $(seq 1 25); do [ -s "$STATS" ] && break; sleep 0.2; done
	$PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$STATS" 2>/dev/null
}
not() { ! "$@"; }
s3tree_same() { # PREFIX LOCALDIR
	rm -rf "$WORK/tree.tmp"
	awsx s3 sync "s3://$bucket/$1" "$WORK/tree.tmp" --quiet && diff -r "$2" "$WORK/tree.tmp"
}
ro_unchanged() {
	s3absent ro-new.txt && s3absent ro-dir/ && s3absent open2.txt && s3same open.txt "$WORK/open.want"
}
s3absent() { ! awsx s3api head-object --bucket "$bucket" --key "$1" >/dev/null 2>&1; }
s3same() { # KEY LOCALFILE: awscli downloads KEY equal to LOCALFILE
	awsx s3 cp "s3://$bucket/$1" "$WORK/dl.tmp" --quiet && cmp "$2" "$WORK/dl.tmp"
}
s3files() { # PREFIX: how many keys not ending in / (directory markers)
	awsx s3api list-objects-v2 --bucket "$bucket" --prefix "$1" --query 'Contents[].Key' --output text |
		tr '\t' '\n' | grep -vc '/$'
}
s3count() { awsx s3api list-objects-v2 --bucket "$bucket" --prefix "$1" --query 'length(Contents || `[]`)' --output text; }

# ---- 1. s3fs metadata written by another tool ----
printf 'secret\n' >"$WORK/secret"
printf 'target/file' >"$WORK/lnk"
awsx s3api put-object --bucket "$bucket" --key px/secret.txt --body "$WORK/secret" \
	--metadata mode=33152,uid=1234,gid=5678,mtime=1500000000 >/dev/null
awsx s3api put-object --bucket "$bucket" --key px/link --body "$WORK/lnk" --metadata mode=41471 >/dev/null

it "mount without --posix-metadata" mnt --metadata-ttl 2
# the directory's own lookup costs a probe (HEAD px, 404) and a listing: do it
# first, so that what follows counts the listing of its entries alone
it "stat of the directory" stat "$MNT/px"
heads0=$(stat_field head)
it "ls -l of objects carrying s3fs headers" ls -ln "$MNT/px"
# expected: a listing carries no headers, so without --posix-metadata they
# show as plain files with the default mode
out_has "the 0600 file lists with the default mode" '^-rw-r--r-- .* secret\.txt$'
out_has "the s3fs symlink lists as a regular file" '^-rw-r--r-- .* link$'
heads1=$(stat_field head)
# (on a loaded machine the 2 s TTL of px itself may lapse before ls runs: its
# own re-probe is one HEAD; the two entries must cost none)
it "and the listing cost no HEAD per entry (heads $heads0 -> $heads1)" test $((heads1 - heads0)) -le 1
sleep 2.2 # past the metadata TTL: the open revalidates with a HEAD
it "cat of the 0600 file" cmp "$MNT/px/secret.txt" "$WORK/secret"
it "after the open its mode is known (0600)" sh -c "stat -c %a '$MNT/px/secret.txt' | tee /dev/stderr | grep -qx 600"
it "unmount" umnt

it "mount with --posix-metadata (own cache dir)" mnt --posix-metadata
it "ls -ln" ls -ln "$MNT/px"
out_has "the file lists as -rw------- 1234 5678" '^-rw------- +1 +1234 +5678 .* secret\.txt$'
it "the s3fs symlink is a symlink" test -L "$MNT/px/link"
it "readlink gives the target" test "$(readlink "$MNT/px/link")" = target/file
it "the mtime is 1500000000" test "$(stat -c %Y "$MNT/px/secret.txt")" = 1500000000
it "unmount" umnt

# ---- 2. rename above the multipart-copy threshold ----
head -c $((12 << 20)) /dev/urandom >"$WORK/big.bin"
it "mount with --copy-threshold 5M" mnt --copy-threshold 5M
it "write 12 MiB through the mount" cp "$WORK/big.bin" "$MNT/big.bin"
down0=$(stat_field bytes_down)
it "mv it" mv "$MNT/big.bin" "$MNT/big2.bin"
down1=$(stat_field bytes_down)
it "awscli downloads the new key byte for byte" s3same big2.bin "$WORK/big.bin"
it "the old key is gone" s3absent big.bin
if [ "$S3_SERVER" = radosgw ]; then
	etag=$(awsx s3api head-object --bucket "$bucket" --key big2.bin --query ETag --output text)
	it "its ETag says a 3-part multipart copy ($etag)" sh -c "echo '$etag' | grep -q -- '-3\"\$'"
	it "copied server-side: nothing downloaded (bytes_down $down0 -> $down1)" test $((down1 - down0)) -lt 1048576
else
	# s3rver answers UploadPartCopy with 501: the mount falls back to GET + upload
	it "copied through this host (bytes_down $down0 -> $down1)" test $((down1 - down0)) -ge $((12 << 20))
fi
it "reads back through the mount" cmp "$MNT/big2.bin" "$WORK/big.bin"
it "mkdir" mkdir "$MNT/bigdir"
it "a 12 MiB file in it" cp "$WORK/big.bin" "$MNT/bigdir/inner.bin"
echo small >"$MNT/bigdir/small.txt"
it "mv of the directory" mv "$MNT/bigdir" "$MNT/bigdir2"
it "awscli downloads the moved big file byte for byte" s3same bigdir2/inner.bin "$WORK/big.bin"
it "and the small one" test "$(awsx s3 cp "s3://$bucket/bigdir2/small.txt" -)" = small
it "nothing left under bigdir/" test "$(s3count bigdir/)" = 0

# ---- 3. SIGTERM with a file still open ----
pid=$(mount_pid)
it "the mount wrote its pid ($pid)" test -n "$pid"
exec 3>"$MNT/open.txt"
echo data >&3
it "SIGTERM to the mount process" kill -TERM "$pid"
for _ in $(seq 1 300); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
it "it exits within 30 s" test ! -d "/proc/$pid"
printf 'data\n' >"$WORK/open.want"
it "awscli has open.txt with \"data\\n\"" s3same open.txt "$WORK/open.want"
exec 3>&-
it "the mount point is released" not is_mounted "$MNT"
is_mounted "$MNT" && { fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"; }

# ---- 4. many writers at once ----
mkdir -p "$WORK/par"
for w in $(seq 1 16); do
	mkdir -p "$WORK/par/w$w"
	for i in $(seq 1 8); do
		head -c $((1024 + (RANDOM * 32768 + RANDOM) % (3 * 1048576 - 1024 + 1))) /dev/urandom >"$WORK/par/w$w/f$i"
	done
done
it "mount" mnt
it "mkdir par" mkdir "$MNT/par"
pids=()
for w in $(seq 1 16); do
	(mkdir "$MNT/par/w$w" && for i in $(seq 1 8); do cp "$WORK/par/w$w/f$i" "$MNT/par/w$w/f$i" || exit 1; done) \
		>"$WORK/writer$w.log" 2>&1 &
	pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
[ "$bad" = 0 ] || cat "$WORK"/writer*.log | sed -e 's/^/# writer: /' | head -10
it "16 writers x 8 files all succeeded ($bad failed)" test "$bad" = 0
it "unmount" umnt
it "mount again" mnt
it "every file equals its local copy through the mount" diff -r "$WORK/par" "$MNT/par"
it "awscli sees 128 files" test "$(s3files par/)" = 128
it "every file equals its local copy through awscli" s3tree_same par "$WORK/par"
it "unmount" umnt

# ---- 5. --read-only ----
it "mount --read-only" mnt --read-only
it "echo > new file is refused" sh -c "! echo x >'$MNT/ro-new.txt'"
out_has "with EROFS" 'Read-only file system'
it "echo > existing file is refused" sh -c "! echo x >'$MNT/px/secret.txt'"
out_has "with EROFS" 'Read-only file system'
it "mkdir is refused" sh -c "! mkdir '$MNT/ro-dir'"
out_has "with EROFS" 'Read-only file system'
it "rm is refused" sh -c "! rm -f '$MNT/open.txt'"
out_has "with EROFS" 'Read-only file system'
it "mv is refused" sh -c "! mv '$MNT/open.txt' '$MNT/open2.txt'"
out_has "with EROFS" 'Read-only file system'
it "touch is refused" sh -c "! touch '$MNT/open.txt'"
out_has "with EROFS" 'Read-only file system'
it "nothing changed in the bucket" ro_unchanged
it "reads work" cmp "$MNT/open.txt" "$WORK/open.want"
it "unmount" umnt

# ---- 6. the mount(8) forms ----
it "cloudmount s3://B DIR -o ro,path_style,endpoint=,noauto,_netdev,nofail,x-systemd.automount" \
	"$CLOUDMOUNT" "s3://$bucket" "$MNT" -o "ro,path_style,endpoint=$S3_ENDPOINT,noauto,_netdev,nofail,x-systemd.automount"
it "is mounted read-only" sh -c "grep -q ' $MNT fuse.cloudmount ro,' /proc/mounts"
it "reads work" cmp "$MNT/open.txt" "$WORK/open.want"
it "writes are refused" sh -c "! echo x >'$MNT/ro-new.txt'"
out_has "with EROFS" 'Read-only file system'
it "unmount" umnt

# mount(8) itself: it runs /sbin/mount.fuse (mount.fuse3) with PATH removed
# from the environment (util-linux sanitizes it), so "-t fuse.cloudmount"
# finds cloudmount only where it is installed; "-t fuse" with
# "/path/to/cloudmount#SOURCE" works from the build tree. A wrapper logs the
# argv mount.fuse3 passes on.
mkdir -p "$WORK/bin"
cat >"$WORK/bin/cloudmount" <<EOF
#!/bin/sh
printf '%s\n' "\$@" >"$WORK/argv.log"
exec "$CLOUDMOUNT" "\$@"
EOF
chmod +x "$WORK/bin/cloudmount"
argv_seen() { # the argv mount.fuse3 gave cloudmount (endpoint hidden)
	tr '\n' ' ' <"$WORK/argv.log" | sed -e "s#$S3_ENDPOINT#\$S3_ENDPOINT#g; s#$WORK#\$WORK#g"
}
mount8_checks() { # FORM
	echo "# $1: mount.fuse3 ran: cloudmount $(argv_seen)"
	it "$1: argv is SOURCE DIR -o OPTIONS, _netdev and nofail dropped" \
		test "$(argv_seen)" = "s3://$bucket \$WORK/mnt -o rw,path_style,endpoint=\$S3_ENDPOINT,dev,suid "
	it "$1: is mounted as fuse.cloudmount" sh -c "grep -q ' $MNT fuse.cloudmount rw,' /proc/mounts"
	it "$1: reads work" cmp "$MNT/open.txt" "$WORK/open.want"
	it "$1: writes work" sh -c "echo m8 >'$MNT/m8.txt'"
	it "$1: umount(8)" umount "$MNT"
	it "$1: no longer mounted" not is_mounted "$MNT"
	it "$1: awscli sees the write" test "$(awsx s3 cp "s3://$bucket/m8.txt" -)" = m8
}
rm -f "$WORK/argv.log"
it "mount -t fuse -o path_style,endpoint=,_netdev,nofail CLOUDMOUNT#s3://B DIR" \
	mount -t fuse -o "path_style,endpoint=$S3_ENDPOINT,_netdev,nofail" "$WORK/bin/cloudmount#s3://$bucket" "$MNT"
mount8_checks "mount -t fuse"
rm -f "$WORK/argv.log"
it "mount.fuse3 s3://B DIR -t fuse.cloudmount -o ... (PATH has cloudmount)" \
	env PATH="$WORK/bin:$(dirname "$CLOUDMOUNT"):$PATH" \
	mount.fuse3 "s3://$bucket" "$MNT" -o "rw,path_style,endpoint=$S3_ENDPOINT,_netdev,nofail" -t fuse.cloudmount
mount8_checks "mount.fuse3 -t fuse.cloudmount"
# What an fstab line does: mount -t fuse.cloudmount, with cloudmount found in
# mount(8)'s own PATH. Where it is not installed and we are root (CI), put the
# logging wrapper in /usr/local/bin for this case only.
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
INSTALLED_HERE=
if ! PATH=$SYS_PATH command -v cloudmount >/dev/null && [ "$(id -u)" = 0 ] && [ -d /usr/local/bin ]; then
	cp "$WORK/bin/cloudmount" /usr/local/bin/cloudmount && INSTALLED_HERE=1
	trap 'rm -f /usr/local/bin/cloudmount; cleanup' EXIT
fi
if [ -n "$INSTALLED_HERE" ]; then
	rm -f "$WORK/argv.log"
	it "mount -t fuse.cloudmount -o path_style,endpoint=,_netdev,nofail s3://B DIR (the fstab form)" \
		mount -t fuse.cloudmount -o "path_style,endpoint=$S3_ENDPOINT,_netdev,nofail" "s3://$bucket" "$MNT"
	mount8_checks "mount -t fuse.cloudmount"
	rm -f /usr/local/bin/cloudmount
	trap cleanup EXIT
elif PATH=$SYS_PATH command -v cloudmount >/dev/null; then
	it "mount -t fuse.cloudmount (installed cloudmount)" \
		mount -t fuse.cloudmount -o "path_style,endpoint=$S3_ENDPOINT,_netdev,nofail" "s3://$bucket" "$MNT"
	it "is mounted" is_mounted "$MNT"
	it "reads work" cmp "$MNT/open.txt" "$WORK/open.want"
	it "umount(8)" umount "$MNT"
else
	skip "mount -t fuse.cloudmount" "cloudmount is not installed in mount(8)'s PATH and we are not root"
fi

# ---- 7. unmount of a busy mount point ----
it "mount" mnt
(cd "$MNT" && exec sleep 60) &
BG=$!
sleep 0.3
expect_exit 1 "unmount while a process has its cwd inside fails" "$CLOUDMOUNT" unmount "$MNT"
out_has "with a clear message" 'busy'
it "the mount stays usable" cmp "$MNT/open.txt" "$WORK/open.want"
kill "$BG"
wait "$BG" 2>/dev/null
BG=
it "after leaving, unmount works" umnt
it "no longer mounted" sh -c "! grep -q ' $MNT ' /proc/mounts"
finish
