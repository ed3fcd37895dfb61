#!/bin/bash
# deb.sh BUILD -- build reimage's Debian package from this source tree the
# way the README says (CPack, conf/package.cmake), in BUILD/build-deb, and
# print the .deb's path.  The e2e images install this file with dpkg, so
# what the tests run is what the package ships, where it puts it: a file
# missing from the package fails them.  A second run
# rebuilds only what changed (CPack itself always runs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
[ $# -eq 1 ] || { echo "usage: deb.sh BUILD" >&2; exit 2; }
dir=$1/build-deb
mkdir -p "$dir"
# Two tests sharing a build must not configure it at the same time.
exec 7>"$dir.lock"
flock 7
{
	cmake -S "$src" -B "$dir" -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF &&
		cmake --build "$dir" -j2 --target package
} >"$dir.log" 2>&1 || {
	tail -n 30 "$dir.log" >&2
	echo "deb.sh: building the package failed (log: $dir.log)" >&2
	exit 1
}
mapfile -t debs < <(find "$dir" -maxdepth 1 -name 'reimage_*.deb')
[ ${#debs[@]} -eq 1 ] || { echo "deb.sh: expected one reimage_*.deb in $dir, found ${#debs[@]}" >&2; exit 1; }
echo "${debs[0]}"
