#!/usr/bin/env bash
# test_cli.sh - the cloudmount CLI as a shell user meets it: copies checked
# byte for byte through awscli, exit codes and messages for every kind of
# failure, HTTPS with a private CA, credential sources, and no secret in any
# output.
. "$(dirname "$0")/lib.sh"

bucket=$(new_bucket) || exit 1
ALL_OUT=$WORK/all-output
: >"$ALL_OUT"
keep() { cat "$WORK/last.out" >>"$ALL_OUT"; }

it "--version prints the version" "$CLOUDMOUNT" --version
out_has "version looks like cloudmount X.Y.Z" '^cloudmount [0-9]+\.[0-9]+\.[0-9]+'
for c in ls cat cp du rm stat presign; do
	it "$c --help exits 0" "$CLOUDMOUNT" $c --help
	out_has "$c --help shows usage" "usage: cloudmount $c"
done
expect_exit 2 "unknown command is a usage error" "$CLOUDMOUNT" frobnicate
expect_exit 2 "a bad URL is a usage error" cm ls "http://not-s3/x"
out_has "bad URL message names the URL" 'not an s3://BUCKET'
expect_exit 2 "a bad bucket name is a usage error" cm ls "s3://bad bucket!/x"

# a 64 MiB multipart round trip, checked through awscli both ways
head -c $((64 << 20)) /dev/urandom >"$WORK/big.bin"
it "cp uploads 64 MiB (multipart, parallel parts)" cm cp "$WORK/big.bin" "s3://$bucket/dir/big file.bin"
keep
it "awscli downloads the 64 MiB object" awsx s3 cp "s3://$bucket/dir/big file.bin" "$WORK/big.aws"
it "awscli's copy is byte-identical" cmp "$WORK/big.bin" "$WORK/big.aws"
if [ "$S3_SERVER" = radosgw ]; then
	it "the object is a multipart upload (ETag ends in -8)" \
		sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key 'dir/big file.bin' --query ETag --output text | grep -q -- '-8\"\$'"
fi
awsx s3 cp "$WORK/big.bin" "s3://$bucket/from-aws.bin" >/dev/null 2>&1
it "cp downloads an awscli-written object" cm cp "s3://$bucket/from-aws.bin" "$WORK/back.bin"
it "the download is byte-identical" cmp "$WORK/big.bin" "$WORK/back.bin"
it "cp to a directory takes the key's name" cm cp "s3://$bucket/from-aws.bin" "$WORK/"
it "file landed as from-aws.bin" cmp "$WORK/big.bin" "$WORK/from-aws.bin"
it "cat streams the object" sh -c "'$CLOUDMOUNT' cat 's3://$bucket/from-aws.bin' --endpoint '$S3_ENDPOINT' --path-style | cmp - '$WORK/big.bin'"
it "cp from stdin with an explicit key" sh -c "printf 'from stdin' | '$CLOUDMOUNT' cp - 's3://$bucket/stdin.txt' --endpoint '$S3_ENDPOINT' --path-style"
it "awscli reads the stdin upload" sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/stdin.txt' - | grep -qx 'from stdin'"
printf '' >"$WORK/empty"
it "an empty file uploads" cm cp "$WORK/empty" "s3://$bucket/empty"
it "awscli sees size 0" sh -c "test \"\$('$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key empty --query ContentLength --output text)\" = 0"
it "cp with a trailing slash keeps the file name" cm cp "$WORK/empty" "s3://$bucket/dir/"
it "stat shows the object" cm stat "s3://$bucket/dir/empty"
out_has "stat prints size 0" '^size: 0$'
expect_exit 5 "cp of a missing key exits 5" cm cp "s3://$bucket/nope" "$WORK/nope"
it "a failed download leaves no file" test ! -e "$WORK/nope"
it "no partial file either" sh -c "! ls '$WORK' | grep -q partial"
expect_exit 5 "cat of a missing key exits 5" cm cat "s3://$bucket/nope"
expect_exit 5 "ls of a missing bucket exits 5" cm ls "s3://cm-no-such-bucket-zz/"
out_has "missing bucket is named as such" 'no such bucket'

# ls and du
it "ls lists the directory as a prefix" cm ls "s3://$bucket/"
out_has "ls shows PRE dir/" 'PRE dir/$'
out_has "ls shows from-aws.bin with its size" " 67108864 from-aws.bin$"
it "ls -r lists every key" cm ls -r "s3://$bucket"
out_has "ls -r shows the nested key" ' dir/big file.bin$'
it "du sums the bucket" cm du "s3://$bucket"
out_has "du counts bytes and objects" "^$((2 * 67108864 + 10)) 5 s3://$bucket\$"
it "du of a prefix" cm du "s3://$bucket/dir/"
out_has "du of dir/ counts 2 objects" "^67108864 2 "
it "du --json" cm du --json "s3://$bucket/dir/"
out_has "du --json is JSON" '^\{"bytes": 67108864, "objects": 2\}$'
it "rm deletes a key" cm rm "s3://$bucket/stdin.txt"
expect_exit 1 "awscli no longer finds it" sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key stdin.txt >/dev/null 2>&1 || exit 1"
it "rm -r deletes a prefix" cm rm -r "s3://$bucket/dir/"
it "nothing is left under dir/" sh -c "test \"\$('$AWS' --endpoint-url '$S3_ENDPOINT' s3api list-objects-v2 --bucket '$bucket' --prefix dir/ --query 'length(Contents || \`[]\`)' --output text)\" = 0"

# virtual-hosted addressing: bucket.s3.localhost (curl resolves *.localhost to
# loopback; both servers are started with s3.localhost as their domain)
port=${S3_ENDPOINT##*:}
it "virtual-hosted cp works" "$CLOUDMOUNT" cp "$WORK/empty" "s3://$bucket/vhost.txt" --endpoint "http://s3.localhost:$port" --virtual-hosted
it "awscli (path-style) sees the virtual-hosted upload" awsx s3api head-object --bucket "$bucket" --key vhost.txt
it "virtual-hosted ls lists it" "$CLOUDMOUNT" ls "s3://$bucket/" --endpoint "http://s3.localhost:$port" --virtual-hosted
out_has "vhost listing has the key" ' vhost.txt$'

# a progress bar on a terminal (script(1) gives the command a pty)
it "cp shows a progress bar on a terminal" script -qec "'$CLOUDMOUNT' cp '$WORK/big.bin' 's3://$bucket/tty.bin' --endpoint '$S3_ENDPOINT' --path-style" /dev/null
out_has "the bar has percent, rate and ETA" '100%.*/s +ETA'

# no progress bar when stderr is not a terminal
it "cp is quiet when stderr is not a terminal" sh -c "'$CLOUDMOUNT' cp '$WORK/big.bin' 's3://$bucket/q.bin' --endpoint '$S3_ENDPOINT' --path-style 2>'$WORK/err' && ! test -s '$WORK/err'"

# a presigned URL works with plain curl
it "presign prints a URL" cm presign "s3://$bucket/from-aws.bin" --expires 300
url=$(cat "$WORK/last.out")
it "curl fetches the presigned URL" sh -c "curl -sf -o '$WORK/presigned.bin' '$url' && cmp '$WORK/presigned.bin' '$WORK/big.bin'"

# credentials: the sources awscli knows
(
	unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	export HOME=$WORK/home
	mkdir -p "$HOME"
	expect_exit 3 "no credentials anywhere exits 3" "$CLOUDMOUNT" presign "s3://$bucket/x"
	out_has "the message names the sources tried" 'environment'
	keep
	cat >"$AWS_SHARED_CREDENTIALS_FILE" <<CREDS
[testprof]
aws_access_key_id = $S3_ACCESS_KEY
aws_secret_access_key = $S3_SECRET_KEY
CREDS
	chmod 600 "$AWS_SHARED_CREDENTIALS_FILE"
	it "a --profile from the shared credentials file works" cm du --profile testprof "s3://$bucket"
	cat >"$WORK/credproc.sh" <<PROC
#!/bin/sh
echo run >>"$WORK/credproc.calls"
printf '{"Version": 1, "AccessKeyId": "%s", "SecretAccessKey": "%s"}\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
PROC
	chmod 700 "$WORK/credproc.sh"
	cat >"$AWS_CONFIG_FILE" <<CONF
[profile viaproc]
region = $AWS_REGION
credential_process = "$WORK/credproc.sh"
s3 =
    addressing_style = path
CONF
	it "credential_process supplies the keys" "$CLOUDMOUNT" du --profile viaproc --endpoint "$S3_ENDPOINT" "s3://$bucket"
	keep
	it "the credential process ran" test -s "$WORK/credproc.calls"
	expect_exit 3 "an unknown profile exits 3" cm du --profile nosuchprofile "s3://$bucket"
	out_has "unknown profile is named" 'nosuchprofile'
	printf '[broken\naws_access_key_id = x\n' >"$AWS_SHARED_CREDENTIALS_FILE"
	expect_exit 3 "a broken credentials file exits 3" cm du --profile testprof "s3://$bucket"
	out_has "the broken file is reported with its line" 'aws-credentials:1'
	rm -f "$AWS_SHARED_CREDENTIALS_FILE" "$AWS_CONFIG_FILE"
	finish >/dev/null
	echo "$PASSED $FAILED" >"$WORK/sub.counts"
)
read -r sp sf <"$WORK/sub.counts"
PASSED=$((PASSED + sp))
FAILED=$((FAILED + sf))

# refusals and unreachable endpoints
if [ "$S3_SERVER" = radosgw ]; then
	expect_exit 4 "a wrong secret exits 4" env AWS_SECRET_ACCESS_KEY=wrong-secret-value "$CLOUDMOUNT" ls "s3://$bucket/" --endpoint "$S3_ENDPOINT" --path-style
	out_has "wrong secret says SignatureDoesNotMatch" 'SignatureDoesNotMatch'
	out_has "wrong secret hints at the secret key" 'secret access key'
	keep
	expect_exit 4 "an unknown access key exits 4" env AWS_ACCESS_KEY_ID=NOSUCHKEY "$CLOUDMOUNT" ls "s3://$bucket/" --endpoint "$S3_ENDPOINT" --path-style
	out_has "unknown key says InvalidAccessKeyId" 'InvalidAccessKeyId'
	# a clock two hours off (libfaketime) is refused by the server as such
	expect_exit 4 "a skewed clock exits 4" faketime -f '+2h' "$CLOUDMOUNT" ls "s3://$bucket/" --endpoint "$S3_ENDPOINT" --path-style
	out_has "skew is named" 'RequestTimeTooSkewed'
	out_has "skew hint says to fix the clock" 'clock'
	# HTTPS with the CA the server script made
	expect_exit 6 "HTTPS without the CA is refused (exit 6)" "$CLOUDMOUNT" du "s3://$bucket" --endpoint "$S3_TLS_ENDPOINT" --path-style
	out_has "TLS failure says so" 'TLS|certificate'
	it "HTTPS with --ca-bundle works" "$CLOUDMOUNT" du "s3://$bucket" --endpoint "$S3_TLS_ENDPOINT" --path-style --ca-bundle "$S3_CA_BUNDLE"
	it "HTTPS with AWS_CA_BUNDLE works" env AWS_CA_BUNDLE="$S3_CA_BUNDLE" "$CLOUDMOUNT" du "s3://$bucket" --endpoint "$S3_TLS_ENDPOINT" --path-style
	it "--insecure works and warns" "$CLOUDMOUNT" du "s3://$bucket" --endpoint "$S3_TLS_ENDPOINT" --path-style --insecure
	out_has "--insecure warns loudly" 'verification is OFF'
	it "a 64 MiB upload over HTTPS (unsigned payload) arrives intact" \
		sh -c "'$CLOUDMOUNT' cp '$WORK/big.bin' 's3://$bucket/tls.bin' --endpoint '$S3_TLS_ENDPOINT' --path-style --ca-bundle '$S3_CA_BUNDLE' && '$AWS' --endpoint-url '$S3_ENDPOINT' s3 cp 's3://$bucket/tls.bin' '$WORK/tls.back' >/dev/null && cmp '$WORK/big.bin' '$WORK/tls.back'"
else
	skip "wrong secret refused" "s3rver does not check signatures"
fi
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start=$(date +%s)
expect_exit 6 "an endpoint nobody listens on exits 6" "$CLOUDMOUNT" ls "s3://$bucket/" --endpoint "http://127.0.0.1:$port" --path-style --retries 2
out_has "unreachable says so" 'unreachable'
it "and gives up within 15 s" test $(($(date +%s) - start)) -lt 15

# no secret in anything we printed
it "no output contained the secret key" sh -c "! grep -qF -- '$S3_SECRET_KEY' '$ALL_OUT'"
finish
