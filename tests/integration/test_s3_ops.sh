#!/usr/bin/env bash
# test_s3_ops.sh - every S3 operation of the client (s3_ops_test, in C) against
# the server, then a second look through awscli at what it left behind.
. "$(dirname "$0")/lib.sh"
DRIVER=${S3_OPS_TEST:-$ROOT/build/tests/s3_ops_test}

bucket=$(new_bucket) || exit 1
"$DRIVER" "$bucket" >"$WORK/driver.out" 2>&1
rc=$?
scrub <"$WORK/driver.out" | sed -e "s/^/# /"
# the driver's own line counts as one result per case
line=$(grep -E '^s3_ops_test: [0-9]+ passed, [0-9]+ failed' "$WORK/driver.out")
p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
PASSED=$((PASSED + ${p:-0}))
FAILED=$((FAILED + ${f:-1}))
[ "$rc" = 0 ] || [ "${f:-1}" != 0 ] || FAILED=$((FAILED + 1))

# awscli sees what the client wrote: metadata, special keys, multipart content
it "awscli reads x-amz-meta-mode written by cloudmount" \
	sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key meta/obj.txt | grep -q '\"mode\": \"33188\"'"
it "awscli lists the special-character keys" \
	sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3api list-objects-v2 --bucket '$bucket' --prefix sp/ --query 'Contents[].Key' --output text | tr '\t' '\n' | grep -Fxq 'sp/plus+sign'"
it "awscli sees 'a b.txt' with its space" \
	sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3api head-object --bucket '$bucket' --key 'sp/a b.txt' >/dev/null"
it "awscli downloads the multipart object intact" \
	sh -c "'$AWS' --endpoint-url '$S3_ENDPOINT' s3api get-object --bucket '$bucket' --key 'mpu/big obj' '$WORK/mpu.bin' >/dev/null && test \$(stat -c %s '$WORK/mpu.bin') = 10498105"
it "the listing left 402 keys after the batch delete" \
	sh -c "test \$('$AWS' --endpoint-url '$S3_ENDPOINT' s3api list-objects-v2 --bucket '$bucket' --prefix many/ --query 'length(Contents)' --output text) = 402"
finish
