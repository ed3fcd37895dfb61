# powerlog_guest.sh -- the guest's part of test_powerlog.sh, served to A's
# boot reporter as /e2e/guest.sh (e2e-boot runs it as root, bounded: 300 s).
# It records one whole job on a device under dm-log-writes: a loop device
# on a file (zeros to begin with: the host replays onto zeros) logged onto
# another, every write from mkfs on.  On it: the sandbox root the test
# served (old-root.tar), mark "ready" after a sync; `reimage run` of the
# served job (stage, preserve, swap), `reimage rollback`, a sync, mark
# "rolled-back", the same job run again, `reimage confirm` (the retired
# image deleted), a sync, mark "done".  The log goes back to the store as a
# sparse tar (results/powerlog.tar); each step prints an E2E-MARK powerlog.
set -euo pipefail
store=http://$E2E_STORE/e2e/powerlog
work=/var/tmp/powerlog
mnt=/mnt/pl
step() { e2e-mark powerlog "$*"; }
rm -rf "$work"
mkdir -p "$work" "$mnt"
for f in old-root.tar image.tar job.conf; do
	curl -fsS --max-time 60 -o "$work/$f" "$store/$f"
done
modprobe loop
if ! modprobe dm-log-writes; then
	step "unavailable: no dm-log-writes in this kernel"
	exit 0
fi
# 256 MiB of data: the test's replay image has the same size (its own
# constant, checked against the log's writes).  The log gets room for
# every block written twice over.
truncate -s 256M "$work/data"
truncate -s 1G "$work/log"
data=$(losetup -f --show "$work/data")
log=$(losetup -f --show "$work/log")
dmsetup create powerlog --table "0 $(blockdev --getsz "$data") log-writes $data $log"
step "target up data=$data log=$log"
# Inode tables and the journal written now, not by a background thread
# during the job: the log then holds the job's writes and few others.
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0,nodiscard /dev/mapper/powerlog
mount /dev/mapper/powerlog "$mnt"
mkdir "$mnt/root"
tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$work/old-root.tar" -C "$mnt/root"
sync
dmsetup message powerlog 0 mark ready
step ready
reimage run -c "$work/job.conf" --root "$mnt/root"
step "run rc=0"
reimage rollback --root "$mnt/root"
step "rollback rc=0"
sync
dmsetup message powerlog 0 mark rolled-back
reimage run -c "$work/job.conf" --root "$mnt/root"
step "run again rc=0"
reimage confirm --root "$mnt/root"
step "confirm rc=0"
sync
dmsetup message powerlog 0 mark "done"
umount "$mnt"
# Removing the target writes its last entries and the log's super block.
dmsetup remove powerlog
losetup -d "$data" "$log"
tar -C "$work" -cSf "$work/powerlog.tar" log
curl -fsS --max-time 120 -T "$work/powerlog.tar" "http://$E2E_STORE/e2e/results/powerlog.tar"
step "log sent bytes=$(stat -c %s "$work/powerlog.tar")"
