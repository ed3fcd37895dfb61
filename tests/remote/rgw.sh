#!/bin/sh
# rgw.sh -- a one-node Ceph cluster with a RADOS Gateway on 127.0.0.1, for
# the S3 store tests: one monitor, one OSD on memstore (RAM, no disk), no
# cephx (the daemons listen on loopback only), and radosgw's beast frontend
# on a free port, with one user whose keys are ACCESS and SECRET.
#
#   rgw.sh run DIR ACCESS SECRET
#
# Every file, socket and log is under DIR.  Once the gateway answers and
# the user exists, the port is written to DIR/port; the script then waits.
# SIGTERM stops the daemons (by their PIDs) and ends it; the daemons also
# die with the script, and the script with its parent if the parent set
# PR_SET_PDEATHSIG.  Each step's wait is bounded; on failure the script
# stops what it started and exits 1, the logs left in DIR.
set -eu
if [ "${1:-}" != run ] || [ $# -ne 4 ]; then
	echo "usage: rgw.sh run DIR ACCESS SECRET" >&2
	exit 2
fi
dir=$2 access=$3 secret=$4
pids=""

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop() {
	for pid in $pids; do
		kill "$pid" 2>/dev/null || :
	done
	for pid in $pids; do
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || :
	done
	pids=""
}
trap 'stop; exit 143' TERM INT

# daemon NAME CMD...: CMD in the foreground of a child that dies with us.
daemon() {
	name=$1
	shift
	setpriv --pdeathsig KILL -- "$@" -f </dev/null >>"$dir/$name.out" 2>&1 &
	pids="$! $pids"
}

# serves PORT PID: PID holds the socket listening on PORT -- not another
# test's server that took the port between free_port and the bind.
serves() {
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -q "pid=$2,"
}

# wait_for SECONDS CMD...: until CMD succeeds, at most SECONDS.
wait_for() {
	n=$(($1 * 5))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		if [ $n -le 0 ]; then
			return 1
		fi
		sleep 0.2
	done
}

fail() {
	echo "rgw.sh: $*; logs in $dir" >&2
	stop
	exit 1
}

mkdir -p "$dir/mon" "$dir/osd" "$dir/run"
mon_port=$(free_port)
fsid=$(cat /proc/sys/kernel/random/uuid)
conf=$dir/ceph.conf
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
# "none" has no secure mode, which radosgw would otherwise insist on.
ms mon client mode = crc
ms client mode = crc
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/\$name.log
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# A test machine may have little free disk: the monitor must not stop.
mon data avail warn = 1
mon data avail crit = 0
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 1073741824
osd data = $dir/osd
mon data = $dir/mon
rgw data = $dir/rgw
rgw enable usage log = false
EOF
export CEPH_CONF="$conf"
monmaptool --create --clobber --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null ||
	fail "monmaptool failed"
ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-mon --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" >>"$dir/mon.out" 2>&1 ||
	fail "ceph-mon --mkfs failed"
daemon mon ceph-mon -i a
mon_pid=$!
wait_for 30 serves "$mon_port" "$mon_pid" || fail "the monitor did not listen on port $mon_port"
wait_for 30 ceph --connect-timeout 5 mon stat || fail "the monitor did not answer"
uuid=$(cat /proc/sys/kernel/random/uuid)
id=$(ceph --connect-timeout 10 osd create "$uuid") || fail "ceph osd create failed"
ceph-osd -i "$id" --mkfs --osd-uuid "$uuid" >>"$dir/osd.out" 2>&1 || fail "ceph-osd --mkfs failed"
daemon osd ceph-osd -i "$id"
wait_for 60 sh -c 'ceph --connect-timeout 5 osd stat | grep -q " 1 up"' || fail "the OSD did not come up"
# The gateway on a free port; on another if that one was taken meanwhile.
attempt=0
while :; do
	rgw_port=$(free_port)
	[ "$rgw_port" != "$mon_port" ] || continue
	daemon rgw radosgw -n client.rgw --rgw-frontends "beast endpoint=127.0.0.1:$rgw_port"
	rgw_pid=$!
	if wait_for 120 serves "$rgw_port" "$rgw_pid" &&
		wait_for 60 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$rgw_port/')"; then
		break
	fi
	kill "$rgw_pid" 2>/dev/null || :
	wait "$rgw_pid" 2>/dev/null || :
	# Reaped: its PID is no longer ours to stop.
	pids=$(echo " $pids " | sed "s/ $rgw_pid / /")
	attempt=$((attempt + 1))
	[ $attempt -lt 3 ] || fail "radosgw did not serve a port (last $rgw_port)"
done
radosgw-admin user create --uid=reimage --display-name=reimage --access-key="$access" \
	--secret-key="$secret" >>"$dir/rgw.out" 2>&1 || fail "radosgw-admin user create failed"
echo "$rgw_port" >"$dir/port.new"
mv "$dir/port.new" "$dir/port"
# Until SIGTERM (the trap).
wait
stop
