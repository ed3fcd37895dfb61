#!/bin/sh
# The main job on the embedded default: a full re-image of a sandbox root
# from a local image through the agent, with no server (the job store is a
# directory) and nothing of this machine's own / touched.
#   sh tests/demo.sh [DIR]     (DIR: where the sandbox goes; default a new
#                               directory under /tmp, kept for inspection)
# It builds reimage, makes a small running system (users alice and bob, a
# network configuration, a data folder) and a new image (tar.zst with its
# SHA-256), an administrator's key, and a directory job store; then
# `reimagectl submit` publishes the signed job, the agent runs it with the
# sandbox backend (real renames; logout, quiesce, boot and reboot
# recorded), the agent starts again as after the reboot and confirms, and
# `reimagectl wait` shows the outcome.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
sh "$top/tests/deps.sh"
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
reimage="$top/build/reimage"
reimagectl="$top/build/reimagectl"
export REIMAGE_PLUGIN_PATH="$top/build/plugins"

dir=${1:-$(mktemp -d /tmp/reimage-demo.XXXXXX)}
root="$dir/root"; src="$dir/image-src"; image="$dir/image.tar.zst"
rm -rf "$root" "$src"; mkdir -p "$root" "$src"

echo "== the running system: $root"
(cd "$root"
 mkdir -p bin etc/network etc/ssh usr/lib var/log home/alice home/bob srv/data proc opt/legacy
 echo "old shell" > bin/sh; chmod 755 bin/sh
 echo "Debian 11 (old image)" > etc/os-release
 printf 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:1001:Bob:/home/bob:/bin/sh\n' > etc/passwd
 printf 'root:*:19000:0:99999:7:::\nalice:$6$alice$hash:19000:0:99999:7:::\nbob:$6$bob$hash:19000:0:99999:7:::\n' > etc/shadow
 printf 'root:x:0:\nalice:x:1000:\nbob:x:1001:\n' > etc/group
 chmod 640 etc/shadow
 echo lab-pc-17 > etc/hostname
 printf 'auto eth0\niface eth0 inet static\n  address 192.0.2.17/24\n' > etc/network/interfaces
 echo "ssh-ed25519 HOSTKEY" > etc/ssh/ssh_host_ed25519_key.pub
 echo "Alice's thesis, chapter 1" > home/alice/thesis.txt
 echo "Bob's notes" > home/bob/notes.txt
 chown -R 1000:1000 home/alice; chown -R 1001:1001 home/bob
 echo "measurements" > srv/data/run-42.csv
 echo "legacy tool" > opt/legacy/tool)

echo "== the new image: $image"
(cd "$src"
 mkdir -p bin etc usr/lib usr/share/doc var/log home srv proc
 echo "new shell" > bin/sh; chmod 755 bin/sh
 echo "Debian 12 (new image)" > etc/os-release
 printf 'root:x:0:0:root:/root:/bin/sh\n_apt:x:42:65534::/nonexistent:/usr/sbin/nologin\n' > etc/passwd
 printf 'root:*:19500:0:99999:7:::\n_apt:*:19500:0:99999:7:::\n' > etc/shadow
 printf 'root:x:0:\n' > etc/group
 chmod 640 etc/shadow
 echo localhost > etc/hostname
 echo "new libc" > usr/lib/libc.so.6
 echo "release notes" > usr/share/doc/NEWS
 # An init of this machine's architecture: PREFLIGHT checks it, and the
 # boot guard runs in its place until the new image is committed.
 mkdir -p sbin; cp /bin/busybox sbin/init)
tar --numeric-owner -C "$src" --zstd -cf "$image" .
sha=$(sha256sum "$image" | cut -d' ' -f1)
size=$(stat -c %s "$image")

cat > "$dir/mark-image.sh" <<'HOOK'
#!/bin/sh
# A hook: runs on the staged image before the swap.
echo "staged by job $REIMAGE_JOB" > "$1/etc/reimage-stamp"
HOOK
chmod 755 "$dir/mark-image.sh"

cat > "$dir/job.conf" <<JOB
id = "demo-$(date +%Y%m%d-%H%M%S)";
backend = "sandbox";
image: { url = "$image"; sha256 = "$sha"; size = $size; };
preserve: {
  mode = "move";
  network = true;
  users = "all";
  paths = [ "srv/data" ];
};
hooks = ( { path = "$dir/mark-image.sh"; timeout = 30; } );
label = "LAB-ROOT";
boot: { command = "update-grub"; };
reboot = true;
JOB

job=$(sed -n 's/^id = "\(.*\)";/\1/p' "$dir/job.conf")
store="$dir/store"
echo "== the administrator's key and the agent's configuration"
[ -e "$dir/admin.key" ] || "$reimagectl" keygen "$dir/admin.key" "$dir/admin.pub"
cat > "$dir/agent.conf" <<AGENT
agent_id = "lab-pc-17";
groups = [ "lab" ];
root = "$root";
backend = "sandbox";
state_dir = "$root/var/lib/reimage";
store = "$store";
trusted_keys = [ "$dir/admin.pub" ];
poll_interval = 1;
poll_jitter = 0;
AGENT

echo "== reimage plan (what the job would do; touches nothing)"
"$reimage" plan -c "$dir/job.conf" --root "$root"
echo "== reimagectl submit"
"$reimagectl" submit -s "$store" -k "$dir/admin.key" "$dir/job.conf" --agents lab-pc-17
echo "== reimage agent (polls the store, verifies, runs every phase, 'reboots')"
"$reimage" agent -c "$dir/agent.conf" --once
"$reimagectl" status -s "$store" "$job"
echo "trial:        /sbin/init -> $(readlink "$root/sbin/init") (the boot guard, until the commit)"
echo "== reimage agent after the reboot: confirms the new image and reports"
"$reimage" agent -c "$dir/agent.conf" --once
"$reimagectl" wait -s "$store" "$job" --timeout 30
"$reimage" status --root "$root"

echo "== result"
echo "os-release:   $(cat "$root/etc/os-release")"
echo "hostname:     $(cat "$root/etc/hostname")  (preserved: network)"
echo "alice:        $(cat "$root/home/alice/thesis.txt")  (preserved: home folder)"
echo "accounts:     $(cut -d: -f1 "$root/etc/passwd" | tr '\n' ' ') (merged)"
echo "data:         $(cat "$root/srv/data/run-42.csv")  (preserved: path)"
echo "hook:         $(cat "$root/etc/reimage-stamp")"
echo "init:         $([ -L "$root/sbin/init" ] && echo "still the guard" || echo "the new image's own (guard disarmed at the commit)")"
echo "opt/legacy:   $([ -e "$root/opt" ] && echo still there || echo gone with the old image)"
echo "recorded:     $(tr '\n' ';' < "$root/.reimage/sandbox.log")"
echo "sandbox kept in $dir"
