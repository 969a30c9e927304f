#!/usr/bin/env bash
# Create a bucket on the test server described by the S3_* variables, with Debian's awscli.
#
#   set -a; . DIR/server.env; set +a      # exports the S3_* variables
#   tests/servers/mkbucket.sh BUCKET
# or, without sourcing:  S3_ENV_FILE=DIR/server.env tests/servers/mkbucket.sh BUCKET
#
# Uses S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION (default us-east-1) and, for an
# https endpoint, S3_CA_BUNDLE. Set S3_USE_TLS=1 to use S3_TLS_ENDPOINT instead of
# S3_ENDPOINT. Always /usr/bin/aws: a pyenv shim may come first on PATH.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUCKET" >&2; exit 2; }
bucket=$1
if [ -n "${S3_ENV_FILE:-}" ]; then
    # shellcheck disable=SC1090
    . "$S3_ENV_FILE"
fi
: "${S3_ENDPOINT:?set S3_ENDPOINT etc. (source DIR/server.env) or S3_ENV_FILE}"
: "${S3_ACCESS_KEY:?S3_ACCESS_KEY unset}" "${S3_SECRET_KEY:?S3_SECRET_KEY unset}"
endpoint=$S3_ENDPOINT
if [ "${S3_USE_TLS:-0}" = 1 ]; then endpoint=${S3_TLS_ENDPOINT:?S3_TLS_ENDPOINT unset}; fi

args=(--endpoint-url "$endpoint" --region "${S3_REGION:-us-east-1}")
case $endpoint in https:*) [ -n "${S3_CA_BUNDLE:-}" ] && args+=(--ca-bundle "$S3_CA_BUNDLE") ;; esac

# A clean awscli environment: only these credentials, no profile or config file, no
# instance-metadata look-up (that would leave loopback), no pager.
env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN -u AWS_SECURITY_TOKEN \
    -u AWS_CA_BUNDLE -u AWS_ENDPOINT_URL \
    AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true AWS_PAGER= \
    /usr/bin/aws "${args[@]}" s3api create-bucket --bucket "$bucket" --output text >/dev/null
echo "mkbucket.sh: created bucket $bucket at $endpoint"
