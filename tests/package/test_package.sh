#!/bin/bash
# The installed and packaged reimage: what `cmake --install` and the
# Debian package put where, and whether the paths compiled into the
# programs name those places.
#   test_package.sh CASE      (REIMAGE_TEST_BIN_DIR: the build directory)
# Cases: install_prefix deb_contents deb_lintian man_pages readme_nginx.
# Exit 77 (skipped) when a tool the case needs is missing.
set -euo pipefail
build=${REIMAGE_TEST_BIN_DIR:?REIMAGE_TEST_BIN_DIR names the build directory}
case_name=${1:?usage: test_package.sh CASE}
work=$(mktemp -d /tmp/reimage-package.XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
need() { for t in "$@"; do command -v "$t" >/dev/null || skip "$t is missing (sh tests/deps.sh installs it)"; done; }

# has LIST PATTERN...: each shell PATTERN matches a line of the file LIST.
has() {
	local list=$1 p line found
	shift
	for p in "$@"; do
		found=""
		while IFS= read -r line; do
			# shellcheck disable=SC2053
			[[ $line == $p ]] && { found=1; break; }
		done <"$list"
		[ -n "$found" ] || fail "nothing matches $p in $list"
	done
}

# The files every install carries, relative to the prefix.
installed_files() {
	local list=$1
	has "$list" 'sbin/reimage' 'bin/reimagectl' 'lib*/reimage/plugins/posix.so' \
		'lib*/reimage/plugins/sandbox.so' 'lib*/reimage/plugins/transport-http.so' \
		'libexec/reimage/reimage-guard' 'lib/systemd/system/reimage-agent.service' \
		'share/doc/reimage/examples/agent.conf' 'share/doc/reimage/examples/job.conf' \
		'share/man/man8/reimage.8*' 'share/man/man1/reimagectl.1*' \
		'share/man/man8/reimage-guard.8*' 'share/man/man5/reimage-job.conf.5*' \
		'share/man/man5/reimage-agent.conf.5*' 'share/man/man7/reimage-plugin.7*' \
		'share/bash-completion/completions/reimage' \
		'share/bash-completion/completions/reimagectl'
	# /etc/reimage holds only what the administrator writes.
	if grep -q 'etc/' "$list"; then fail "installs under etc: $(grep 'etc/' "$list")"; fi
}

# compiled_in FILE PATH: the program FILE names PATH (a compiled-in default).
compiled_in() {
	grep -qaF "$2" "$1" || fail "$1 does not name $2: its compiled-in path is elsewhere"
}

case "$case_name" in
install_prefix)
	# --prefix and DESTDIR put everything under DESTDIR/PREFIX.
	DESTDIR=$work/root cmake --install "$build" --prefix /opt/reimage-test >"$work/log"
	(cd "$work/root" && find . -type f -o -type l) | sed 's|^\./||' | sort >"$work/all"
	if grep -v '^opt/reimage-test/' "$work/all"; then fail "installed outside the prefix"; fi
	sed 's|^opt/reimage-test/||' "$work/all" >"$work/files"
	installed_files "$work/files"
	;;
deb_contents|deb_lintian)
	need cpack dpkg-deb dpkg-shlibdeps
	[ -f "$build/CPackConfig.cmake" ] || fail "no CPackConfig.cmake in $build"
	prefix=$(sed -n 's/^set(CPACK_PACKAGING_INSTALL_PREFIX "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
	[ -n "$prefix" ] || fail "no CPACK_PACKAGING_INSTALL_PREFIX in $build/CPackConfig.cmake"
	extra=()
	if [ "$case_name" = deb_lintian ]; then
		need lintian
		# lintian judges a package for /usr; the layout is the same for
		# any prefix (deb_contents checks the compiled-in paths).
		prefix=/usr
		extra=(-D CPACK_PACKAGING_INSTALL_PREFIX=/usr)
	fi
	(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" \
		"${extra[@]}" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log" >&2; fail "cpack failed"; }
	deb=$(echo "$work"/out/reimage_*.deb)
	[ -f "$deb" ] || fail "cpack made no .deb (see $work/cpack.log)"
	if [ "$case_name" = deb_lintian ]; then
		lintian --fail-on error,warning "$deb" || fail "lintian tags the package"
		exit 0
	fi
	dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./||' | grep -v '/$' >"$work/all"
	if grep -v "^${prefix#/}/" "$work/all"; then fail "packaged outside $prefix"; fi
	sed "s|^${prefix#/}/||" "$work/all" >"$work/files"
	installed_files "$work/files"
	# The programs look where the package puts things.
	dpkg-deb -x "$deb" "$work/x"
	plugins=$(dirname "$(grep '/reimage/plugins/posix.so$' "$work/all")")
	compiled_in "$work/x$prefix/sbin/reimage" "/$plugins"
	compiled_in "$work/x$prefix/sbin/reimage" "$prefix/libexec/reimage/reimage-guard"
	grep -q "^ExecStart=$prefix/sbin/reimage agent" "$work/x$prefix/lib/systemd/system/reimage-agent.service" ||
		fail "the unit does not start $prefix/sbin/reimage"
	# Dependencies computed by dpkg-shlibdeps: the libraries the
	# programs and plugins link, none listed by hand.
	depends=$(dpkg-deb -f "$deb" Depends)
	for lib in libc6 libarchive13 libjansson4 libconfig9 libltdl7; do
		[[ $depends == *"$lib"* ]] || fail "Depends lacks $lib: $depends"
	done
	# The maintainer scripts enable the unit.
	dpkg-deb -e "$deb" "$work/control"
	grep -q 'deb-systemd-helper enable' "$work/control/postinst" || fail "postinst enables nothing"
	[ ! -e "$work/control/conffiles" ] || fail "conffiles: $(cat "$work/control/conffiles")"
	;;
man_pages)
	need groff man
	pages=$build/docs/man
	for page in reimage.8 reimagectl.1 reimage-guard.8 reimage-job.conf.5 \
		reimage-agent.conf.5 reimage-plugin.7; do
		[ -s "$pages/$page" ] || fail "$pages/$page was not generated"
		warnings=$(groff -man -z -ww "$pages/$page" 2>&1)
		[ -z "$warnings" ] || fail "groff warns on $page: $warnings"
		warnings=$(MANWIDTH=80 man -l -Tutf8 "$pages/$page" 2>&1 >/dev/null)
		[ -z "$warnings" ] || fail "man warns on $page: $warnings"
	done
	# Every setting `reimage options` lists is on a section 5 page, and
	# every command in --help on its program's page.
	REIMAGE_PLUGIN_PATH=$build/plugins "$build/reimage" options --agent /dev/null >"$work/options"
	awk '/^  [a-z_]+ / { print $1 }' "$work/options" | sort -u >"$work/settings"
	[ "$(wc -l <"$work/settings")" -gt 40 ] || fail "reimage options lists too few settings"
	while read -r name; do
		grep -qF "\fB$name\fR" "$pages/reimage-job.conf.5" "$pages/reimage-agent.conf.5" ||
			fail "setting $name is on no manual page"
	done <"$work/settings"
	for prog in reimage reimagectl; do
		page=$(echo "$pages/$prog".[18])
		"$build/$prog" --help | awk -v p="$prog" '/^  [a-z]+ / && $1 != p { print $1 }' >"$work/commands"
		[ -s "$work/commands" ] || fail "$prog --help lists no command"
		while read -r cmd; do
			grep -q "^\.SS \"$prog $cmd" "$page" || fail "$prog $cmd is not on $page"
		done <"$work/commands"
		# The completion offers the same commands.
		bash -n "$pages/$prog.bash" || fail "$prog.bash is not valid bash"
		words=$(bash -c ". '$pages/$prog.bash'; COMP_WORDS=($prog ''); COMP_CWORD=1;
			_$prog; echo \"\${COMPREPLY[*]}\"")
		[ "$words" = "$(tr '\n' ' ' <"$work/commands" | sed 's/ $//')" ] ||
			fail "$prog completion offers '$words'"
	done
	;;
readme_nginx)
	# The README's nginx.conf, as given but for its addresses and paths:
	# it takes a report by PUT and logs no 404 of polling.
	need nginx curl python3
	src=${REIMAGE_TEST_SRC_DIR:?REIMAGE_TEST_SRC_DIR names the source tree}
	[ "$(id -u)" -eq 0 ] || skip "nginx's sample runs its workers as www-data: needs root"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	chmod 755 "$work"
	mkdir -p "$work/www/reimage/jobs" "$work/body"
	chown -R www-data "$work/www" "$work/body"
	awk '/^```nginx/ { f = 1; next } /^```/ { f = 0 } f' "$src/README.md" |
		sed -e "s|listen 80;|listen 127.0.0.1:$port;|" -e "s|/srv/www|$work/www|" \
		    -e "s|/var/log/nginx|$work|g" -e "s|pid /run/nginx.pid;|pid $work/nginx.pid;|" \
		    -e "s|10.0.0.0/8|127.0.0.0/8|" \
		    -e "s|client_max_body_size 1m;|&\n            client_body_temp_path $work/body;|" \
		    >"$work/nginx.conf"
	grep -q "dav_methods PUT" "$work/nginx.conf" || fail "no nginx.conf in the README"
	nginx -c "$work/nginx.conf" -e "$work/error.log" -g 'daemon off;' &
	ngx=$!
	trap 'kill "$ngx" 2>/dev/null || true; wait "$ngx" 2>/dev/null || true; rm -rf "$work"' EXIT
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && break
		kill -0 "$ngx" 2>/dev/null || fail "nginx did not start: $(cat "$work/error.log")"
		sleep 0.1
	done
	url=http://127.0.0.1:$port/reimage
	code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data '{"state":"running"}' \
		"$url/reports/pc-1/test-job.json")
	[ "$code" = 201 ] || [ "$code" = 204 ] || fail "PUT of a report: HTTP $code"
	[ "$(cat "$work/www/reimage/reports/pc-1/test-job.json")" = '{"state":"running"}' ] ||
		fail "the report was not stored"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url/jobs/pc-1.job")
	[ "$code" = 404 ] || fail "polling a missing job: HTTP $code"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url/reports/pc-1/test-job.json")
	[ "$code" = 200 ] || fail "GET of the report: HTTP $code"
	kill "$ngx"; wait "$ngx" 2>/dev/null || true
	grep -q '"PUT /reimage/reports/pc-1/test-job.json' "$work/access.log" || fail "the PUT is not logged"
	if grep -q ' 404 ' "$work/access.log"; then fail "a 404 is logged: $(grep ' 404 ' "$work/access.log")"; fi
	if grep -q 'pc-1.job' "$work/error.log"; then fail "error.log has the poll: $(cat "$work/error.log")"; fi
	;;
*)
	fail "unknown case $case_name"
	;;
esac
echo "ok: $case_name"
