#!/bin/bash
# test_boot.sh -- CTest e2e_vm_boot: the e2e VM test's machinery, checked
# without the agent.  Run by ctest (label vm), or by hand as root:
#   REIMAGE_TEST_BIN_DIR=build bash tests/e2e/test_boot.sh
# It builds (or takes from the cache) images A and B (images.sh), then in a
# network namespace of its own: serves a store with nginx, boots A under
# qemu and checks over the serial console that it reaches multi-user, that
# alice and her home are there, that the guest GETs a file from the store
# and PUTs its report back (nginx's log and the store agree), and that the
# login prompt comes, and that reimage runs there with its plugins; cuts
# the power, boots A again and sees the second boot (with alice's lines
# written before the boot's sync); has the guest reboot itself (a script
# the store serves to the boot reporter) and sees qemu boot it again in
# place; then boots B from a disk made of its tarball (multi-user, marker).
# It prints how long each step took.
set -euo pipefail
. "$(dirname "$0")/vm.sh"
e2e_setup e2e_vm_boot

if ! e2e_in_netns; then
	t=$(e2e_now)
	bash "$E2E_HERE/images.sh" --disk-b "$E2E_WORK/images" || e2e_fail "images.sh failed"
	e2e_took "images (total)" "$t"
fi
e2e_netns "$@"
# shellcheck disable=SC1091 # written by images.sh
. "$E2E_WORK/images/images.env"

store_start 8080
echo "probe $$" >"$STORE_DIR/e2e/probe"

# --- first boot of A
vm_start "$DISK_A"
vm_wait 'E2E-MARK multi-user image=A boot=1 host=reimage-a' 240 || e2e_fail "A did not reach multi-user"
e2e_took "boot A to multi-user ($(cat "$E2E_WORK/accel"))" "$VM_BOOT_T0"
vm_wait 'E2E-MARK user alice uid=1000 home=/home/alice owner=alice mode=755' 30 ||
	e2e_fail "alice or her home folder is missing"
vm_wait 'E2E-MARK reimage reimage [0-9.]+ .*plugins=' 30 || e2e_fail "reimage does not run in the guest"
# The plugins the package installed, in the order the directory lists them.
plugins=,$(sed -n 's/.*plugins=\([^[:space:]]*\).*/\1/p' <<<"$VM_MATCH"),
for p in posix transport-http; do
	case $plugins in
	*,"$p",*) ;;
	*) e2e_fail "the package's plugin $p does not load in the guest (loaded: $plugins)" ;;
	esac
done
vm_wait 'E2E-MARK net get=ok' 60 || e2e_fail "the guest did not GET the store's probe"
vm_wait 'E2E-MARK net put=ok' 30 || e2e_fail "the guest did not PUT its report"
vm_wait 'reimage-a login:' 60 || e2e_fail "no login prompt on the serial console"
e2e_took "boot A to the login prompt" "$VM_BOOT_T0"
vm_wait 'E2E-MARK boot-done image=A boot=1' 30 || e2e_fail "the boot report did not finish"
grep -q 'GET /e2e/probe 200' "$E2E_WORK/nginx/access.log" || e2e_fail "nginx did not serve the probe"
grep -q 'PUT /e2e/results/A-boot1.txt 201' "$E2E_WORK/nginx/access.log" ||
	e2e_fail "nginx did not take the report"
grep -q 'E2E-MARK multi-user image=A boot=1' "$STORE_DIR/e2e/results/A-boot1.txt" ||
	e2e_fail "the report in the store is not the guest's"
vm_wait 'E2E-MARK journal start' 30 || e2e_fail "alice's session did not start"

# The guest will reboot itself as the agent does (sync, reboot(2)) on
# its second boot: the store serves the boot reporter a script.  It is
# written now, while A is up after its first report: the second boot's
# reporter fetches it right after its PUT, faster than the host sees it.
cat >"$STORE_DIR/e2e/guest.sh" <<'EOF'
if [ "$E2E_IMAGE$E2E_BOOT" = A2 ]; then
	e2e-mark guest rebooting
	sync
	systemctl reboot --force --force
fi
e2e-mark guest "ran image=$E2E_IMAGE boot=$E2E_BOOT"
EOF

# --- power cut, A boots again on the same disk.  boot-done came after a
# sync: alice's lines written by then must survive.
vm_powercut
vm_start "$DISK_A"
vm_wait 'E2E-MARK multi-user image=A boot=2' 240 || e2e_fail "A did not come back after the power cut"
e2e_took "boot A after a power cut to multi-user" "$VM_BOOT_T0"
vm_wait 'E2E-MARK journal lines=[1-9]' 30 || e2e_fail "alice's journal did not survive the power cut"
vm_wait 'E2E-MARK net put=ok' 60 || e2e_fail "no network after the power cut"

# --- the same qemu boots again after the guest rebooted itself.
pid=$VM_PID
vm_wait 'E2E-MARK guest rebooting' 60 || e2e_fail "the guest did not run the store's script"
t=$(e2e_now)
vm_wait 'E2E-MARK multi-user image=A boot=3' 240 "$(vm_log_size)" ||
	e2e_fail "A did not come back after rebooting itself"
e2e_took "reboot in place to multi-user" "$t"
if [ "$pid" != "$VM_PID" ] || ! vm_running; then
	e2e_fail "qemu did not reboot in place"
fi
vm_wait 'E2E-MARK guest ran image=A boot=3' 60 || e2e_fail "the store's script did not run after the reboot"
vm_stop

# --- B, from its tarball (images.sh --disk-b)
vm_start "$DISK_B"
vm_wait 'E2E-MARK multi-user image=B boot=1 host=reimage-b' 240 || e2e_fail "B did not reach multi-user"
e2e_took "boot B to multi-user" "$VM_BOOT_T0"
vm_wait 'E2E-MARK user alice missing' 30 || e2e_fail "B has an alice of its own"
vm_wait 'reimage-b login:' 60 || e2e_fail "no login prompt on B"
vm_stop

e2e_took "e2e_vm_boot total" "$E2E_T0"
e2e_pass
