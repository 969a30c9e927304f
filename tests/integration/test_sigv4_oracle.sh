#!/usr/bin/env bash
# test_sigv4_oracle.sh - our SigV4 signatures on real S3 requests equal
# botocore's, byte for byte.
#
# The CLI is pointed at tests/tools/sigv4_capture.py, a minimal in-memory S3
# that re-signs every request it receives with botocore (Debian's
# python3-botocore: S3SigV4Auth for headers, S3SigV4QueryAuth for presigned
# URLs) at the request's own X-Amz-Date and compares; it also checks the
# payload hash, that host and every x-amz-* header are signed, the session
# token, and that paths and queries go out in AWS's canonical encoding.
# Covered: keys with awkward characters (cp, ls with prefixes, -r with
# continuation tokens, cat, stat, rm, rm -r / DeleteObjects with Content-MD5),
# multipart up and ranged reads down, --sign-payload no, a session token,
# --region eu-west-1, presigned GET and PUT fetched with curl, and two
# negative controls (a wrong secret, a tampered presigned URL) that the oracle
# must catch. The S3 server run.sh starts is not used.
#
# Keys with "./" or "../" segments are a separate case (dot-segment removal in
# the HTTP layer changes the path after signing). Set SIGV4_ORACLE_KNOWN_BUGS
# to a list containing "dot-segments" to report that case as a SKIP instead.
. "$(dirname "$0")/lib.sh"

CAPTURE=$ROOT/tests/tools/sigv4_capture.py
MIN_CHECKED=${SIGV4_ORACLE_MIN_CHECKED:-40}

# Fake credentials: long-term, with a session token, and a control pair whose
# server-side secret differs from the one the client is given.
AK1=AKIDORACLEEXAMPLE01
SK1='wJalrXUtnFEMI/K7MDENG+bPxRfiCYoracle01'
AK2=ASIAORACLEEXAMPLE02
SK2='je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY'
TOK2='FwoGZXIvYXdzEJr//////////wEaDOracle+Token/Value==with+slashes'
AKC=AKIDORACLECONTROL03
SKC_SERVER='server-side-secret-for-the-control-key'
SKC_CLIENT='a-different-secret-the-client-is-given'
umask 077
printf '%s %s\n%s %s %s\n%s %s\n' "$AK1" "$SK1" "$AK2" "$SK2" "$TOK2" "$AKC" "$SKC_SERVER" >"$WORK/creds"

scrub() {
	local enc_tok
	enc_tok=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$TOK2")
	sed -e "s#${S3_SECRET_KEY//#/\\#}#<secret>#g" -e "s#${SK1}#<secret>#g" -e "s#${SK2}#<secret>#g" \
		-e "s#${SKC_SERVER}#<secret>#g" -e "s#${SKC_CLIENT}#<secret>#g" \
		-e "s#${TOK2//+/\\+}#<token>#g" -e "s#${enc_tok}#<token>#g"
}

"$PY" "$CAPTURE" --creds "$WORK/creds" --port-file "$WORK/port" --report "$WORK/report.json" \
	--log "$WORK/capture.log" --page-size 4 >/dev/null 2>"$WORK/capture.err" &
CAPTURE_PID=$!
trap 'kill "$CAPTURE_PID" 2>/dev/null; wait "$CAPTURE_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
	[ -s "$WORK/port" ] && break
	sleep 0.1
done
if [ ! -s "$WORK/port" ]; then
	echo "not ok - capture server started"
	sed -e 's/^/#   /' "$WORK/capture.err" | scrub
	FAILED=$((FAILED + 1))
	finish
	exit 1
fi
EP=http://127.0.0.1:$(cat "$WORK/port")

use_creds() { # long|token|control
	unset AWS_SESSION_TOKEN
	case $1 in
	long) export AWS_ACCESS_KEY_ID=$AK1 AWS_SECRET_ACCESS_KEY=$SK1 ;;
	token) export AWS_ACCESS_KEY_ID=$AK2 AWS_SECRET_ACCESS_KEY=$SK2 AWS_SESSION_TOKEN=$TOK2 ;;
	control) export AWS_ACCESS_KEY_ID=$AKC AWS_SECRET_ACCESS_KEY=$SKC_CLIENT ;;
	esac
}
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

# cloudmount against the capture server
c() {
	"$CLOUDMOUNT" "$@" --endpoint "$EP" --path-style
}

# out_has_fixed "description" STRING: the last output holds STRING literally.
out_has_fixed() {
	grep -Fq -- "$2" "$WORK/last.out"
	_record $? "$1"
}

# Keys of `cloudmount ls -r` output, one a line, sorted bytewise.
ls_keys() {
	sed -e 's/^[0-9-]* [0-9:]* *[0-9]* //' "$WORK/last.out" | LC_ALL=C sort
}

report() {
	curl -sS -o "$WORK/report.live.json" "$EP/__report"
}

# Python over the report: prints a value; exit status from the expression.
rq() {
	"$PY" - "$WORK/report.live.json" "$@" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
def buckets(entries):
    return [e['request'].split(' ', 1)[1].lstrip('/').split('/', 1)[0].split('?')[0] for e in entries]
def mism(bucket=None, exclude=()):
    return [e for e, b in zip(r['mismatches'], buckets(r['mismatches']))
            if (bucket is None or b == bucket) and b not in exclude]
def probs(bucket=None, exclude=()):
    return [e for e, b in zip(r['problems'], buckets(r['problems']))
            if (bucket is None or b == bucket) and b not in exclude]
v = eval(sys.argv[2])
print(v)
sys.exit(0 if (len(sys.argv) < 4 or eval(sys.argv[3])) else 1)
EOF
}

printf 'small object for the oracle\n' >"$WORK/small"
head -c 12582912 /dev/urandom >"$WORK/big"   # 12 MiB: three 5 MiB parts (5+5+2)

# ---------------------------------------------------------------- long-term creds, signed payloads
use_creds long
B=oracle
KEYS=(
	'sp ace/file one.txt'
	'plus/a+b+c'
	'pct/100%/x%20y%'
	'uni/é/日本語.txt'
	'tilde/~user~'
	'eq/a=b=='
	'slash/a/b/c'
	'slash/a/d'
	'amp/a&b&c=d'
	'q/what?.txt'
	'hash/#1#'
	'semi/a;b'
	'dbl//sl//ash'
	'mix/ +%é日本~=&?#;/x'
	"quote/it's \"q\""
	'paren/(x)[y]{z}!*@$,'
)
for k in "${KEYS[@]}"; do
	it "cp to s3://$B/$k" c cp -q "$WORK/small" "s3://$B/$k"
done
it "ls -r s3://$B (paged: continuation tokens)" c ls -r "s3://$B"
printf '%s\n' "${KEYS[@]}" | LC_ALL=C sort >"$WORK/want.keys"
ls_keys >"$WORK/got.keys"
it "every key is stored and listed exactly as given" diff "$WORK/want.keys" "$WORK/got.keys"

# ls with prefixes holding the same characters (prefix, delimiter, encoding-type=url)
ls_case() { # prefix expected-entry
	it "ls s3://$B/$1" c ls "s3://$B/$1"
	out_has_fixed "ls s3://$B/$1 shows '$2'" "$2"
}
ls_case 'sp ace/' 'file one.txt'
ls_case 'sp ace/file ' 'file one.txt'
ls_case 'plus/a+' 'a+b+c'
ls_case 'pct/100%/' 'x%20y%'
ls_case 'pct/' 'PRE 100%/'
ls_case 'uni/é/' '日本語.txt'
ls_case 'uni/' 'PRE é/'
ls_case 'tilde/~' '~user~'
ls_case 'eq/a=' 'a=b=='
ls_case 'amp/a&' 'a&b&c=d'
ls_case 'q/what?' 'what?.txt'
ls_case 'hash/#' '#1#'
ls_case 'semi/a;' 'a;b'
ls_case 'dbl/' 'PRE /'
ls_case 'dbl//sl/' 'PRE /'
ls_case 'mix/ +%é日本~=&?#;' 'PRE  +%é日本~=&?#;/'
ls_case 'slash/a/' 'PRE b/'
ls_case '' 'PRE sp ace/'
it "ls -r s3://$B/slash/" c ls -r "s3://$B/slash/"
out_has_fixed "ls -r lists slash/a/b/c" 'slash/a/b/c'
it "ls -r s3://$B/mix/ +%é日本~=&?#;" c ls -r "s3://$B/mix/ +%é日本~=&?#;"
out_has_fixed "ls -r lists the mixed key" 'mix/ +%é日本~=&?#;/x'

for k in 'sp ace/file one.txt' 'plus/a+b+c' 'pct/100%/x%20y%' 'uni/é/日本語.txt' 'hash/#1#' 'q/what?.txt' 'dbl//sl//ash' 'mix/ +%é日本~=&?#;/x'; do
	it "cat s3://$B/$k" sh -c '"$1" cat "$2" --endpoint "$3" --path-style | cmp - "$4"' _ "$CLOUDMOUNT" "s3://$B/$k" "$EP" "$WORK/small"
done
it "stat s3://$B/uni/é/日本語.txt" c stat "s3://$B/uni/é/日本語.txt"
out_has_fixed "stat shows the size" 'size: 28'
it "stat s3://$B/amp/a&b&c=d" c stat "s3://$B/amp/a&b&c=d"
it "stat s3://$B (bucket)" c stat "s3://$B"
it "du s3://$B/pct/" c du "s3://$B/pct/"

# multipart up, ranged reads down
BIGKEY='big/日本 +file=1;v&x.bin'
it "multipart cp (12 MiB, --part-size 5M)" c cp -q "$WORK/big" "s3://$B/$BIGKEY" --part-size 5M
it "cp down (ranged GETs)" c cp -q "s3://$B/$BIGKEY" "$WORK/big.down" --part-size 5M
it "downloaded bytes equal the upload" cmp "$WORK/big" "$WORK/big.down"
it "cat of the multipart object" sh -c '"$1" cat "$2" --endpoint "$3" --path-style | cmp - "$4"' _ "$CLOUDMOUNT" "s3://$B/$BIGKEY" "$EP" "$WORK/big"

# presign (GET), fetched by curl; the server checks the query signature with S3SigV4QueryAuth
PKEY='presign/a b+c é=&;.txt'
it "presign s3://$B/$PKEY --expires 600" c presign "s3://$B/$PKEY" --expires 600
it "cp the presign target" c cp -q "$WORK/small" "s3://$B/$PKEY"
it "presign again" c presign "s3://$B/$PKEY" --expires 600
out_has "the URL carries X-Amz-Expires=600" 'X-Amz-Expires=600(&|$)'
URL=$(cat "$WORK/last.out")
it "curl GET of the presigned URL" curl -sS -f -o "$WORK/presigned.get" "$URL"
it "presigned GET returns the object" cmp "$WORK/small" "$WORK/presigned.get"

# rm and rm -r (DeleteObjects, POST ?delete with Content-MD5)
it "rm s3://$B/semi/a;b" c rm "s3://$B/semi/a;b"
it "rm s3://$B/pct/100%/x%20y%" c rm "s3://$B/pct/100%/x%20y%"
it "rm -r s3://$B/slash/" c rm -r "s3://$B/slash/"
it "rm -r s3://$B/mix/" c rm -r "s3://$B/mix/"
it "ls -r after the deletes" c ls -r "s3://$B"
ls_keys >"$WORK/got.keys"
printf '%s\n' "${KEYS[@]}" "$BIGKEY" "$PKEY" | grep -v -e '^semi/' -e '^pct/' -e '^slash/' -e '^mix/' | LC_ALL=C sort >"$WORK/want.keys"
it "exactly the deleted keys are gone" diff "$WORK/want.keys" "$WORK/got.keys"

# ---------------------------------------------------------------- --sign-payload no (UNSIGNED-PAYLOAD)
it "cp small --sign-payload no" c cp -q "$WORK/small" "s3://$B/unsigned/s m+all" --sign-payload no
it "multipart cp --sign-payload no" c cp -q "$WORK/big" "s3://$B/unsigned/big é" --part-size 5M --sign-payload no
it "rm -r --sign-payload no" c rm -r "s3://$B/unsigned/" --sign-payload no
it "ls --sign-payload no" c ls "s3://$B/unsigned/" --sign-payload no

# ---------------------------------------------------------------- session token, eu-west-1
use_creds token
R=(--region eu-west-1)
BT=oracle-token
it "token: cp small" c cp -q "$WORK/small" "s3://$BT/t ok/é+1" "${R[@]}"
it "token: multipart cp" c cp -q "$WORK/big" "s3://$BT/t ok/big=日本" --part-size 5M "${R[@]}"
it "token: multipart cp --sign-payload no" c cp -q "$WORK/big" "s3://$BT/t ok/big2" --part-size 5M --sign-payload no "${R[@]}"
it "token: ls" c ls "s3://$BT/t ok/" "${R[@]}"
out_has_fixed "token: ls shows the key" 'big=日本'
it "token: ls -r" c ls -r "s3://$BT" "${R[@]}"
it "token: cat" sh -c '"$1" cat "$2" --endpoint "$3" --path-style --region eu-west-1 | cmp - "$4"' _ "$CLOUDMOUNT" "s3://$BT/t ok/big=日本" "$EP" "$WORK/big"
it "token: cp down" c cp -q "s3://$BT/t ok/é+1" "$WORK/tok.down" "${R[@]}"
it "token: stat" c stat "s3://$BT/t ok/é+1" "${R[@]}"
it "token: presign GET" c presign "s3://$BT/t ok/é+1" --expires 600 "${R[@]}"
out_has "token: the URL carries the session token" '[?&]X-Amz-Security-Token=[^&]+'
out_has "token: the URL is signed for eu-west-1" '[?&]X-Amz-Credential=[^&]*%2Feu-west-1%2Fs3%2F'
URL=$(cat "$WORK/last.out")
it "token: curl GET of the presigned URL" curl -sS -f -o "$WORK/presigned.tok" "$URL"
it "token: presigned GET returns the object" cmp "$WORK/small" "$WORK/presigned.tok"
it "token: presign PUT" c presign "s3://$BT/t ok/put me+é" --put --expires 600 "${R[@]}"
URL=$(cat "$WORK/last.out")
it "token: curl PUT to the presigned URL" curl -sS -f -T "$WORK/small" -o /dev/null "$URL"
it "token: the presigned PUT stored the object" c stat "s3://$BT/t ok/put me+é" "${R[@]}"
it "token: rm" c rm "s3://$BT/t ok/é+1" "${R[@]}"
it "token: rm -r" c rm -r "s3://$BT/t ok/" "${R[@]}"
unset R

# ---------------------------------------------------------------- negative controls: the oracle must object
use_creds control
BC=oracle-control
expect_exit 4 "control: a wrong secret is refused" c stat "s3://$BC/x"
use_creds long
it "control: presign" c presign "s3://$B/$PKEY" --expires 600
URL=$(sed -e 's/X-Amz-Expires=600/X-Amz-Expires=601/' -e "s#/$B/#/$BC/#" "$WORK/last.out")
expect_exit 22 "control: a tampered presigned URL is refused" curl -sS -f -o /dev/null "$URL"

# ---------------------------------------------------------------- keys with dot segments
BD=oracle-dots
DOTKEYS=('dot/./seg' './lead' 'dot/../up')
dots_known=0
case " ${SIGV4_ORACLE_KNOWN_BUGS:-} " in *" dot-segments "*) dots_known=1 ;; esac
dot_fail=0
for k in "${DOTKEYS[@]}"; do
	"$CLOUDMOUNT" cp -q "$WORK/small" "s3://$BD/$k" --endpoint "$EP" --path-style >"$WORK/last.out" 2>&1 || dot_fail=1
done
report
if [ "$dots_known" = 1 ]; then
	skip "keys with ./ and ../ segments are signed as sent" "SIGV4_ORACLE_KNOWN_BUGS has dot-segments"
else
	check_dots() {
		local n
		n=$(rq 'len(mism("'"$BD"'")) + len(probs("'"$BD"'"))') || return 1
		echo "# cp exit failures: $dot_fail; oracle mismatches and problems on $BD: $n"
		rq '"\n".join("# %s: %s" % (e["request"], "; ".join(e.get("diff", [])[2:]) or e.get("note") or e.get("problem")) for e in mism("'"$BD"'") + probs("'"$BD"'"))'
		[ "$dot_fail" = 0 ] && [ "$n" = 0 ]
	}
	it "keys with ./ and ../ segments are signed as sent" check_dots
	it "ls -r s3://$BD" c ls -r "s3://$BD"
	printf '%s\n' "${DOTKEYS[@]}" | LC_ALL=C sort >"$WORK/want.keys"
	ls_keys >"$WORK/got.keys"
	it "keys with ./ and ../ segments are stored as given" diff "$WORK/want.keys" "$WORK/got.keys"
fi

# ---------------------------------------------------------------- the verdict
it "fetch the oracle's report" report
it "requests whose signature equals botocore's >= $MIN_CHECKED" rq 'r["ok"]' "v >= $MIN_CHECKED"
echo "# $(rq '"checked %d requests, %d equal to botocore (%d presigned, %d with a session token, %d UNSIGNED-PAYLOAD, %d with a signed body; regions %s)" % (r["checked"], r["ok"], r["presigned"], r["with_token"], r["unsigned_payload"], r["signed_payload"], r["regions"])')"
echo "# ops: $(rq 'r["ops"]')"
it "no signature mismatch (outside the controls and dot-segment keys)" \
	rq 'len(mism(exclude=("'"$BC"'", "'"$BD"'")))' 'v == 0'
if ! rq 0 'not mism(exclude=("'"$BC"'", "'"$BD"'"))' >/dev/null; then
	rq '"\n".join("# " + l for e in mism(exclude=("'"$BC"'", "'"$BD"'")) for l in [e["request"]] + e["diff"])' | scrub
fi
it "no encoding, payload-hash, token or unsigned-header problem" \
	rq 'len(probs(exclude=("'"$BC"'", "'"$BD"'")))' 'v == 0'
it "the controls were caught (wrong secret, tampered presigned URL)" \
	rq '[e["op"] for e in mism("'"$BC"'")]' 'len(v) >= 2 and "PresignedGetObject" in v'
it "every operation was exercised" rq 'sorted(r["ops"])' \
	'all(o in v for o in ["PutObject","HeadObject","GetObjectRange","ListObjectsV2","DeleteObject","DeleteObjects","CreateMultipartUpload","UploadPart","CompleteMultipartUpload","HeadBucket","PresignedGetObject","PresignedPutObject"])'
it "session-token requests were verified" rq 'r["with_token"]' 'v >= 10'
it "UNSIGNED-PAYLOAD requests were verified" rq 'r["unsigned_payload"]' 'v >= 6'
it "eu-west-1 requests were verified" rq 'r["regions"].get("eu-west-1", 0)' 'v >= 10'
it "no request came without Authorization" rq 'r["unauthenticated"]' 'v == 0'
if [ "$FAILED" != 0 ] && [ -s "$WORK/capture.log" ]; then
	echo "# capture log (tail):"
	tail -n 40 "$WORK/capture.log" | sed -e 's/^/#   /' | scrub
fi
finish
