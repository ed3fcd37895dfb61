#!/bin/bash
# vm_outage.sh -- the user's outage of a re-image, against a plain reboot of
# the same VM in the same run (issue 26):
#   (a) reboot    `systemctl reboot` in image A, from the command to the
#                 next login prompt on the serial console
#   (b) reimage   a job re-imaging A with B (reboot through the firmware),
#                 from the engine's "logging users out" to B's login prompt
#   (c) kexec     the same job with boot.kexec (B's /boot/vmlinuz)
# Each round boots A twice, fresh from disk-a.img: once for (a) then (b),
# once for (a) then (c).  The times are the host's, stamped on reading the
# console (console_stamp.py, 10 ms).  Prints each figure, the medians,
# (b)/(a) and (c)/(a), (b)-(a), the load and the commit; and the part of
# each up to the next kernel's first line ("Linux version"): the rest is
# that kernel's boot.
#   bash tests/bench/vm_outage.sh [--build DIR] [--rounds N]
# or tests/bench/run.sh --only vm-outage.  The images and the VM are the e2e
# tests' (tests/e2e: vm.sh, reimage_images.sh); root, qemu (TCG unless
# KVM works), nginx, mmdebstrap as they need.  Default build: <src>/build.
set -euo pipefail
bench=$(cd "$(dirname "$0")" && pwd)
rounds=3
while [ $# -gt 0 ]; do
	case $1 in
	--build) REIMAGE_TEST_BIN_DIR=$(cd "$2" && pwd); export REIMAGE_TEST_BIN_DIR; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	*) echo "usage: vm_outage.sh [--build DIR] [--rounds N]" >&2; exit 2 ;;
	esac
done
. "$bench/../e2e/vm.sh"
e2e_setup bench_vm_outage
# shellcheck source=../e2e/reimage_images.sh
. "$E2E_HERE/reimage_images.sh"
e2e_in_netns || reimage_images
e2e_netns --build "$E2E_BUILD" --rounds "$rounds"
reimage_store
# A's first boot reboots itself once it is up (e2e-boot runs this).
cat >"$STORE_DIR/e2e/guest.sh" <<'EOF'
if [ "$E2E_IMAGE" = A ] && [ "$E2E_BOOT" = 1 ]; then
	e2e-mark bench reboot
	systemctl --no-block reboot
fi
EOF

stamped=$E2E_WORK/console.stamped
# It dies with this shell, as qemu and nginx do.
setpriv --pdeathsig KILL -- python3 "$bench/console_stamp.py" "$E2E_WORK/console.log" \
	"$stamped" &

# stamp_wait REGEX SECONDS: the first stamped line after $AFTER matching
# REGEX; sets AFTER to its line number and T to its time.
AFTER=0 T=0
stamp_wait() {
	local deadline=$(($(date +%s) + $2)) hit
	while :; do
		hit=$(awk -F '\t' -v from="$AFTER" -v re="$1" \
			'NR > from && $2 ~ re { print NR, $1; exit }' "$stamped" 2>/dev/null || :)
		if [ -n "$hit" ]; then
			AFTER=${hit% *} T=${hit#* }
			return 0
		fi
		vm_running || e2e_fail "waiting for /$1/: qemu is not running"
		[ "$(date +%s)" -lt "$deadline" ] || e2e_fail "/$1/ not seen in $2 s"
		sleep 0.1
	done
}
# seen_since LINE REGEX: REGEX on a stamped line after LINE up to $AFTER.
seen_since() {
	awk -F '\t' -v a="$1" -v b="$AFTER" -v re="$2" \
		'NR > a && NR <= b && $2 ~ re { f = 1 } END { exit !f }' "$stamped"
}

# The prompt may reach the stamper in two reads ("reimage-a", "login: "),
# which it writes as two lines.
login='(^|reimage-a )login: '
declare -a fig_a fig_b fig_c down_a down_b down_c
# sample X T0 TK T1: a figure of X (a, b or c) from T0 to the login prompt
# at T1; TK, the next kernel's first line, splits it into going down (the
# shutdown, or the re-image's swap and reboot) and coming up (the boot).
sample() {
	local -n fig=fig_$1 down=down_$1
	fig+=("$(awk -v a="$2" -v b="$4" 'BEGIN { printf "%.2f", b - a }')")
	down+=("$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", b - a }')")
}
# one_vm MODE: boot A, time its reboot, then a re-image (MODE firmware
# or kexec); samples (a) and (b) or (c).
one_vm() {
	local mode=$1 t0 tk job start boot_extra=""
	cp --sparse=always "$DISK_A" "$E2E_WORK/disk-a.img"
	vm_start "$E2E_WORK/disk-a.img" panic=5
	stamp_wait 'E2E-MARK bench reboot' 600
	t0=$T
	# The next kernel's first line, then its login prompt (not one a
	# restarted getty prints before the reboot).
	stamp_wait 'Linux version' 300
	tk=$T
	stamp_wait "$login" 300
	sample a "$t0" "$tk" "$T"
	stamp_wait 'E2E-MARK boot-done image=A boot=2' 300

	[ "$mode" = kexec ] && boot_extra="boot: { kexec = true; };"
	job=bench-$mode-$(date +%s%N)
	reimage_job "$E2E_WORK/job.conf" "$job" "$boot_extra"
	"$reimagectl" submit -s "$STORE_DIR/store" -k "$cache/admin.key" "$E2E_WORK/job.conf" \
		--agents vm-a >/dev/null || e2e_fail "reimagectl submit failed"
	stamp_wait 'logging users out' 900
	t0=$T start=$AFTER
	stamp_wait 'Linux version' 300
	tk=$T
	stamp_wait "$login" 300
	if [ "$mode" = kexec ]; then
		seen_since "$start" 'reboot will kexec it' || e2e_fail "kexec: the kernel was not loaded"
		! seen_since "$start" 'reboot: Restarting system' || e2e_fail "kexec: went through the firmware"
		sample c "$t0" "$tk" "$T"
	else
		sample b "$t0" "$tk" "$T"
	fi
	# B is up (its marks may come before or after the prompt).
	stamp_wait 'E2E-MARK boot-done image=B' 300
	vm_stop
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
	printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
	for mode in firmware kexec; do
		one_vm "$mode"
		e2e_log "round $r $mode: reboot ${fig_a[-1]} s, re-image $(
			[ "$mode" = kexec ] && echo "${fig_c[-1]}" || echo "${fig_b[-1]}") s"
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
ma=$(median "${fig_a[@]}") mb=$(median "${fig_b[@]}") mc=$(median "${fig_c[@]}")
commit=$(git -C "$E2E_SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat <<EOF
vm-outage: commit $commit, $(cat "$E2E_WORK/accel"), $rounds rounds, load $load0 -> $load1
  (a) plain reboot, command to login prompt      ${fig_a[*]}  median $ma s
      of which down to the next kernel            ${down_a[*]}  median $(median "${down_a[@]}") s
  (b) re-image, logout to B's login prompt        ${fig_b[*]}  median $mb s
      of which down to the next kernel            ${down_b[*]}  median $(median "${down_b[@]}") s
  (c) re-image with kexec, logout to login prompt ${fig_c[*]}  median $mc s
      of which down to the next kernel            ${down_c[*]}  median $(median "${down_c[@]}") s
  (b)/(a) $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.2f", b / a }')  (b)-(a) $(
	awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%+.2f s", b - a }')
  (c)/(a) $(awk -v a="$ma" -v c="$mc" 'BEGIN { printf "%.2f", c / a }')  (c)-(a) $(
	awk -v a="$ma" -v c="$mc" 'BEGIN { printf "%+.2f s", c - a }')
EOF
e2e_pass
