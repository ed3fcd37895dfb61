#!/bin/bash
# The engine's benchmarks (outage, staging speed, memory, fleet); see
# tests/bench/bench.py for what is measured against what, and
# tests/bench/vm_outage.sh for vm-outage (the user's outage in a VM against
# a plain reboot; only when --only names it).
#   tests/bench/run.sh [--quick] [--build DIR] [--rounds N] [--agents N]
#                         [--only outage,staging,syscalls,fleet,vm-outage]
#                         [--json FILE] [--entries N]
# Without --build it configures and builds build-bench/ (RelWithDebInfo).
# Needs root: each measurement gets a fresh ext4 on a loop file, which this
# script unmounts and detaches by path when it ends, however it ends.
# Bash's (arrays, pipefail): `sh run.sh` under dash runs it with bash.
if [ -z "${BASH_VERSION:-}" ]; then
	exec bash "$0" "$@"
fi
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=""
args=()
only="" rounds=""
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--quick) args+=("$1"); shift ;;
	--only) only=$2; shift 2 ;;
	--rounds) rounds=$2; args+=("$1" "$2"); shift 2 ;;
	--agents|--json|--entries) args+=("$1" "$2"); shift 2 ;;
	-h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: needs root (a loop-mounted ext4 for each measurement)" >&2
	exit 77
fi
if [ -z "$build" ]; then
	sh "$top/tests/deps.sh"
	build=$top/build-bench
	cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
# vm-outage runs by itself (a VM, its own images); bench.py the rest.
vm=0
if [ -n "$only" ]; then
	rest=$(printf '%s\n' "${only//,/$'\n'}" | grep -vx 'vm-outage' | paste -sd, - || :)
	[ "$rest" = "$only" ] || vm=1
	if [ "$vm" = 1 ]; then
		bash "$top/tests/bench/vm_outage.sh" --build "$build" ${rounds:+--rounds "$rounds"}
		[ -n "$rest" ] || exit 0
	fi
	args+=(--only "$rest")
fi
for tool in nginx curl bsdtar zstd openssl mkfs.ext4 strace /usr/bin/time; do
	command -v "$tool" >/dev/null || {
		echo "run.sh: $tool is missing (sh tests/deps.sh installs it)" >&2; exit 77; }
done

work=$(mktemp -d /tmp/reimage-bench.XXXXXX)
cleanup() {
	# bench.py unmounts as it goes; this is for when it could not.
	if mountpoint -q "$work/mnt"; then umount "$work/mnt" || umount -l "$work/mnt"; fi
	losetup -j "$work/volume.img" -O NAME -n 2>/dev/null | while read -r dev; do
		losetup -d "$dev"
	done
	rm -rf "$work"
}
trap cleanup EXIT
# In the background so that a signal reaches bench.py at once: it stops
# its servers and agents and unmounts, then the trap above checks.
python3 "$top/tests/bench/bench.py" --build "$build" --work "$work" "${args[@]}" &
bench=$!
trap 'kill -TERM $bench 2>/dev/null; wait $bench || :; exit 143' INT TERM
wait $bench
