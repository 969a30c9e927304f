#!/usr/bin/env bash
# test_mount.sh - a bucket mounted through the real binary, used with ordinary
# tools, and every result checked again through awscli (the second client).
. "$(dirname "$0")/lib.sh"

bucket=$(new_bucket) || exit 1
MNT=$WORK/mnt
STATS=$WORK/stats.json
mkdir -p "$MNT"
MOUNT_PID=
cleanup_mount() {
	local m
	for m in "$MNT" "$WORK/mnt2"; do
		if mountpoint -q "$m" 2>/dev/null; then
			"$CLOUDMOUNT" unmount "$m" >/dev/null 2>&1 || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	stop_proxy
}
trap 'cleanup_mount; rm -rf "$WORK"' EXIT

# stat_field NAME: a counter from the mount's stats file
stat_field() {
	sleep 0.5
	$PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$STATS" "$1"
}
head_meta() { # KEY FIELD: x-amz-meta-FIELD of an object, through awscli
	awsx s3api head-object --bucket "$bucket" --key "$1" --query "Metadata.\"$2\"" --output text
}

# objects written by another client before the mount
printf 'from awscli\n' >"$WORK/a.txt"
awsx s3 cp "$WORK/a.txt" "s3://$bucket/pre/a.txt" >/dev/null
awsx s3 cp "$WORK/a.txt" "s3://$bucket/pre/sub/b.txt" >/dev/null
awsx s3api put-object --bucket "$bucket" --key "marker-only/" >/dev/null
# keys that cannot be file names (s3rver keeps keys as files and cannot store
# these; radosgw can)
BADKEYS=0
if [ "$S3_SERVER" = radosgw ]; then
	for k in "bad//double" "bad/./dot" "bad/../escape" "bad/ctl$(printf '\001')x" "bad/$(printf 'x%.0s' $(seq 1 300))"; do
		awsx s3api put-object --bucket "$bucket" --key "$k" >/dev/null && BADKEYS=$((BADKEYS + 1))
	done
	awsx s3api put-object --bucket "$bucket" --key "bad/fine" >/dev/null
fi
for i in $(seq 1 300); do printf 'f%d' "$i" >"$WORK/many.$i"; done
awsx s3 cp --recursive --quiet "$WORK/" "s3://$bucket/many/" --exclude '*' --include 'many.*'

# mounting: errors first
mkdir -p "$WORK/full"
touch "$WORK/full/x"
expect_exit 2 "mounting on a non-empty directory is refused" cm mount "s3://$bucket" "$WORK/full"
out_has "and says why" 'not empty'
expect_exit 5 "mounting a missing bucket is refused" cm mount "s3://cm-no-such-bucket-zz" "$MNT"
out_has "and names the problem" 'no such bucket'
expect_exit 2 "mounting on a file is refused" cm mount "s3://$bucket" "$WORK/full/x"

it "mount returns once the bucket is mounted" cm mount "s3://$bucket" "$MNT" --stats-file "$STATS"
it "the directory is a mount point" mountpoint -q "$MNT"
it "mount(8) shows cloudmount:BUCKET of type fuse.cloudmount" \
	sh -c "grep -q '^cloudmount:$bucket $MNT fuse.cloudmount ' /proc/mounts"
it "df knows it" df "$MNT"

# reading what other clients wrote
it "ls shows directories from prefixes and markers" ls "$MNT"
out_has "pre/ is a directory" '^pre$'
out_has "marker-only/ is a directory" '^marker-only$'
it "an awscli object reads back" cmp "$MNT/pre/a.txt" "$WORK/a.txt"
it "nested object reads back" cmp "$MNT/pre/sub/b.txt" "$WORK/a.txt"
it "stat gives the size" test "$(stat -c %s "$MNT/pre/a.txt")" = 12
if [ "$S3_SERVER" = radosgw ]; then
	it "the $BADKEYS unusable keys were all stored" test "$BADKEYS" = 5
	it "a directory holding unusable keys lists" ls -a "$MNT/bad"
	it "only its usable entry is shown" test "$(ls -a "$MNT/bad" | tr '\n' ' ')" = ". .. fine "
	it "nothing escaped the mount" test ! -e "$MNT/escape"
	it "the skipped keys were counted" test "$(stat_field skipped_keys)" -ge 4
fi
it "the rest of the listing still works" test -d "$MNT/many"

# ls -l costs list requests only
heads0=$(stat_field head)
lists0=$(stat_field listings)
it "ls -l of 300 files" sh -c "ls -l '$MNT/many' | grep -c many >'$WORK/count'"
it "ls -l listed all 300" test "$(cat "$WORK/count")" = 300
heads1=$(stat_field head)
# the directory's own lookup may cost one probe once its entry expired; the
# 300 entries must cost none
it "ls -l sent no HEAD per entry (heads $heads0 -> $heads1)" test $((heads1 - heads0)) -le 1
it "stat of each listed file right after costs nothing" sh -c "stat '$MNT'/many/* >/dev/null"
heads2=$(stat_field head)
it "still no HEAD (heads $heads1 -> $heads2)" test "$heads1" = "$heads2"
# reading every file of a directory in readdir order (cp -r, tar c, grep -r)
# gets the next ones fetched ahead: the opens find their bytes there
ahead0=$(stat_field files_ahead)
it "reading the 300 files in readdir order gives their bytes" $PY -c '
import os, sys
d, src = sys.argv[1], sys.argv[2]
names = os.listdir(d)
bad = [n for n in names if open(os.path.join(d, n), "rb").read() != open(os.path.join(src, n), "rb").read()]
if len(names) != 300 or bad:
    sys.exit(f"{len(names)} names, {len(bad)} differ, e.g. {bad[:3]}")' "$MNT/many" "$WORK"
ahead1=$(stat_field files_ahead)
it "most opens took bytes fetched ahead ($ahead0 -> $ahead1)" test $((ahead1 - ahead0)) -ge 250

# writing
it "echo > file writes a new object" sh -c "echo hello > '$MNT/new.txt'"
it "awscli reads it" sh -c "test \"\$('$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/new.txt' -)\" = hello"
head -c $((40 << 20)) /dev/urandom >"$WORK/big.bin"
it "cp of 40 MiB into the mount" cp "$WORK/big.bin" "$MNT/big.bin"
it "awscli downloads it byte for byte" sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/big.bin' '$WORK/big.aws' >/dev/null && cmp '$WORK/big.bin' '$WORK/big.aws'"
it "reading it back through the mount matches" cmp "$WORK/big.bin" "$MNT/big.bin"
# random reads: after 16 that each waited (a server a round trip away) the
# mount copies the object to its staging disk and answers from there
# (tests/tools/randread.py waits for the copy). An object the kernel has
# cached none of: awscli writes it.
head -c $((40 << 20)) /dev/urandom >"$WORK/rand.bin"
awsx s3 cp "$WORK/rand.bin" "s3://$bucket/rand.bin" >/dev/null
rr_json() { # FILE FIELD
	$PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null
}
it "random reads on loopback are right" \
	sh -c "$PY '$ROOT/tests/tools/randread.py' '$MNT/rand.bin' '$WORK/rand.bin' '$STATS' >'$WORK/rr0.json'"
it "quick ones make no copy: 300 more cost a GET each (but what the page cache had), no staging ($(cat "$WORK/rr0.json" 2>/dev/null))" \
	test "$(rr_json "$WORK/rr0.json" gets)" -ge 250 -a "$(rr_json "$WORK/rr0.json" staging_open)" = 0
MNT2=$WORK/mnt2
STATS2=$WORK/stats2.json
mkdir -p "$MNT2"
if start_proxy far --latency-ms 4; then
	it "a second mount through a proxy 4 ms away" \
		"$CLOUDMOUNT" mount "s3://$bucket" "$MNT2" --endpoint "http://127.0.0.1:$PROXY_PORT" --path-style \
		--stats-file "$STATS2"
	it "random reads there are right, then served from a local copy" \
		sh -c "$PY '$ROOT/tests/tools/randread.py' '$MNT2/rand.bin' '$WORK/rand.bin' '$STATS2' >'$WORK/rr.json'"
	it "300 random reads after the copy cost no GET ($(cat "$WORK/rr.json" 2>/dev/null))" \
		test "$(rr_json "$WORK/rr.json" gets)" = 0
	it "the copy was on the staging disk while open, and gone after close" \
		$PY -c 'import json,sys; d = json.load(open(sys.argv[1])); sys.exit(not (d["staging_open"] >= 40 << 20 and d["staging_closed"] == 0))' "$WORK/rr.json"
	it "the second mount unmounts" "$CLOUDMOUNT" unmount "$MNT2"
	stop_proxy
else
	skip "random reads through a proxy" "faultproxy did not start"
fi
it "an empty file is created" touch "$MNT/empty"
it "awscli sees the empty object" awsx s3api head-object --bucket "$bucket" --key empty
it "appending to an existing object" sh -c "echo more >> '$MNT/new.txt'"
it "awscli reads the appended object" sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/new.txt' - | tr '\n' ' ' | grep -qx 'hello more '"
printf 'XYZ' | dd of="$MNT/big.bin" bs=1 seek=1000000 conv=notrunc status=none
printf 'XYZ' | dd of="$WORK/big.bin" bs=1 seek=1000000 conv=notrunc status=none
it "a write in the middle of a big object lands" sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/big.bin' '$WORK/big.aws2' >/dev/null && cmp '$WORK/big.bin' '$WORK/big.aws2'"
it "truncate -s 5" truncate -s 5 "$MNT/new.txt"
it "awscli sees 5 bytes" test "$(awsx s3api head-object --bucket "$bucket" --key new.txt --query ContentLength --output text)" = 5
it "truncate -s 0 on a closed file" truncate -s 0 "$MNT/new.txt"
it "awscli sees 0 bytes" test "$(awsx s3api head-object --bucket "$bucket" --key new.txt --query ContentLength --output text)" = 0

# directories
it "mkdir" mkdir "$MNT/d1"
it "awscli sees the d1/ marker" awsx s3api head-object --bucket "$bucket" --key d1/
it "a file in the new directory" sh -c "echo x > '$MNT/d1/f'"
expect_exit 1 "rmdir of a non-empty directory fails" rmdir "$MNT/d1"
out_has "with ENOTEMPTY" 'not empty'
it "rm" rm "$MNT/d1/f"
it "awscli no longer sees it" sh -c "! '$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key d1/f >/dev/null 2>&1"
it "rmdir of the now empty directory" rmdir "$MNT/d1"
it "the marker is gone" sh -c "! '$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key d1/ >/dev/null 2>&1"

# rename
it "mv a file" mv "$MNT/pre/a.txt" "$MNT/pre/renamed.txt"
it "awscli sees the new key" awsx s3api head-object --bucket "$bucket" --key pre/renamed.txt
it "and not the old one" sh -c "! '$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key pre/a.txt >/dev/null 2>&1"
it "mv a directory tree" mv "$MNT/pre" "$MNT/moved"
it "awscli sees the moved tree" awsx s3api head-object --bucket "$bucket" --key moved/sub/b.txt
it "nothing left under the old prefix" test "$(awsx s3api list-objects-v2 --bucket "$bucket" --prefix pre/ --query 'length(Contents || `[]`)' --output text)" = 0
it "the moved file reads through the mount" cmp "$MNT/moved/sub/b.txt" "$WORK/a.txt"
echo one >"$MNT/x1"
echo two >"$MNT/x2"
it "mv over an existing file replaces it" mv "$MNT/x1" "$MNT/x2"
it "x2 has x1's content" test "$(cat "$MNT/x2")" = one

# metadata, the way s3fs keeps it
echo m >"$MNT/meta.txt"
it "chmod 640" chmod 640 "$MNT/meta.txt"
it "x-amz-meta-mode is 0100640 (33184)" test "$(head_meta meta.txt mode)" = 33184
it "touch -d sets mtime" touch -d '2020-01-02 03:04:05 UTC' "$MNT/meta.txt"
it "x-amz-meta-mtime is that time" test "$(head_meta meta.txt mtime)" = 1577934245
it "stat through the mount agrees" test "$(stat -c %a:%Y "$MNT/meta.txt")" = 640:1577934245
it "ln -s" ln -s target/path "$MNT/link"
it "readlink" test "$(readlink "$MNT/link")" = target/path
it "the object holds the target" sh -c "test \"\$('$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/link' -)\" = target/path"
it "its mode says symlink (0120777 = 41471)" test "$(head_meta link mode)" = 41471
expect_exit 1 "hard links are refused" ln "$MNT/meta.txt" "$MNT/hard"
out_has "with EPERM" 'not permitted'

# changes made by another client show up after the TTL
printf 'changed elsewhere\n' >"$WORK/ext.txt"
awsx s3 cp "$WORK/ext.txt" "s3://$bucket/x2" >/dev/null
sleep 1.5
it "an external overwrite is seen after the TTL" cmp "$MNT/x2" "$WORK/ext.txt"
awsx s3 cp "$WORK/ext.txt" "s3://$bucket/brand-new" >/dev/null
sleep 1.5
it "an external new file appears" cmp "$MNT/brand-new" "$WORK/ext.txt"

it "unmount" "$CLOUDMOUNT" unmount "$MNT"
it "no longer a mount point" sh -c "! mountpoint -q '$MNT'"

# rsync -a, then again after a remount: attributes come back from the on-disk
# metadata cache, so the second run finds nothing to transfer and sends no HEAD
mkdir -p "$WORK/src/sub"
for i in $(seq 1 40); do
	head -c $((i * 100)) /dev/urandom >"$WORK/src/f$i"
	chmod $((600 + i % 2 * 40)) "$WORK/src/f$i"
	touch -d "@$((1600000000 + i * 1000))" "$WORK/src/f$i"
done
echo sub >"$WORK/src/sub/s"
ln -s f1 "$WORK/src/lnk"
it "mount again (long TTL, so only remount effects count)" cm mount "s3://$bucket" "$MNT" --stats-file "$STATS" --metadata-ttl 60
it "rsync -a into the mount" rsync -a "$WORK/src/" "$MNT/rs/"
it "awscli sees the mode rsync set" test "$(head_meta rs/f1 mode)" = $((0100640))
it "awscli sees the mtime rsync set" test "$(head_meta rs/f2 mtime)" = 1600002000
it "unmount" "$CLOUDMOUNT" unmount "$MNT"
it "and mount again" cm mount "s3://$bucket" "$MNT" --stats-file "$STATS" --metadata-ttl 60
heads0=$(stat_field head)
puts0=$(stat_field put)
it "rsync -a again" sh -c "rsync -a --itemize-changes '$WORK/src/' '$MNT/rs/' >'$WORK/rsync2.out'"
heads1=$(stat_field head)
puts1=$(stat_field put)
it "the second rsync transferred no file" sh -c "! grep -q '^>f' '$WORK/rsync2.out'"
[ -s "$WORK/rsync2.out" ] && sed -e 's/^/# rsync: /' "$WORK/rsync2.out" | head -5
it "and sent no HEAD after the remount (heads $heads0 -> $heads1)" test "$heads0" = "$heads1"
it "and uploaded nothing (puts $puts0 -> $puts1)" test "$puts0" = "$puts1"
it "modes survived the remount" test "$(stat -c %a "$MNT/rs/f1")" = 640
it "the symlink survived as a symlink" test "$(readlink "$MNT/rs/lnk")" = f1
it "unmount" "$CLOUDMOUNT" unmount "$MNT"

# a mount whose process died leaves a stale mount: detected and explained
# (a stats file of its own: the previous mount process may still write its last one)
STATS2=$WORK/stats-stale.json
cm mount "s3://$bucket" "$MNT" --stats-file "$STATS2" >/dev/null 2>&1
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -s "$STATS2" ] && break; sleep 0.2; done
pid=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$STATS2" 2>/dev/null)
if [ -n "$pid" ]; then
	kill -9 "$pid"
	sleep 0.5
	expect_exit 2 "mounting on a stale mount point is refused" cm mount "s3://$bucket" "$MNT"
	out_has "and the fix is given" 'fusermount3 -u'
	fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"
else
	it "the mount process wrote its pid" false
fi
mount_log_clean "$bucket"
finish
