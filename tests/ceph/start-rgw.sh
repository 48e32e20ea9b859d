#!/usr/bin/env bash
# A throwaway single-node Ceph for the tests: one ceph-mon, one ceph-osd on memstore (in
# memory), one radosgw (beast) on 127.0.0.1, authentication off, and an S3 user with the given
# keys. Started by tests/src/ceph.rs, which also stops it; everything lives in DIR.
#
# Usage: start-rgw.sh DIR RGW_PORT MON_PORT ACCESS_KEY SECRET_KEY
# Needs Debian's ceph-mon, ceph-osd, radosgw and ceph-common (Ceph 16.2 on bookworm).
#
# Two settings make it work and start in about a second:
# - `ms mon client mode = crc secure`: with authentication none, a daemon limited to the
#   default secure mode never logs in (radosgw loops on "get_initial_auth_request returned -13");
# - `paxos propose interval` and `paxos min wait` of 10 ms: radosgw creates its pools one by
#   one at start, each waiting for the monitor's next proposal (about 1 s each by default).
#
# Known radosgw 16.2.15 bug: a multi-object delete (POST /bucket?delete) on a bucket with a
# notification aborts radosgw under beast (RGWDeleteMultiObj -> rgw::notify::publish_commit).
# The feed never sends one; tests must not either.
set -euo pipefail

DIR=$1
RGW_PORT=$2
MON_PORT=$3
MON_PORT1=$((MON_PORT + 1))
ACCESS=$4
SECRET=$5
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
FSID=$(cat /proc/sys/kernel/random/uuid)

mkdir -p "$DIR"/{mon.a,osd.0,rgw,run,log}
CONF="$DIR/ceph.conf"
export CEPH_CONF="$CONF"

cat > "$CONF" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT1]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
ms bind ipv6 = false
ms mon client mode = crc secure
ms client mode = crc secure

[mon]
# commit map changes quickly (each RGW pool create otherwise waits ~1 s)
paxos propose interval = 0.01
paxos min wait = 0.01
mon data = $DIR/mon.\$id
mon cluster log file = $DIR/log/cluster.log

[osd]
osd data = $DIR/osd.\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object name len = 460
osd max object namespace len = 64

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $DIR/rgw
keyring = $DIR/keyring
rgw dns name = localhost
rgw thread pool size = 64
log file = $DIR/log/rgw.log
EOF

# --- mon -------------------------------------------------------------------
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$DIR/keyring" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
monmaptool --create --clobber --fsid "$FSID" \
  --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT1]" "$DIR/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
ceph-mon -i a

# --- osd (memstore) --------------------------------------------------------
OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(ceph --connect-timeout 30 osd new "$OSD_UUID")
ceph-osd -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" 2>>"$DIR/log/osd-mkfs.log"
ceph-osd -i "$OSD_ID"

# wait until the osd is up
for i in $(seq 1 120); do
  if ceph osd stat -f json 2>/dev/null | grep -q '"num_up_osds":1'; then break; fi
  sleep 0.25
done

# --- rgw -------------------------------------------------------------------
radosgw -n client.rgw.a
for i in $(seq 1 240); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$RGW_PORT") 2>/dev/null; then break; fi
  sleep 0.25
done

radosgw-admin user create --uid=tester --display-name="Tester" \
  --access-key="$ACCESS" --secret="$SECRET" >"$DIR/user.json"
echo "ready"
