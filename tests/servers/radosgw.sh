#!/usr/bin/env bash
# Start/stop a throwaway one-machine Ceph (1 ceph-mon, 1 ceph-osd, radosgw) on 127.0.0.1:
# a real S3 server for CloudMount's integration tests (Debian 12's Ceph 16.2).
#
#   tests/servers/radosgw.sh start DIR   # a fresh cluster in DIR; writes DIR/server.env (0600)
#   set -a; . DIR/server.env; set +a     # S3_ENDPOINT S3_TLS_ENDPOINT S3_CA_BUNDLE S3_ACCESS_KEY
#                                        # S3_SECRET_KEY S3_REGION S3_SERVER=radosgw
#                                        # S3_MON_PID S3_OSD_PID S3_RGW_PID S3_PID(=radosgw)
#   tests/servers/radosgw.sh stop DIR    # kills every daemon it started, by pid, and waits
#
# Everything lives in DIR: ceph.conf, keyrings, mon/osd/rgw data, logs (DIR/log), run dir
# and admin sockets (DIR/run), the TLS certificate (DIR/cert.pem, DIR/key.pem). Nothing in
# /etc/ceph or /var/lib/ceph is read or written: every tool gets -c DIR/ceph.conf. DIR must
# be a path without spaces, short enough for unix sockets (mktemp -d is fine).
# Each start makes a new cluster (old mon/osd data in DIR is removed first); the secret
# key is random per start and is written only to DIR/server.env, never to stdout.
#
# Start-up here (2 cores): ~1.6 s with memstore, ~7.5 s with bluestore; stop ~0.5 s.
# Object store: memstore by default (starts fastest; all data in RAM, ~1.8x the bytes
# stored, never given back, capped by CM_RGW_MEMSTORE_BYTES, default 4 GiB: when it
# fills, the OSD goes "full" and writes hang, so keep memstore suites small).
# CM_RGW_STORE=bluestore uses bluestore on a sparse file DIR/osd/ceph-0/block
# (CM_RGW_BLUESTORE_BYTES, default 20 GiB) for suites that store more.
# CM_RGW_START_TIMEOUT (default 60 s) bounds the wait for radosgw to answer.
# The recipe (auth none + ms_mon_client_mode=crc, msgr2 on 127.0.0.1 only, pool size 1,
# paxos_propose_interval 0.1, tcp_nodelay=1) is explained in shared/TESTING.md.
set -euo pipefail

PY=/usr/bin/python3
NAME=rgw.a                      # radosgw's client name: client.rgw.a
ACCESS_KEY=CMTESTKEY
REGION=us-east-1                # rgw does not check the SigV4 region; create-bucket
                                # sends no LocationConstraint for us-east-1
START_TIMEOUT=${CM_RGW_START_TIMEOUT:-60}
STORE=${CM_RGW_STORE:-memstore}
unset CEPH_ARGS CEPH_CONF

die() { echo "radosgw.sh: $*" >&2; exit 1; }
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }

# Field 22 of /proc/PID/stat (start time in ticks): guards against pid reuse.
# shellcheck disable=SC2086  # word splitting of the stat line is wanted
starttime() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "${20}"; }
# Alive and not a zombie (an orphan may be reaped late by init).
alive() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; [ "${s%% *}" != Z ]; }
ours() { alive "$1" && [ "$(starttime "$1")" = "$2" ]; }

# spawn NAME CMD...: start a daemon in the foreground of its own session, record
# "NAME PID STARTTIME" in DIR/pids, and set SPAWNED_PID.
spawn() {
    local name=$1 pidtmp="$D/run/$1.spawn" i; shift
    rm -f "$pidtmp"
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidtmp" "$@" </dev/null >>"$D/log/$name.out" 2>&1 &
    for ((i = 0; i < 100; i++)); do [ -s "$pidtmp" ] && break; sleep 0.01; done
    [ -s "$pidtmp" ] || fail "could not start $name"
    SPAWNED_PID=$(cat "$pidtmp"); rm -f "$pidtmp"
    echo "$name $SPAWNED_PID $(starttime "$SPAWNED_PID" || echo gone)" >>"$D/pids"
}

# Stop every pid in DIR/pids (radosgw first, then osd, then mon), SIGTERM then SIGKILL.
stop_all() {
    local name pid st i left
    [ -f "$D/pids" ] || return 0
    local -a order=()
    while read -r name pid st; do order=("$name:$pid:$st" "${order[@]}"); done <"$D/pids"
    for e in "${order[@]}"; do
        IFS=: read -r name pid st <<<"$e"
        ours "$pid" "$st" || continue
        # memstore dumps all its data to disk on a clean stop: the cluster is thrown
        # away anyway, so the OSD is killed outright.
        if [ "$name" = osd ] && [ "$STORE_RUNNING" = memstore ]; then
            kill -KILL "$pid" 2>/dev/null || true
        else
            kill -TERM "$pid" 2>/dev/null || true
        fi
        for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.05; done
        if alive "$pid"; then
            echo "radosgw.sh: $name (pid $pid) still up 5 s after SIGTERM, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.05; done
        fi
    done
    left=0
    while read -r name pid st; do
        if ours "$pid" "$st"; then echo "radosgw.sh: $name (pid $pid) did not exit" >&2; left=1; fi
    done <"$D/pids"
    [ $left = 0 ] || return 1
    rm -f "$D/pids"
}

show_logs() {
    local f
    for f in "$D"/log/*.out "$D"/log/ceph-mon.a.log "$D"/log/ceph-osd.0.log "$D/log/ceph-client.$NAME.log" "$D/log/ceph-client.admin.log"; do
        [ -s "$f" ] || continue
        echo "----- tail of $f" >&2
        tail -n 25 "$f" >&2
    done
}

STORE_RUNNING=$STORE
fail() {
    echo "radosgw.sh: start failed: $*" >&2
    show_logs
    stop_all || true
    rm -f "$D/server.env"
    exit 1
}

ceph_() { timeout 40 ceph -c "$D/ceph.conf" --connect-timeout 30 "$@"; }

pick_ports() {
    # 20 consecutive free ports below the ephemeral range: mon, http, https, then 17 for
    # ms_bind_port_min..max (the OSD's public/cluster/heartbeat messengers).
    "$PY" - <<'EOF'
import random, socket, sys
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    base = random.randrange(20000, 32000 - 20)
    if all(free(p) for p in range(base, base + 20)):
        print(base); sys.exit(0)
sys.exit("no 20 consecutive free ports found")
EOF
}

write_conf() {
    local fsid=$1 base=$2
    MON_PORT=$base; HTTP_PORT=$((base + 1)); HTTPS_PORT=$((base + 2))
    cat >"$D/ceph.conf" <<EOF
# Generated by tests/servers/radosgw.sh: a throwaway test cluster, everything under $D.
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$MON_PORT]
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_msgr2 = true
ms_bind_ipv6 = false
ms_bind_port_min = $((base + 3))
ms_bind_port_max = $((base + 19))
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_mon_client_mode = crc
client_mount_timeout = 30
keyring = $D/keyring
run_dir = $D/run
admin_socket = \$run_dir/\$name.\$pid.asok
pid_file = \$run_dir/\$name.pid
crash_dir = $D/crash
log_file = $D/log/\$cluster-\$name.log
log_to_stderr = false
err_to_stderr = true
mon_cluster_log_file = $D/log/\$cluster.log
log_to_syslog = false
mon_cluster_log_to_syslog = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
paxos_propose_interval = 0.1

[mon]
mon_data = $D/mon/\$cluster-\$id
admin_socket = \$run_dir/\$name.asok
mon_data_avail_warn = 2
mon_data_avail_crit = 1

[osd]
osd_data = $D/osd/\$cluster-\$id
admin_socket = \$run_dir/\$name.asok
osd_objectstore = $STORE
memstore_device_bytes = ${CM_RGW_MEMSTORE_BYTES:-4294967296}
bluestore_block_create = true
bluestore_block_size = ${CM_RGW_BLUESTORE_BYTES:-21474836480}
bluestore_fsck_on_mkfs = false
osd_memory_target = 1073741824

[client.$NAME]
rgw_data = $D/rgw
admin_socket = \$run_dir/\$name.asok
rgw_frontends = beast endpoint=127.0.0.1:$HTTP_PORT ssl_endpoint=127.0.0.1:$HTTPS_PORT ssl_certificate=$D/cert.pem ssl_private_key=$D/key.pem tcp_nodelay=1
rgw_dns_name = s3.localhost
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 30
rgw_enable_usage_log = false
EOF
}

http_up() { # URL [curl args]: true once anything answers over HTTP
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true)
    [ -n "$code" ] && [ "$code" != 000 ]
}

cmd_start() {
    local t0 t fsid osd_uuid base osd_id secret i pid st
    t0=$(now)
    case $1 in *[[:space:]]*) die "DIR must not contain spaces: '$1'" ;; esac
    mkdir -p "$1"
    D=$(cd "$1" && pwd)
    case $STORE in memstore | bluestore) ;; *) die "CM_RGW_STORE must be memstore or bluestore" ;; esac
    for i in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool openssl curl; do
        command -v "$i" >/dev/null || die "$i not found (run scripts/bootstrap)"
    done
    if [ -f "$D/pids" ]; then
        while read -r _ pid st; do
            ours "$pid" "$st" && die "already running in $D (pid $pid); stop it first"
        done <"$D/pids"
        rm -f "$D/pids"
    fi
    rm -rf "$D/mon" "$D/osd" "$D/rgw" "$D/run" "$D/crash" "$D/log" \
        "$D/ceph.conf" "$D/keyring" "$D/mon.keyring" "$D/monmap" "$D/server.env" "$D/store"
    mkdir -p "$D/mon/ceph-a" "$D/osd/ceph-0" "$D/rgw" "$D/run" "$D/crash" "$D/log"
    echo "$STORE" >"$D/store"
    trap 'fail "interrupted"' INT TERM

    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    base=$(pick_ports) || die "could not pick ports"
    write_conf "$fsid" "$base"

    # Self-signed certificate for 127.0.0.1 (made once per DIR, reused across starts).
    if [ ! -s "$D/cert.pem" ] || [ ! -s "$D/key.pem" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -keyout "$D/key.pem" -out "$D/cert.pem" -subj "/CN=127.0.0.1" \
            -addext "subjectAltName=IP:127.0.0.1" >"$D/log/openssl.log" 2>&1 ||
            fail "openssl could not make the certificate"
        chmod 600 "$D/key.pem"
    fi

    # Monitor.
    ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *' \
        >>"$D/log/setup.out" 2>&1 || fail "ceph-authtool"
    cp "$D/mon.keyring" "$D/keyring"
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" \
        >>"$D/log/setup.out" 2>&1 || fail "monmaptool"
    ceph-mon -c "$D/ceph.conf" --mkfs -i a --monmap "$D/monmap" --keyring "$D/mon.keyring" \
        >>"$D/log/setup.out" 2>&1 || fail "ceph-mon --mkfs"
    spawn mon ceph-mon -c "$D/ceph.conf" -i a -f
    MON_PID=$SPAWNED_PID

    # OSD: allocate its id at the monitor, make its store, start it.
    osd_id=$(ceph_ osd new "$osd_uuid" 2>>"$D/log/setup.out") || fail "ceph osd new"
    [ "$osd_id" = 0 ] || fail "ceph osd new gave id '$osd_id', expected 0"
    ceph-osd -c "$D/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" \
        >>"$D/log/setup.out" 2>&1 || fail "ceph-osd --mkfs"
    spawn osd ceph-osd -c "$D/ceph.conf" -i 0 -f
    OSD_PID=$SPAWNED_PID

    # radosgw can start at once: its first requests wait until the OSD is up and its
    # pools' placement groups are active.
    spawn rgw radosgw -c "$D/ceph.conf" -n "client.$NAME" -f
    RGW_PID=$SPAWNED_PID

    t=$(now)
    for ((i = 0; ; i++)); do
        alive "$MON_PID" || fail "ceph-mon exited"
        alive "$OSD_PID" || fail "ceph-osd exited"
        alive "$RGW_PID" || fail "radosgw exited"
        http_up "http://127.0.0.1:$HTTP_PORT/" && http_up "https://127.0.0.1:$HTTPS_PORT/" --cacert "$D/cert.pem" && break
        if awk -v a="$t" -v b="$EPOCHREALTIME" -v l="$START_TIMEOUT" 'BEGIN{exit !(b-a > l)}'; then
            fail "radosgw did not answer on 127.0.0.1:$HTTP_PORT and :$HTTPS_PORT within $START_TIMEOUT s"
        fi
        sleep 0.1
    done

    # The S3 user. Its JSON output carries the secret: it goes nowhere.
    secret=$(openssl rand -hex 20)
    radosgw-admin -c "$D/ceph.conf" -n client.admin user create --uid cmtest \
        --display-name "CloudMount tests" --access-key "$ACCESS_KEY" --secret-key "$secret" \
        >/dev/null 2>>"$D/log/setup.out" || fail "radosgw-admin user create"

    (
        umask 077
        cat >"$D/server.env.tmp" <<EOF
S3_ENDPOINT=http://127.0.0.1:$HTTP_PORT
S3_TLS_ENDPOINT=https://127.0.0.1:$HTTPS_PORT
S3_CA_BUNDLE=$D/cert.pem
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$secret
S3_REGION=$REGION
S3_SERVER=radosgw
S3_PID=$RGW_PID
S3_RGW_PID=$RGW_PID
S3_OSD_PID=$OSD_PID
S3_MON_PID=$MON_PID
S3_CEPH_CONF=$D/ceph.conf
EOF
    )
    mv "$D/server.env.tmp" "$D/server.env"
    trap - INT TERM
    echo "radosgw.sh: radosgw ($STORE) up at http://127.0.0.1:$HTTP_PORT and https://127.0.0.1:$HTTPS_PORT in $(since "$t0") s; env: $D/server.env"
}

cmd_stop() {
    [ -d "$1" ] || die "no directory $1"
    D=$(cd "$1" && pwd)
    STORE_RUNNING=$(cat "$D/store" 2>/dev/null || echo "$STORE")
    if [ ! -f "$D/pids" ]; then echo "radosgw.sh: not running in $D"; return 0; fi
    local t0; t0=$(now)
    stop_all || die "some daemons did not stop"
    rm -f "$D/server.env"
    echo "radosgw.sh: stopped in $(since "$t0") s (dir $D)"
}

[ $# -eq 2 ] || usage
case $1 in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
esac
