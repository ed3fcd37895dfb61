# reimage_images.sh -- the images of the tests that re-image the VM
# (test_reimage.sh, tests/bench/vm_outage.sh): a bash library sourced
# after vm.sh and e2e_setup; it sets $reimagectl and $cache.
reimagectl=$E2E_BUILD/reimagectl
cache=$E2E_BUILD/e2e-cache

# deb_fingerprint DEB: what the package installs (control fields and
# every file's mode, owner, link target and content), without the build
# times CPack stamps into the .deb: a rebuild of the same tree keeps the
# cached images, any change to the package remakes them.
deb_fingerprint() {
	dpkg-deb -f "$1"
	dpkg-deb --fsys-tarfile "$1" | tar -tvf - | awk '{ $4 = $5 = ""; print }'
	dpkg-deb --fsys-tarfile "$1" | tar -xOf - --wildcards '*' | sha256sum
}

# images_for DEB AGENT_CONF KEY: the images for this package and these
# files, with the VM's kernel in B (kexec), made once and shared by every
# scenario and tests/bench/vm_outage.sh (a lock for concurrent runs).
images_for() {
	local key dir f
	key=$( {
		deb_fingerprint "$1"
		for f in "$E2E_HERE"/images.sh "$E2E_HERE"/base.sh "$2" "$3"; do
			sha256sum "$f"
		done
		(cd "$E2E_HERE/guest" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
		ls -lL "$E2E_KERNEL" "$E2E_INITRD"
	} | sha256sum | cut -c1-16)
	dir=$cache/images-$key
	exec 8>"$cache/images.lock"
	flock 8
	if [ ! -e "$dir/complete" ]; then
		find "$cache" -mindepth 1 -maxdepth 1 -name 'images-*' -exec rm -rf {} +
		bash "$E2E_HERE/images.sh" --deb "$1" --agent-conf "$2" --key "$3" \
			--kernel "$E2E_KERNEL" --initrd "$E2E_INITRD" "$dir" >&2 ||
			e2e_fail "images.sh failed"
		touch "$dir/complete"
	else
		e2e_log "images: cached ($dir)" >&2
	fi
	flock -u 8
	echo "$dir"
}

# reimage_images: the host step of a test re-imaging the VM, before its
# network namespace: the package, the administrator's key
# ($cache/admin.key), the agent's file, and the images, whose directory it
# writes to $E2E_WORK/images-dir.
reimage_images() {
	local t deb images
	t=$(e2e_now)
	mkdir -p "$cache"
	# The package from this tree (images.sh installs it with dpkg).
	deb=$(bash "$E2E_HERE/deb.sh" "$E2E_BUILD") || e2e_fail "deb.sh failed"
	e2e_took "package (deb.sh)" "$t"
	# One administrator's key per build directory: the images trust it.
	if [ ! -s "$cache/admin.pub" ]; then
		rm -f "$cache/admin.key" "$cache/admin.pub"
		"$reimagectl" keygen "$cache/admin.key" "$cache/admin.pub" >/dev/null
	fi
	cat >"$cache/agent.conf" <<-EOF
	# e2e: the agent of images A and B (images.sh replaces @STORE@ and
	# @CONF@, the package's /etc/reimage).
	agent_id = "vm-a";
	groups = [ "e2e" ];
	root = "/";
	backend = "posix";
	state_dir = "/var/lib/reimage";
	store = "http://@STORE@/store";
	trusted_keys = [ "@CONF@/keys/admin.pub" ];
	poll_interval = 2;
	poll_jitter = 0;
	posix: { grace_seconds = 5; };
	EOF
	_vm_kernel
	images=$(images_for "$deb" "$cache/agent.conf" "$cache/admin.pub")
	echo "$images" >"$E2E_WORK/images-dir"
	e2e_took "images" "$t"
}

# reimage_store: in the test's network namespace, the images' variables
# (images.env: DISK_A, IMAGE_B...) and the store, serving image B and the
# probe e2e-boot fetches.
reimage_store() {
	local images
	images=$(cat "$E2E_WORK/images-dir")
	# shellcheck disable=SC1091 # written by images.sh
	. "$images/images.env"
	store_start 8080
	mkdir -p "$STORE_DIR/images" "$STORE_DIR/store"
	ln "$IMAGE_B" "$STORE_DIR/images/image-b.tar.zst" 2>/dev/null ||
		cp "$IMAGE_B" "$STORE_DIR/images/image-b.tar.zst"
	echo "probe" >"$STORE_DIR/e2e/probe"
}

# reimage_job FILE ID [SETTINGS]: a job re-imaging A with B from the store,
# keeping alice (home and account) and the network settings, the guard
# armed for 2 boots, rebooting; SETTINGS (lines of job file) added.
reimage_job() {
	cat >"$1" <<-EOF
	id = "$2";
	image: {
	  url = "http://$STORE_GUEST/images/image-b.tar.zst";
	  sha256 = "$IMAGE_B_SHA256";
	  size = $IMAGE_B_SIZE;
	};
	preserve: { mode = "move"; network = true; users = [ "alice" ]; };
	trial: { max_attempts = 2; };
	reboot = true;
	${3:-}
	EOF
}
