#!/bin/bash
# powerlog_check.sh -- the host's half of test_powerlog.sh: a power loss at
# every flush of the recorded job, checked.  Run in a mount namespace of
# its own (unshare -m --propagation private), as root:
#   powerlog_check.sh LOG WORKDIR
# The log (dm-log-writes, from mkfs on) is replayed onto zeros, with
# replay_log, to mark "ready" (the old root in place), then to each flush
# or FUA entry up to mark "done" (run, rollback, run again, confirm: all
# finished) and to "done" itself; at mark "rolled-back" the root must be
# the old one.  At each point a copy of the disk is mounted (ext4 replays
# its own journal, as at a boot after the power loss) at the guest's path,
# /mnt/pl, so the paths reimage recorded hold; `reimage recover` finishes
# or undoes what the job left, and the root must then be, file by file
# (tests/manifest.py, times left out), the root at "ready" or the one at
# "done".  Prints "powerlog: N flush points checked: O old, W new; T of
# them neither before recover".
set -euo pipefail
log=$1 work=$2
bin=${REIMAGE_TEST_BIN_DIR:?}
src=${REIMAGE_TEST_SRC_DIR:?}
replay=$bin/tests/engine/replay_log
export REIMAGE_PLUGIN_PATH=${REIMAGE_PLUGIN_PATH:-$bin/plugins}
# The guest's data device (powerlog_guest.sh).
size=256M

mount -t tmpfs powerlog /mnt
mkdir /mnt/pl
"$replay" list "$log" >"$work/points"
ready=$(awk '$2 == "mark" && $3 == "ready" { print $1 }' "$work/points")
done_at=$(awk '$2 == "mark" && $3 == "done" { print $1 }' "$work/points")
if [ -z "$ready" ] || [ -z "$done_at" ]; then
	echo "powerlog: mark ready or done missing" >&2
	exit 1
fi

img=$work/replay.img
rm -f "$img"
truncate -s "$size" "$img"
at=0
# state N: replay to entry count N, then the root's manifest after recover
# into $work/m-N (recover's output in $work/recover-N.log).
state() {
	"$replay" replay "$log" "$img" "$at" "$1"
	at=$1
	cp --sparse=always "$img" "$work/point.img"
	mount -o loop "$work/point.img" /mnt/pl
	# What the power loss left, before recover: how many points needed it.
	python3 "$src/tests/manifest.py" /mnt/pl/root --no-mtime >"$work/pre-$1"
	if ! "$bin/reimage" recover --backend sandbox --root /mnt/pl/root \
		>"$work/recover-$1.log" 2>&1; then
		echo "powerlog: recover failed after entry $1:" >&2
		cat "$work/recover-$1.log" >&2
		umount /mnt/pl
		return 1
	fi
	python3 "$src/tests/manifest.py" /mnt/pl/root --no-mtime >"$work/m-$1"
	umount /mnt/pl
}
state "$ready"
cp "$work/m-$ready" "$work/old"
rolled=$(awk '$2 == "mark" && $3 == "rolled-back" { print $1 }' "$work/points")
[ -n "$rolled" ] || { echo "powerlog: mark rolled-back missing" >&2; exit 1; }
points=$(awk -v a="$ready" -v b="$done_at" -v r="$rolled" \
	'$1 > a && $1 < b && ($2 ~ /flush|fua/ || $1 == r) { print $1 }' "$work/points")
# The end first: the new root every point is also compared with.  The
# replay then starts over from "ready".
state "$done_at"
cp "$work/m-$done_at" "$work/new"
# "done" is the new image with the preserves (alice, the network,
# srv/data and its xattr), "ready" the old root.
for want in 'NEW-IMAGE ' 'home/alice/notes.txt ' 'etc/network/interfaces ' 'srv/data/d.bin .*user.kept'; do
	grep -q "^$want" "$work/new" || { echo "powerlog: no $want at the end" >&2; exit 1; }
done
grep -q '^NEW-IMAGE ' "$work/old" && { echo "powerlog: new image at ready" >&2; exit 1; }
truncate -s 0 "$img"
truncate -s "$size" "$img"
at=0
"$replay" replay "$log" "$img" 0 "$ready"
at=$ready
old=0 new=0 n=0 torn=0
for p in $points; do
	state "$p"
	n=$((n + 1))
	if ! cmp -s "$work/pre-$p" "$work/old" && ! cmp -s "$work/pre-$p" "$work/new"; then
		torn=$((torn + 1))
	fi
	if [ "$p" = "$rolled" ] && ! cmp -s "$work/m-$p" "$work/old"; then
		echo "powerlog: the rollback did not bring the old root back" >&2
		diff "$work/old" "$work/m-$p" | head -n 20 >&2 || true
		exit 1
	elif cmp -s "$work/m-$p" "$work/old"; then
		old=$((old + 1))
	elif cmp -s "$work/m-$p" "$work/new"; then
		new=$((new + 1))
	else
		echo "powerlog: after entry $p the root is neither old nor new:" >&2
		diff "$work/old" "$work/m-$p" | head -n 20 >&2 || true
		echo "powerlog: (against new)" >&2
		diff "$work/new" "$work/m-$p" | head -n 20 >&2 || true
		exit 1
	fi
	rm -f "$work/m-$p" "$work/pre-$p"
done
echo "powerlog: $n flush points checked: $old old, $new new; $torn of them neither before recover"
