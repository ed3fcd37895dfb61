# vm.sh -- the e2e tests' VM runner: a bash library, sourced by a test
# script (test_boot.sh is the example), never run by itself.
#
#   . "$(dirname "$0")/vm.sh"
#   e2e_setup NAME            work dir $E2E_WORK under the build directory
#                             (removed when the test passes unless
#                             $E2E_KEEP is set, kept when it fails); stops
#                             everything on exit
#   if ! e2e_in_netns; then   host steps, once: they may use the network
#           images.sh ... "$E2E_WORK/images"    (Debian's archive)
#   fi
#   e2e_netns "$@"            re-run this script in a new network namespace
#                             (unshare --net), then bring its loopback up;
#                             from here on no traffic leaves it
#   store_start [PORT]        nginx on 127.0.0.1:PORT (default 8080: the
#                             namespace is the test's own) serving
#                             $STORE_DIR, PUT and DELETE allowed; the host
#                             reaches it at $STORE_URL, the guest at
#                             $STORE_GUEST (10.0.2.2:PORT, also passed on
#                             the kernel command line as e2e.store=)
#   vm_start DISK [ARGS]      boot DISK (raw, the whole disk is /) with the
#                             host's Debian cloud kernel; ARGS are added to
#                             the kernel command line
#   vm_wait REGEX SECONDS [FROM]   wait for REGEX (grep -E) in the console
#                             log after byte FROM (default: the start of
#                             this boot); $VM_MATCH is the matching line
#   vm_log_size               the console log's size now: a FROM for later
#   vm_powercut               kill qemu (SIGKILL): a power cut
#   vm_restart                power-cut if running, boot the same disk again
#   vm_stop                   stop qemu (SIGTERM, bounded, then SIGKILL)
#   e2e_pass                  the test passed: the work dir goes at exit
#   e2e_fail MESSAGE          print, exit 1 (work dir kept)
#   e2e_skip REASON           exit 77 (CTest: skipped)
#   e2e_now / e2e_took LABEL START   timing: "e2e: LABEL: 12.3 s"
#
# Files in $E2E_WORK: console.log (the serial console of every boot,
# appended; each qemu start adds a line "=== vm.sh: ..."), user.log (the
# second serial port, the guest's ttyS1, which e2e-boot makes writable for
# every user: alice's session copies each line she writes there), qemu.err,
# store/ (what nginx serves; the guest's reports land in store/e2e/results),
# nginx/ (access.log, error.log).
#
# The guest reboots itself in place (no -no-reboot): the same qemu, the
# console log continues.  Acceleration: $E2E_ACCEL = kvm, tcg or auto
# (default).  auto tries KVM and, when the kernel has printed nothing after
# $E2E_KVM_PROBE seconds (default 10) or qemu exits, falls back to TCG for
# the rest of the test (on some machines /dev/kvm exists but guests hang or
# fail); the failure is remembered in BUILD/e2e-cache/kvm-failed, so later
# tests on the same host, qemu and kernel go straight to TCG.  $E2E_KERNEL
# and $E2E_INITRD override the kernel (default: the newest
# /boot/vmlinuz-*-cloud-amd64 and its initrd); $E2E_MEM (MB, 1024) and
# $E2E_SMP (2) size the VM.  qemu and nginx die with the test's shell
# (parent-death signal), are stopped by their PIDs, and never outlive it.

# shellcheck disable=SC2034 # globals the sourcing test reads (below)
E2E_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
E2E_SRC=${REIMAGE_TEST_SRC_DIR:-$(cd "$E2E_HERE/../.." && pwd)}
E2E_BUILD=${REIMAGE_TEST_BIN_DIR:-$E2E_SRC/build}
# Read by the tests: VM_PID, VM_MATCH (vm_wait's line), VM_BOOT_T0 (when
# this boot's qemu started, for e2e_took), STORE_* (store_start).
VM_PID="" NGINX_PID="" VM_DISK="" VM_ARGS="" VM_BOOT_OFFSET=0 VM_STARTS=0
VM_MATCH="" VM_BOOT_T0=0
E2E_PASSED=0

e2e_now() { date +%s.%N; }
e2e_took() { awk -v a="$2" -v b="$(e2e_now)" -v l="$1" 'BEGIN { printf "e2e: %s: %.1f s\n", l, b - a }'; }
e2e_log() { echo "e2e: $*"; }
e2e_fail() {
	echo "e2e: FAIL: $*" >&2
	exit 1
}
e2e_pass() { E2E_PASSED=1; }
e2e_in_netns() { [ -n "${E2E_NETNS:-}" ]; }

# e2e_skip REASON: a precondition no test can provide (CI provides them all).
e2e_skip() {
	echo "e2e: SKIP: $*" >&2
	E2E_PASSED=1
	exit 77
}

e2e_setup() {
	[ "$(id -u)" -eq 0 ] || e2e_skip "needs root (mmdebstrap, network namespace)"
	local tool
	for tool in qemu-system-x86_64 nginx mmdebstrap unshare setpriv ip; do
		command -v "$tool" >/dev/null || e2e_skip "$tool is missing (sh tests/deps.sh installs it)"
	done
	if [ -z "${E2E_WORK:-}" ]; then
		mkdir -p "$E2E_BUILD/e2e-work"
		E2E_WORK=$(mktemp -d "$E2E_BUILD/e2e-work/$1.XXXXXX")
		export E2E_WORK
		E2E_T0=$(e2e_now)
		export E2E_T0
	fi
	trap e2e_exit EXIT
	trap 'exit 130' INT TERM
}

e2e_exit() {
	local rc=$?
	vm_stop
	store_stop
	if [ "$E2E_PASSED" = 1 ] && { [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; } && [ -z "${E2E_KEEP:-}" ]; then
		rm -rf "$E2E_WORK"
	else
		echo "e2e: kept the work directory: $E2E_WORK" >&2
		if [ "$E2E_PASSED" != 1 ] && [ -s "$E2E_WORK/console.log" ]; then
			echo "e2e: last console lines:" >&2
			tail -n 40 "$E2E_WORK/console.log" | tr -d '\r' >&2
		fi
	fi
}

e2e_netns() {
	if ! e2e_in_netns; then
		export E2E_NETNS=1
		# exec: this process becomes the namespace's test, no exit trap
		# runs here; the new one takes over the work directory.
		exec unshare --net -- bash "$0" "$@"
	fi
	ip link set lo up
}

# ------------------------------------------------------------------ nginx

# _wait_port PORT PID: 0 once 127.0.0.1:PORT accepts connections (10 s at
# most, and not once PID died: its error log says why).
_wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# store_start [PORT]: the test's HTTP server, as tests/http/servers.c runs
# nginx: in the foreground, no master process, every path in the work dir.
store_start() {
	local d=$E2E_WORK/nginx
	STORE_PORT=${1:-8080}
	STORE_DIR=$E2E_WORK/store
	STORE_URL=http://127.0.0.1:$STORE_PORT
	STORE_GUEST=10.0.2.2:$STORE_PORT
	mkdir -p "$d" "$STORE_DIR/e2e/results"
	cat >"$d/nginx.conf" <<-EOF
	master_process off;
	error_log $d/error.log info;
	pid $d/nginx.pid;
	events { worker_connections 64; }
	http {
	  client_body_temp_path $d/body;
	  proxy_temp_path $d/proxy;
	  fastcgi_temp_path $d/fastcgi;
	  uwsgi_temp_path $d/uwsgi;
	  scgi_temp_path $d/scgi;
	  log_format e2e '\$msec \$request_method \$uri \$status \$bytes_sent \$request_length';
	  access_log $d/access.log e2e;
	  default_type application/octet-stream;
	  server {
	    listen 127.0.0.1:$STORE_PORT;
	    root $STORE_DIR;
	    client_max_body_size 0;
	    dav_methods PUT DELETE;
	    create_full_put_path on;
	    dav_access user:rw group:r all:r;
	  }
	}
	EOF
	setpriv --pdeathsig KILL -- nginx -p "$d/" -c "$d/nginx.conf" -e "$d/error.log" \
		-g 'daemon off;' &
	NGINX_PID=$!
	if ! _wait_port "$STORE_PORT" "$NGINX_PID"; then
		cat "$d/error.log" >&2
		e2e_fail "nginx did not start"
	fi
	e2e_log "store: nginx (pid $NGINX_PID) serves $STORE_DIR at $STORE_URL, guest $STORE_GUEST"
}

store_stop() {
	[ -n "$NGINX_PID" ] || return 0
	kill -TERM "$NGINX_PID" 2>/dev/null || true
	wait "$NGINX_PID" 2>/dev/null || true
	NGINX_PID=""
}

# --------------------------------------------------------------------- VM

vm_log_size() { stat -c %s "$E2E_WORK/console.log" 2>/dev/null || echo 0; }

# vm_running: qemu has not exited (a zombie not yet waited for counts as
# exited).
vm_running() {
	[ -n "$VM_PID" ] || return 1
	local state
	state=$(awk '{ print $3 }' "/proc/$VM_PID/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

_vm_kernel() {
	E2E_KERNEL=${E2E_KERNEL:-$(printf '%s\n' /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -n 1)}
	[ -e "$E2E_KERNEL" ] || e2e_skip "no /boot/vmlinuz-*-cloud-amd64 (Debian package linux-image-cloud-amd64)"
	E2E_INITRD=${E2E_INITRD:-/boot/initrd.img-${E2E_KERNEL#/boot/vmlinuz-}}
	[ -r "$E2E_INITRD" ] || e2e_fail "no initrd $E2E_INITRD for $E2E_KERNEL (update-initramfs -u)"
	export E2E_KERNEL E2E_INITRD
}

# _vm_exec ACCEL: start qemu on $VM_DISK in the background.
_vm_exec() {
	local accel=$1
	VM_STARTS=$((VM_STARTS + 1))
	printf '\n=== vm.sh: qemu start %d: %s, accel %s, %s ===\n' \
		"$VM_STARTS" "${VM_DISK##*/}" "$accel" "$(date +%T)" >>"$E2E_WORK/console.log"
	VM_BOOT_OFFSET=$(vm_log_size)
	VM_BOOT_T0=$(e2e_now)
	# shellcheck disable=SC2086
	setpriv --pdeathsig KILL -- qemu-system-x86_64 -name reimage-e2e \
		-machine pc -accel "$accel" -m "${E2E_MEM:-1024}" -smp "${E2E_SMP:-2}" \
		-kernel "$E2E_KERNEL" -initrd "$E2E_INITRD" \
		-append "root=/dev/vda console=ttyS0 e2e.store=${STORE_GUEST:-10.0.2.2:8080} $VM_ARGS" \
		-drive "file=$VM_DISK,if=virtio,format=raw" \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
		-chardev "file,id=con,path=$E2E_WORK/console.log,append=on" -serial chardev:con \
		-chardev "file,id=user,path=$E2E_WORK/user.log,append=on" -serial chardev:user \
		-display none -vga none -monitor none \
		</dev/null 2>>"$E2E_WORK/qemu.err" &
	VM_PID=$!
}

# _vm_accel: the accelerator for this test, decided at its first boot.
_vm_accel() {
	if [ -s "$E2E_WORK/accel" ]; then
		cat "$E2E_WORK/accel"
		return
	fi
	local want=${E2E_ACCEL:-auto}
	if [ "$want" = auto ]; then
		want=tcg
		if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
			if grep -qxF "$(_vm_kvm_key)" "$E2E_BUILD/e2e-cache/kvm-failed" 2>/dev/null; then
				e2e_log "vm: KVM failed on this host before" \
					"($E2E_BUILD/e2e-cache/kvm-failed): TCG" >&2
			else
				want=kvm-probe
			fi
		fi
	fi
	echo "$want"
}

# What a KVM failure is remembered for: a later test on the same host,
# qemu and kernel skips the probe (a success is never cached: it costs
# nothing).
_vm_kvm_key() {
	echo "$(uname -r) $(qemu-system-x86_64 --version | head -n 1) $E2E_KERNEL"
}

vm_start() {
	VM_DISK=$1
	shift
	VM_ARGS=$*
	[ -f "$VM_DISK" ] || e2e_fail "vm_start: no disk $VM_DISK"
	vm_running && e2e_fail "vm_start: qemu is already running (pid $VM_PID)"
	_vm_kernel
	local accel
	accel=$(_vm_accel)
	if [ "$accel" = kvm-probe ]; then
		_vm_exec kvm
		if vm_wait 'Linux version' "${E2E_KVM_PROBE:-10}" >/dev/null 2>&1; then
			accel=kvm
		else
			e2e_log "vm: KVM guest printed nothing in ${E2E_KVM_PROBE:-10} s" \
				"($(tail -n 1 "$E2E_WORK/qemu.err" 2>/dev/null)); falling back to TCG"
			vm_powercut
			accel=tcg
			mkdir -p "$E2E_BUILD/e2e-cache"
			_vm_kvm_key >>"$E2E_BUILD/e2e-cache/kvm-failed"
		fi
		echo "$accel" >"$E2E_WORK/accel"
		if [ "$accel" = kvm ]; then
			e2e_log "vm: qemu (pid $VM_PID, kvm) boots ${VM_DISK##*/}"
			return 0
		fi
	fi
	echo "$accel" >"$E2E_WORK/accel"
	_vm_exec "$accel"
	e2e_log "vm: qemu (pid $VM_PID, $accel) boots ${VM_DISK##*/}"
}

# vm_wait REGEX SECONDS [FROM]: bounded; fails at once if qemu exits.
vm_wait() {
	local re=$1 limit=$2 from=${3:-$VM_BOOT_OFFSET} t0 deadline
	t0=$(e2e_now)
	deadline=$(($(date +%s) + limit))
	while :; do
		VM_MATCH=$(tail -c "+$((from + 1))" "$E2E_WORK/console.log" 2>/dev/null |
			tr -d '\r' | grep -a -E -m 1 -- "$re") && break
		if ! vm_running; then
			echo "e2e: vm_wait /$re/: qemu is not running" >&2
			return 1
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "e2e: vm_wait /$re/: not seen in $limit s" >&2
			return 1
		fi
		sleep 0.2
	done
	e2e_took "seen /$re/" "$t0"
}

vm_powercut() {
	[ -n "$VM_PID" ] || return 0
	kill -KILL "$VM_PID" 2>/dev/null || true
	wait "$VM_PID" 2>/dev/null || true
	VM_PID=""
}

vm_restart() {
	vm_powercut
	vm_start "$VM_DISK" "$VM_ARGS"
}

# vm_stop: qemu exits on SIGTERM (the guest sees a power cut too: use it
# at the end of a test, or let the guest power off first).
vm_stop() {
	[ -n "$VM_PID" ] || return 0
	kill -TERM "$VM_PID" 2>/dev/null || true
	for _ in $(seq 1 50); do
		vm_running || break
		sleep 0.1
	done
	vm_powercut
}
