#!/bin/sh
# Install the Debian 12 packages reimage needs to build and test, if any
# is missing.  Idempotent: does nothing when everything is there.
set -eu
packages="build-essential cmake pkg-config
  libltdl-dev libconfig-dev libarchive-dev libcurl4-openssl-dev libssl-dev libxml2-dev
  libcunit1-dev libsmbclient-dev libjansson-dev zlib1g-dev libzstd-dev libsodium-dev
  nginx-light samba openssl
  tar zstd xz-utils gzip bzip2 python3 acl attr e2fsprogs util-linux xfsprogs
  libsystemd-dev busybox-static dosfstools procps file libcap2-bin
  mmdebstrap qemu-system-x86 linux-image-cloud-amd64 iproute2
  libsquashfs-dev squashfs-tools xorriso docker-registry tzdata faketime
  gcc-mingw-w64-x86-64 mingw-w64 wine64 wine
  libarchive-tools curl time strace lintian groff-base man-db nghttp2-client chromium
  clang libclang-rt-14-dev
  ceph-base ceph-common ceph-mon ceph-osd radosgw python3-prometheus-client"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: run as root (apt-get install$missing)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
