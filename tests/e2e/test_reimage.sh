#!/bin/bash
# test_reimage.sh SCENARIO -- CTest e2e_reimage_SCENARIO: a live Debian VM
# (image A) re-imaged in place with image B by its own agent, on a signed
# job that `reimagectl submit` puts in a job store served by nginx, while
# alice keeps writing in her home folder.  Run by ctest (label vm), or by
# hand as root:  REIMAGE_TEST_BIN_DIR=build bash tests/e2e/test_reimage.sh good
#
# Every scenario: the job preserves alice (home and account) and the
# network settings, runs a hook on the staged image (it stamps it and
# reports alice's line count), sets the volume label, and asks that
# systemd-networkd is active and the store reachable in the new image
# before it is committed; the boot guard is armed for 2 boots.
#   good      B boots with alice's home (the last line she wrote before
#             the logout: the host knows it from the second serial port),
#             her account, A's network settings and host name, the hook's
#             stamp and the label; `reimagectl wait` reports success only
#             after the new image's agent committed ("running new image")
#             and the retired image is deleted.
#   powercut  the agent pauses in the middle of the swap (the job's
#             test_swap_pause) and the power is cut: the next boot ends on
#             one complete image, A or B, and the report says which.
#   guard     the hook replaces B's init by a program that exits at once:
#             the kernel panics (panic=5 reboots), the guard counts two
#             attempts, falls back, and A boots by itself; "rolled-back".
#   health    B boots but a health check fails (a unit that does not
#             exist): B's agent swaps back and reboots; "rolled-back".
#   kexec     as good, with boot.kexec: the agent loads B's /boot/vmlinuz
#             and initrd.img (the VM's kernel, images.sh --kernel) and the
#             reboot is a kexec (no "reboot: Restarting system"); the
#             guard and the commit work as after any boot.
# Prints: submit to outcome, the user's outage (logout to the login prompt
# of the new image), and each phase's time.
set -euo pipefail
. "$(dirname "$0")/vm.sh"
scenario=${1:-}
case $scenario in
good | powercut | guard | health | kexec) ;;
*) echo "usage: test_reimage.sh good|powercut|guard|health|kexec" >&2; exit 2 ;;
esac
e2e_setup "e2e_reimage_$scenario"

# shellcheck source=reimage_images.sh
. "$E2E_HERE/reimage_images.sh"
e2e_in_netns || reimage_images
e2e_netns "$@"
reimage_store
cp --sparse=always "$DISK_A" "$E2E_WORK/disk-a.img"

# The job of this scenario.
job=e2e-$scenario-$(date +%s)
hook_args="" units='"systemd-networkd.service"' deadline=240 extra=""
case $scenario in
guard) hook_args='"break-init"' ;;
health) units='"e2e-no-such.service"' deadline=30 ;;
powercut) extra="test_swap_pause = 120;" ;;
kexec) extra="boot: { kexec = true; };" ;;
esac
reimage_job "$E2E_WORK/job.conf" "$job" "
hooks = ( { path = \"/usr/local/libexec/e2e/e2e-hook\"; args = [ $hook_args ]; timeout = 120; } );
label = \"reimaged\";
health: { units = [ $units ]; report = true; deadline = $deadline; };
$extra"

# --- A runs, alice works
vm_start "$E2E_WORK/disk-a.img" panic=5
vm_wait 'E2E-MARK multi-user image=A boot=1' 300 || e2e_fail "A did not reach multi-user"
e2e_took "boot A ($(cat "$E2E_WORK/accel"))" "$VM_BOOT_T0"
vm_wait 'E2E-MARK journal start' 60 || e2e_fail "alice's session did not start"

# --- the administrator submits; `wait` follows from the host
t_submit=$(e2e_now)
"$reimagectl" submit -s "$STORE_DIR/store" -k "$cache/admin.key" "$E2E_WORK/job.conf" \
	--agents vm-a || e2e_fail "reimagectl submit failed"
"$reimagectl" wait -s "$STORE_DIR/store" "$job" --timeout 1500 --interval 2 \
	>"$E2E_WORK/wait.out" 2>&1 &
wait_pid=$!

vm_wait 'E2E-MARK hook job=' 600 || e2e_fail "the agent did not stage B and run the hook"
e2e_took "submit to staged (hook ran)" "$t_submit"
hook_lines=$(sed -n 's/.*journal-lines=\([0-9]*\).*/\1/p' <<<"$VM_MATCH")
vm_wait 'phase QUIESCE' 120 || e2e_fail "the agent did not reach QUIESCE"
t_logout=$(e2e_now)
from=$(vm_log_size)
# QUIESCE syncs the staged image first, then logs users out: the outage
# is somewhere between QUIESCE and SWAP; both are printed.
vm_wait 'phase SWAP' 300 "$from" || e2e_fail "the agent did not reach SWAP"
t_swap=$(e2e_now)

# wait_outcome: `reimagectl wait`'s exit status (it ends by itself; asked
# again, the same answer).
WAIT_RC=""
wait_outcome() {
	if [ -z "$WAIT_RC" ]; then
		WAIT_RC=0
		wait "$wait_pid" || WAIT_RC=$?
		cat "$E2E_WORK/wait.out"
	fi
	return "$WAIT_RC"
}

# check_b: B runs with what the job preserved; B_LAST is the last line
# of alice's journal there.
B_LAST=""
check_b() {
	vm_wait 'E2E-MARK multi-user image=B boot=1 host=reimage-a ' 60 "$from" ||
		e2e_fail "B does not run with A's host name"
	vm_wait 'E2E-MARK user alice uid=1000 home=/home/alice owner=alice mode=' 60 "$from" ||
		e2e_fail "alice's account or home folder did not come to B"
	vm_wait 'E2E-MARK journal lines=' 60 "$from" || e2e_fail "no journal report in B"
	local b_lines b_last
	b_lines=$(sed -n 's/.*journal lines=\([0-9]*\) .*/\1/p' <<<"$VM_MATCH")
	b_last=$(sed -n 's/.*journal lines=[0-9]* last=//p' <<<"$VM_MATCH")
	[ "${b_lines:-0}" -gt "${hook_lines:-0}" ] ||
		e2e_fail "B has $b_lines journal lines, no more than at the hook ($hook_lines)"
	B_LAST=$b_last
	vm_wait 'E2E-MARK net get=ok' 90 "$from" || e2e_fail "B has no network (A's settings)"
	vm_wait 'E2E-MARK disk label=reimaged hook=staged for job '"$job" 60 "$from" ||
		e2e_fail "B lacks the label or the hook's stamp"
}

# expect_rolled_back WHAT: `reimagectl wait` failed, and the agent's
# report on the job says rolled-back, with WHAT (a grep -E pattern).
expect_rolled_back() {
	if wait_outcome; then
		e2e_fail "reimagectl wait reported success, but the job must roll back"
	fi
	local report=$STORE_DIR/store/reports/$job/vm-a.json
	grep -q '"rolled-back"' "$report" || e2e_fail "the report does not say rolled-back"
	grep -Eq "$1" "$report" || e2e_fail "the report does not say /$1/"
}

case $scenario in
good | kexec)
	if [ "$scenario" = kexec ]; then
		vm_wait 'reboot will kexec it' 60 "$from" || e2e_fail "the agent did not load B's kernel"
	fi
	vm_wait 'E2E-MARK multi-user image=B' 600 "$from" || e2e_fail "B did not boot"
	# A reboot through the firmware says so (KERN_EMERG: always on the
	# console); a kexec does not.
	if [ "$scenario" = kexec ] && tail -c "+$((from + 1))" "$E2E_WORK/console.log" |
		grep -a -q -e 'reboot: Restarting system' -e 'the reboot goes through the firmware'; then
		e2e_fail "the reboot was not a kexec"
	fi
	e2e_took "logout to B at multi-user" "$t_logout"
	vm_wait 'reimage-a login:' 120 "$from" || e2e_fail "no login prompt in B"
	e2e_took "user's outage, at most: QUIESCE (sync, logout) to B's login prompt" "$t_logout"
	e2e_took "user's outage, at least: SWAP to B's login prompt" "$t_swap"
	check_b
	# The last line alice wrote before her logout, as the host saw it.
	a_last=$(tr -d '\r' <"$E2E_WORK/user.log" | sed -n 's/^alice //p' | tail -n 1)
	[ -n "$a_last" ] && [ "$B_LAST" = "$a_last" ] ||
		e2e_fail "alice's last line before the logout was '$a_last'; B has '$B_LAST'"
	e2e_log "alice's last line before the logout is in B: $B_LAST"
	vm_wait 'retired image removed' 300 "$from" || e2e_fail "the retired image was not removed"
	wait_outcome || e2e_fail "reimagectl wait did not report success"
	e2e_took "submit to committed (reimagectl wait)" "$t_submit"
	e2e_took "logout to committed" "$t_logout"
	grep -q '"running new image"' "$STORE_DIR/store/reports/$job/vm-a.json" ||
		e2e_fail "the report lacks the new image's confirmation"
	grep -q '"committed"' "$STORE_DIR/store/reports/$job/vm-a.json" ||
		e2e_fail "the report does not say committed"
	;;
powercut)
	vm_wait 'test switch: swap paused' 120 "$from" || e2e_fail "the swap did not pause"
	e2e_log "power cut in the middle of the swap"
	vm_powercut
	vm_start "$E2E_WORK/disk-a.img" panic=5
	from=$VM_BOOT_OFFSET
	# Whichever image's /sbin/init is at the top level boots: the old
	# one's agent completes the swap and reboots into B, or the guard
	# undoes it and boots A.  The outcome says which; the VM must agree.
	if wait_outcome; then
		e2e_log "the swap was completed after the power cut; B committed"
		check_b
	else
		e2e_log "the swap was undone after the power cut; A runs"
		expect_rolled_back 'the swap was interrupted'
		vm_wait 'E2E-MARK multi-user image=A' 600 "$from" || e2e_fail "A did not come back"
		vm_wait 'E2E-MARK user alice uid=1000' 60 "$from" || e2e_fail "alice is missing in A"
	fi
	e2e_took "submit to outcome after the power cut" "$t_submit"
	;;
guard)
	vm_wait 'E2E-MARK broken init exits' 600 "$from" || e2e_fail "B's broken init did not run"
	vm_wait 'boot attempt 2 of 2' 600 "$from" || e2e_fail "the guard did not try twice"
	vm_wait 'fallback: swap undone' 600 "$from" || e2e_fail "the guard did not fall back"
	vm_wait 'E2E-MARK multi-user image=A' 600 "$from" || e2e_fail "A did not come back"
	e2e_took "logout to A back by itself" "$t_logout"
	expect_rolled_back 'the boot guard fell back to the old image: 2 boot attempts'
	;;
health)
	vm_wait 'E2E-MARK multi-user image=B' 600 "$from" || e2e_fail "B did not boot"
	vm_wait 'TRIAL: job .*rolling back' 300 "$from" || e2e_fail "B's agent did not roll back"
	vm_wait 'E2E-MARK multi-user image=A' 600 "$from" || e2e_fail "A did not come back"
	e2e_took "logout to A back after the failed check" "$t_logout"
	expect_rolled_back 'e2e-no-such.service'
	;;
esac
vm_stop
e2e_took "e2e_reimage_$scenario total" "$E2E_T0"
e2e_pass
