#!/bin/bash
# test_powerlog.sh -- CTest e2e_powerlog_replay: power loss, not a process
# crash, at every flush of a whole job (issue 21).  Image A gets dmsetup,
# kmod and the host kernel's loop, dm-mod and dm-log-writes modules
# (powerlog_hook.sh); the test builds a small sandbox root (old) and image
# (new), and A's boot reporter runs powerlog_guest.sh: `reimage run`,
# `reimage rollback`, `reimage run` again and `reimage confirm` on that root, on an ext4 under a dm-log-writes target,
# the log sent back to the store.  powerlog_check.sh then replays the log
# to every flush and FUA point of the job and checks, after `reimage
# recover`, that the root is the old one or the new one with its preserves.
# Run by ctest (label vm), or by hand as root:
#   REIMAGE_TEST_BIN_DIR=build bash tests/e2e/test_powerlog.sh
set -euo pipefail
. "$(dirname "$0")/vm.sh"
e2e_setup e2e_powerlog_replay

if ! e2e_in_netns; then
	t=$(e2e_now)
	bash "$E2E_HERE/images.sh" --hook "$E2E_HERE/powerlog_hook.sh" "$E2E_WORK/images" ||
		e2e_fail "images.sh failed"
	e2e_took "images (total)" "$t"
fi
e2e_netns "$@"
# shellcheck disable=SC1091 # written by images.sh
. "$E2E_WORK/images/images.env"
[ -x "$E2E_BUILD/tests/engine/replay_log" ] || e2e_fail "replay_log is not built"

store_start 8080
echo "probe $$" >"$STORE_DIR/e2e/probe"

# The old root: users with a home, network settings, preserved data with
# an xattr, a hard link, a symbolic link, a file only the old image has.
# The new image: other users' files, a marker, no home.  Preserved: the
# network, alice, srv/data.
pl=$STORE_DIR/e2e/powerlog
mkdir -p "$pl" "$E2E_WORK/old" "$E2E_WORK/new"
(
	set -e
	cd "$E2E_WORK/old"
	mkdir -p bin etc/network usr/lib home/alice home/bob srv/data var/log opt/old
	echo old-sh >bin/sh && chmod 755 bin/sh
	echo old-lib >usr/lib/libc.so && ln usr/lib/libc.so usr/lib/libc.so.6
	printf 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n' >etc/passwd
	# shellcheck disable=SC2016 # literal password hashes
	printf 'root:*:1::::::\nalice:$6$a:1::::::\nbob:$6$b:1::::::\n' >etc/shadow && chmod 640 etc/shadow
	printf 'root:x:0:\nalice:x:1000:\nbob:x:1001:\n' >etc/group
	echo old-host >etc/hostname && echo '127.0.0.1 old' >etc/hosts
	echo 'iface eth0 inet dhcp' >etc/network/interfaces
	echo notes >home/alice/notes.txt && ln -s notes.txt home/alice/link
	head -c 300000 /dev/urandom >home/alice/blob
	chown -R 1000:1000 home/alice && chmod 700 home/alice
	echo bob >home/bob/b.txt && chown -R 1001:1001 home/bob
	echo data >srv/data/d.bin && setfattr -n user.kept -v yes srv/data/d.bin
	echo log >var/log/syslog && echo only-old >opt/old/x
)
(
	set -e
	cd "$E2E_WORK/new"
	mkdir -p bin etc usr/lib usr/share home srv var/log only-new/deep
	echo new-sh >bin/sh && chmod 4755 bin/sh
	echo new-lib >usr/lib/libc.so && ln usr/lib/libc.so usr/lib/libc.so.7
	ln -s libc.so usr/lib/libc.link
	printf 'root:x:0:0::/root:/bin/sh\nsvc:x:999:999::/nonexistent:/bin/false\n' >etc/passwd
	printf 'root:*:2::::::\nsvc:!:2::::::\n' >etc/shadow && chmod 640 etc/shadow
	printf 'root:x:0:\nsvc:x:999:\n' >etc/group
	echo new-host >etc/hostname && echo marker >NEW-IMAGE && echo n >only-new/deep/f
	head -c 2000000 /dev/urandom >usr/share/big
)
tar --numeric-owner --xattrs --xattrs-include='*' -C "$E2E_WORK/old" -cf "$pl/old-root.tar" .
tar --numeric-owner --xattrs --xattrs-include='*' -C "$E2E_WORK/new" -cf "$pl/image.tar" .
cat >"$pl/job.conf" <<'CONF'
id = "powerlog";
serial = 1;
backend = "sandbox";
image: { url = "/var/tmp/powerlog/image.tar"; };
preserve: { network = true; users = [ "alice" ]; paths = [ "srv/data" ]; };
reboot = false;
trial: { guard = false; };
# The sandbox root is on a 256 MiB volume, logged whole.
preflight: { free_margin_mb = 16; };
CONF
cp "$E2E_HERE/powerlog_guest.sh" "$STORE_DIR/e2e/guest.sh"

vm_start "$DISK_A"
vm_wait 'E2E-MARK multi-user image=A boot=1' 240 || e2e_fail "A did not reach multi-user"
e2e_took "boot A to multi-user ($(cat "$E2E_WORK/accel"))" "$VM_BOOT_T0"
t=$(e2e_now)
vm_wait 'E2E-MARK guest-script rc=' 330 || e2e_fail "the guest's recording did not finish"
guest_out=$STORE_DIR/e2e/results/A-boot1-guest.txt
vm_wait 'E2E-MARK boot-done' 60 || true
grep -q 'E2E-MARK powerlog unavailable' "$E2E_WORK/console.log" &&
	e2e_skip "the guest's kernel has no dm-log-writes target"
if ! grep -q 'E2E-MARK guest-script rc=0' "$E2E_WORK/console.log"; then
	[ -f "$guest_out" ] && tail -n 30 "$guest_out" >&2
	e2e_fail "the guest's recording failed (its output: $guest_out)"
fi
e2e_took "the job recorded in the guest" "$t"
vm_stop

t=$(e2e_now)
mkdir "$E2E_WORK/check"
tar -C "$E2E_WORK/check" -xSf "$STORE_DIR/e2e/results/powerlog.tar"
result=$(unshare -m --propagation private -- \
	bash "$E2E_HERE/powerlog_check.sh" "$E2E_WORK/check/log" "$E2E_WORK/check") ||
	e2e_fail "a power loss left a root neither old nor new (work: $E2E_WORK/check)"
echo "$result"
e2e_took "replay and check of every flush point" "$t"
e2e_took "e2e_powerlog_replay total" "$E2E_T0"
e2e_pass
