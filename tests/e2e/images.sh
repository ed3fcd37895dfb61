#!/bin/bash
# images.sh -- the disk and the image of reimage's end-to-end VM test.
#
#   bash tests/e2e/images.sh [OPTIONS] OUTDIR
#
# Writes into OUTDIR:
#   disk-a.img            image A, the running system: a raw ext4 disk
#                         (the whole disk is /; boot it with root=/dev/vda)
#   image-b.tar.zst       image B, the new image: a tarball of its root
#   image-b.tar.zst.sha256   its SHA-256 (sha256sum format)
#   disk-b.img            with --disk-b: B's tarball unpacked into a disk,
#                         for booting B directly (proves the tarball)
#   images.env            DISK_A= IMAGE_B= IMAGE_B_SHA256= IMAGE_B_SIZE=
#                         GUEST_CONF_DIR= [DISK_B=]: source it in a test
#
# Both images are Debian bookworm roots made by mmdebstrap (minbase +
# systemd, udev, dbus, libpam-systemd, curl and the Depends of reimage's
# package; B adds less and procps), cached under the build directory keyed
# by everything that shapes them (the mmdebstrap options, package lists,
# base.sh): a second run skips mmdebstrap.  base.sh says what the cached
# roots contain (network, users, getty, markers).  Each run then copies the
# cached roots and adds, in both: reimage's Debian package (deb.sh builds it
# from this tree, as the README does), installed with dpkg in the root, so
# the images run what the package ships where it puts it (its unit in
# /usr/lib/systemd/system, enabled by its postinst); the e2e guest files
# (guest/all: e2e-mark, the e2e-boot reporter; guest/a, image A only:
# alice's e2e-journal session), and what the options below give.  Each
# step prints how long it took.
#
# Options (all repeatable ones add up; each applies to both images unless
# it says A):
#   -B BUILD            the test's build directory: the package is built
#                       in BUILD/build-deb (default $REIMAGE_TEST_BIN_DIR,
#                       else <source>/build)
#   --deb FILE          install this reimage .deb instead of building one
#   -C CACHE            cache of base roots (default BUILD/e2e-cache)
#   --agent-conf FILE   becomes CONF/agent.conf; every @STORE@ in it is
#                       replaced by the guest's address of the test's store
#                       (--store), every @CONF@ by CONF
#   --key FILE          a trusted key: CONF/keys/<its name>
#                       (CONF: where the package's unit reads agent.conf,
#                       /etc/reimage; images.env names it GUEST_CONF_DIR)
#   --unit FILE         a systemd unit: /etc/systemd/system/<its name>, enabled
#   --unit-a FILE       the same, in image A only
#   --enable NAME       enable a unit the images already have
#   --hook PROGRAM      run `PROGRAM a|b TREE` on each image's tree last,
#                       before it is written out: anything else a test needs
#   --store HOST:PORT   the store as the guest sees it (default 10.0.2.2:8080)
#   --size SIZE         size of disk-a.img (default 2G: room for B's
#                       staging next to A)
#   --kernel FILE       image B only: FILE becomes /boot/vmlinuz (the
#                       kernel a job's boot.kexec loads)
#   --initrd FILE       image B only: FILE becomes /boot/initrd.img
#   --disk-b            also write disk-b.img from the tarball
#   --keep-trees        keep OUTDIR/tree-a and tree-b (default: removed)
# Needs root (mmdebstrap, chroot, file owners) and the network to Debian's
# archive for a cold cache: run it before entering the test's network
# namespace.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${REIMAGE_TEST_BIN_DIR:-$src/build}
cache=""
deb=""
agent_conf=""
store=10.0.2.2:8080
size=2G
disk_b=0
keep_trees=0
kernel="" initrd=""
keys=() units=() units_a=() enables=() hooks=()

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case $1 in
	-B) build=$2; shift ;;
	--deb) deb=$2; shift ;;
	-C) cache=$2; shift ;;
	--agent-conf) agent_conf=$2; shift ;;
	--key) keys+=("$2"); shift ;;
	--unit) units+=("$2"); shift ;;
	--unit-a) units_a+=("$2"); shift ;;
	--enable) enables+=("$2"); shift ;;
	--hook) hooks+=("$2"); shift ;;
	--store) store=$2; shift ;;
	--size) size=$2; shift ;;
	--kernel) kernel=$2; shift ;;
	--initrd) initrd=$2; shift ;;
	--disk-b) disk_b=1 ;;
	--keep-trees) keep_trees=1 ;;
	-h | --help) usage ;;
	-*) echo "images.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
	shift
done
[ $# -eq 1 ] || usage
mkdir -p "$1"
out=$(cd "$1" && pwd)
build=$(cd "$build" && pwd)
cache=${cache:-$build/e2e-cache}
mkdir -p "$cache"

now() { date +%s.%N; }
# took LABEL START: print how long a step took since START (from now()).
took() { awk -v a="$2" -v b="$(now)" -v l="$1" 'BEGIN { printf "images: %s: %.1f s\n", l, b - a }'; }
die() { echo "images.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (mmdebstrap, chroot, file owners)"
for tool in mmdebstrap mke2fs zstd cmake chroot flock dpkg-deb; do
	command -v "$tool" >/dev/null || die "$tool is missing (sh tests/deps.sh installs it)"
done
if [ -z "$deb" ]; then
	t=$(now)
	deb=$(bash "$here/deb.sh" "$build") || die "deb.sh failed"
	took "package (deb.sh)" "$t"
fi
deb=$(cd "$(dirname "$deb")" && pwd)/${deb##*/}
[ -f "$deb" ] || die "$deb: no such package"

# ------------------------------------------------------------ package lists

# The package's Depends as names for mmdebstrap --include (the first of
# each alternative, without versions): the images get them from the same
# apt sources, and dpkg -i checks the versions.  No library of reimage's
# is listed by hand: one the package fails to declare is missing in the
# images unless systemd or curl happen to pull it in.
deb_depends() {
	dpkg-deb -f "$deb" Depends | tr ',' '\n' |
		sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep -v '^$' | sort -u
}

# The apt sources of this host's Debian release (main, updates, security),
# so the images get the library versions reimage was built against.
mirrors() {
	local codename
	codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
	# shellcheck disable=SC2016 # apt's own $(FIELD) syntax
	apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
		awk -v c="$codename" '$2 == c || $2 == c "-updates" || $2 == c "-security" {
			print "deb " $1 " " $2 " main" }' | sort -u
}

suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
common="systemd-sysv udev dbus libpam-systemd curl
  $(deb_depends | tr '\n' ' ')"
# dmsetup and kmod: the power-loss test puts a dm-log-writes target
# under a sandbox root in A (test_powerlog.sh).
packages_a="$common dmsetup kmod"
packages_b="$common less procps"
mapfile -t mirror_lines < <(mirrors)
[ ${#mirror_lines[@]} -gt 0 ] || mirror_lines=("deb http://deb.debian.org/debian $suite main")

# ------------------------------------------------------------ cached bases

# only_std_fds COMMAND...: run COMMAND with every descriptor above 2 closed.
only_std_fds() (
	local fd
	for fd in /proc/self/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-"
	done
	exec "$@"
)

# base IMAGE PACKAGES: print the cached base root of IMAGE (a or b),
# building it with mmdebstrap first when the cache has no root for this
# exact recipe.  The key covers the mmdebstrap version and options, the
# package list, the mirrors and base.sh; other keys of IMAGE are removed.
base() {
	local image=$1 key dir tmp t
	local -a opts
	opts=(--variant=minbase
		--include="$(xargs -n 1 <<<"$2" | sort -u | paste -sd, -)"
		# The test never reads documentation: smaller trees copy,
		# pack and stage faster.
		--dpkgopt='path-exclude=/usr/share/man/*'
		--dpkgopt='path-exclude=/usr/share/doc/*'
		--dpkgopt='path-exclude=/usr/share/locale/*'
		--dpkgopt='path-exclude=/usr/share/info/*')
	key=$( {
		mmdebstrap --version
		printf '%s\n' "${opts[@]}" "$suite" "${mirror_lines[@]}"
		cat "$here/base.sh"
	} | sha256sum | cut -c1-16)
	dir=$cache/$image-$key
	if [ -d "$dir" ]; then
		echo "images: base $image: cached ($dir)" >&2
	else
		tmp=$cache/$image-$key.tmp
		rm -rf "$tmp"
		t=$(now)
		# Only stdin, stdout and stderr: apt runs mmdebstrap's download
		# hook `cat >&FD` with /bin/sh, and dash takes one digit there
		# ("Bad fd number"); our lock descriptors (and any a caller
		# leaves open) would push mmdebstrap's pipe to 10 and above.
		if ! only_std_fds mmdebstrap "${opts[@]}" \
			--customize-hook="sh '$here/base.sh' $image \"\$1\"" \
			"$suite" "$tmp" "${mirror_lines[@]}" >"$cache/$image.log" 2>&1; then
			tail -n 30 "$cache/$image.log" >&2
			die "mmdebstrap of image $image failed (log: $cache/$image.log)"
		fi
		mv "$tmp" "$dir"
		took "mmdebstrap $image (cold)" "$t" >&2
	fi
	find "$cache" -mindepth 1 -maxdepth 1 -name "$image-*" ! -name "$image-$key" \
		! -name '*.log' -exec rm -rf {} +
	echo "$dir"
}

# Two test runs sharing a build directory must not build a base twice.
exec 9>"$cache/lock"
flock 9
base_a=$(base a "$packages_a")
base_b=$(base b "$packages_b")
flock -u 9

# ------------------------------------------------------------ per-run trees

# enable TREE UNIT...: as `systemctl enable` would, offline (the tree's own
# systemctl, in a chroot: it needs nothing running).
enable() {
	local tree=$1
	shift
	chroot "$tree" systemctl enable -q "$@"
}

# overlay DIR TREE: DIR's files into TREE at the same paths, owned by root
# and 0755 or 0644 whoever checked the sources out and with which umask;
# TREE's directories keep their owners and modes.
overlay() {
	local f
	(cd "$1" && find . -type f) | while read -r f; do
		if [ -x "$1/$f" ]; then
			install -D -m 0755 "$1/$f" "$2/$f"
		else
			install -D -m 0644 "$1/$f" "$2/$f"
		fi
	done
}

# install_deb IMAGE TREE: the package into TREE with the tree's own dpkg,
# its maintainer scripts included (the postinst enables the agent's unit
# offline); then CONF, where the package's unit reads agent.conf, is set.
install_deb() {
	local unit=/usr/lib/systemd/system/reimage-agent.service
	cp "$deb" "$2/tmp/reimage.deb"
	if ! chroot "$2" dpkg -i /tmp/reimage.deb >"$out/install-$1.log" 2>&1; then
		cat "$out/install-$1.log" >&2
		die "dpkg -i of ${deb##*/} failed in image $1"
	fi
	rm "$2/tmp/reimage.deb"
	[ -f "$2$unit" ] || die "the package did not install $unit"
	conf_dir=$(sed -n 's|^ConditionPathExists=\(.*\)/agent.conf$|\1|p' "$2$unit")
	[ -n "$conf_dir" ] || die "$unit names no agent.conf"
}

# finish IMAGE TREE: everything a run adds to a copy of a base root.
finish() {
	local image=$1 tree=$2 f
	install_deb "$image" "$tree"
	overlay "$here/guest/all" "$tree"
	enable "$tree" e2e-boot.service
	if [ "$image" = a ]; then
		overlay "$here/guest/a" "$tree"
		enable "$tree" e2e-journal.service
	fi
	if [ -n "$agent_conf" ]; then
		mkdir -p "$tree$conf_dir"
		sed -e "s|@STORE@|$store|g" -e "s|@CONF@|$conf_dir|g" "$agent_conf" \
			>"$tree$conf_dir/agent.conf"
	fi
	for f in ${keys[@]+"${keys[@]}"}; do
		install -D -m 0644 "$f" "$tree$conf_dir/keys/${f##*/}"
	done
	for f in ${units[@]+"${units[@]}"}; do
		install -m 0644 "$f" "$tree/etc/systemd/system/${f##*/}"
		enable "$tree" "${f##*/}"
	done
	if [ "$image" = a ]; then
		for f in ${units_a[@]+"${units_a[@]}"}; do
			install -m 0644 "$f" "$tree/etc/systemd/system/${f##*/}"
			enable "$tree" "${f##*/}"
		done
	fi
	for f in ${enables[@]+"${enables[@]}"}; do
		enable "$tree" "$f"
	done
	if [ "$image" = b ]; then
		[ -z "$kernel" ] || install -D -m 0644 "$kernel" "$tree/boot/vmlinuz"
		[ -z "$initrd" ] || install -D -m 0644 "$initrd" "$tree/boot/initrd.img"
	fi
	for f in ${hooks[@]+"${hooks[@]}"}; do
		"$f" "$image" "$tree"
	done
}

# disk IMAGE TREE FILE: an ext4 disk holding TREE as its root, made
# without mounting anything (mke2fs -d).
disk() {
	rm -f "$3"
	truncate -s "$size" "$3"
	mke2fs -q -F -t ext4 -L "reimage-$1" -d "$2" "$3"
}

for image in a b; do
	t=$(now)
	base_dir=$base_a
	[ "$image" = b ] && base_dir=$base_b
	rm -rf "$out/tree-$image"
	cp -a --reflink=auto "$base_dir" "$out/tree-$image"
	finish "$image" "$out/tree-$image"
	took "tree $image (copy + install)" "$t"
done

t=$(now)
disk a "$out/tree-a" "$out/disk-a.img"
took "disk-a.img (mke2fs -d, $size)" "$t"

t=$(now)
rm -f "$out/image-b.tar.zst"
tar --numeric-owner --xattrs --acls -C "$out/tree-b" -cf - . |
	zstd -q -T2 -o "$out/image-b.tar.zst"
(cd "$out" && sha256sum image-b.tar.zst >image-b.tar.zst.sha256)
took "image-b.tar.zst ($(du -m "$out/image-b.tar.zst" | cut -f1) MB) + sha256" "$t"

{
	echo "DISK_A=$out/disk-a.img"
	echo "IMAGE_B=$out/image-b.tar.zst"
	echo "IMAGE_B_SHA256=$(cut -d' ' -f1 "$out/image-b.tar.zst.sha256")"
	echo "IMAGE_B_SIZE=$(stat -c %s "$out/image-b.tar.zst")"
	echo "GUEST_CONF_DIR=$conf_dir"
} >"$out/images.env"

if [ "$disk_b" = 1 ]; then
	t=$(now)
	rm -rf "$out/unpacked-b"
	mkdir "$out/unpacked-b"
	tar --numeric-owner --xattrs --acls -C "$out/unpacked-b" --zstd -xf "$out/image-b.tar.zst"
	disk b "$out/unpacked-b" "$out/disk-b.img"
	rm -rf "$out/unpacked-b"
	echo "DISK_B=$out/disk-b.img" >>"$out/images.env"
	took "disk-b.img (from the tarball)" "$t"
fi
[ "$keep_trees" = 1 ] || rm -rf "$out/tree-a" "$out/tree-b"
