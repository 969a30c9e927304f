#!/usr/bin/env bash
# run.sh SERVER [TEST...] - start a loopback S3 server (s3rver or radosgw),
# run the integration tests against it, stop it. Each test prints its own
# "NAME[SERVER]: N passed, N failed" line; this script exits non-zero if any
# test failed or the server could not start.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?usage: run.sh s3rver|radosgw [test.sh...]}
shift
tests=("$@")
if [ ${#tests[@]} = 0 ]; then
	mapfile -t tests < <(cd "$here" && ls test_*.sh)
fi
dir=$(mktemp -d /tmp/cm-srv.XXXXXX)
cleanup() {
	"$root/tests/servers/$server.sh" stop "$dir" >/dev/null 2>&1
	rm -rf "$dir"
}
trap cleanup EXIT
if ! "$root/tests/servers/$server.sh" start "$dir"; then
	echo "run.sh[$server]: 0 passed, 1 failed (server did not start)"
	exit 1
fi
set -a
. "$dir/server.env"
set +a
rc=0
for t in "${tests[@]}"; do
	echo "=== $t on $server"
	bash "$here/$(basename "$t")" || rc=1
done
exit $rc
