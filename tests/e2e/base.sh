#!/bin/sh
# base.sh -- mmdebstrap customize hook for the e2e test's cached base roots.
#   sh base.sh a|b ROOT
# images.sh runs it inside `mmdebstrap --customize-hook`, with ROOT the new
# root tree; what it writes is cached with the tree, and its text is part of
# the cache key, so an edit here rebuilds the bases.  Per-run content
# (reimage's package, agent.conf, the e2e units) is added later by images.sh.
#
# Both images: a fixed machine-id (no first-boot prompts), fstab with
# /dev/vda as / (ext4), systemd-networkd enabled, a serial getty on ttyS0,
# root without password (the test VM's console), a marker
# /etc/reimage-image-a or -b.
# Image A only: hostname reimage-a, a static address for the NIC ens2 on
# qemu's user network (the host is 10.0.2.2), user alice (uid 1000) with
# her home folder.
# Image B only: hostname reimage-b and no network configuration: after a
# re-image, B's network comes from A through the job's preserve.
set -eu
image=$1
root=$2

echo "reimage-$image" >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\treimage-%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
	"$image" >"$root/etc/hosts"
printf '# e2e VM disk: the whole virtio disk is the root\n/dev/vda\t/\text4\tdefaults\t0\t1\n' \
	>"$root/etc/fstab"
echo "reimage e2e image $image" >"$root/etc/reimage-image-$image"

# An empty machine-id makes every boot generate a new one; a fixed one
# keeps systemd's first-boot logic out of the test.
: >"$root/etc/machine-id"
chroot "$root" systemd-machine-id-setup >/dev/null

chroot "$root" systemctl enable -q systemd-networkd.service serial-getty@ttyS0.service
chroot "$root" passwd -q -d root

if [ "$image" = a ]; then
	mkdir -p "$root/etc/systemd/network"
	cat >"$root/etc/systemd/network/10-ens2.network" <<-'EOF'
	# qemu user network: the guest is 10.0.2.15, the host (nginx) 10.0.2.2.
	[Match]
	Name=ens2

	[Network]
	Address=10.0.2.15/24
	Gateway=10.0.2.2
	DNS=10.0.2.3
	EOF
	chroot "$root" useradd -m -u 1000 -U -s /bin/bash -c Alice alice
	echo "Alice's thesis, chapter 1" >"$root/home/alice/thesis.txt"
	chown 1000:1000 "$root/home/alice/thesis.txt"
fi
