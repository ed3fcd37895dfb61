#!/bin/bash
# powerlog_hook.sh -- images.sh --hook of test_powerlog.sh: `powerlog_hook.sh
# a|b TREE`.  The VM boots the host's kernel (vm.sh), whose modules no
# image package brings: A gets the three the test loads (loop, dm-mod,
# dm-log-writes) with the kernel's module index, so modprobe finds them.
set -euo pipefail
[ "$1" = a ] || exit 0
kernel=${E2E_KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)}
version=${kernel##*/vmlinuz-}
from=/lib/modules/$version
[ -d "$from" ] || { echo "powerlog_hook: no $from" >&2; exit 1; }
to=$2/lib/modules/$version
mkdir -p "$to"
cp "$from"/modules.* "$to"/
for m in drivers/block/loop drivers/md/dm-mod drivers/md/dm-log-writes; do
	f=$(ls "$from/kernel/$m".ko* | head -n 1)
	install -D -m 0644 "$f" "$to/kernel/${f#"$from"/kernel/}"
done
